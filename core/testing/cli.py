"""``fhirpipes conformance [PLUGIN ...]``: the conformance kit over installed plugins, no test code needed.

Each mapper a plugin registers is checked with its own ``samples``, by the very check methods
of `MapperConformanceTests`, run in-process without pytest (`run_checks`), so it works wherever
the plugin is installed (a CI job, a Lambda-like image without pytest).
"""

from __future__ import annotations

import json
import textwrap

import click

from fhirpipes.errors import FhirpipesError
from fhirpipes.plugins import entry_points, load_registry
from fhirpipes.testing.conformance import MapperConformanceTests
from fhirpipes.testing.runner import CheckResult, run_checks

_MARKS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


@click.command(short_help="Check installed mapper plugins with the conformance kit.")
@click.argument("plugins", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Print whole failure and skip messages.")
@click.option("-k", "keyword", default=None, help="Run only the checks whose name contains this.")
def conformance(plugins: tuple[str, ...], as_json: bool, verbose: bool, keyword: str | None) -> None:
    """Check installed mapper PLUGINS (entry-point names; default: all) with the conformance kit.

    Prints one row per check and mapper; exits 1 if any check fails, or if nothing was checked
    (no plugin installed, or no check matches -k)."""
    installed = [ep.name for ep in entry_points()]
    unknown = sorted(set(plugins) - set(installed))
    if unknown:
        raise click.ClickException(
            f"not installed in the 'fhirpipes' entry-point group: {', '.join(unknown)} "
            f"(installed: {', '.join(installed) or 'none'})"
        )
    rows: list[dict[str, str]] = []
    for name in plugins or tuple(installed):
        try:
            registry = load_registry(only=[name])
        except FhirpipesError as exc:
            rows.append(_row(name, "-", CheckResult("load_plugin", "failed", str(exc))))
            continue
        for mapper in registry.mappers:
            checks = type(
                f"Conformance[{name}:{mapper.name}]",
                (MapperConformanceTests,),
                {"plugin": name, "mapper": mapper, "tables": registry.tables},
            )
            for result in run_checks(checks, None if keyword is None else lambda check: keyword in check):
                rows.append(_row(name, mapper.name, result))
    if not installed:
        raise click.ClickException("no plugin is installed in the 'fhirpipes' entry-point group")
    if not rows:  # every mapper loaded, and -k matched none of the checks
        why = f"no check matched -k {keyword!r}" if keyword is not None else "the plugins register no mapper"
        raise click.ClickException(f"{why}; nothing was checked")
    failed = sum(row["status"] == "failed" for row in rows)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        _print_table(rows, verbose)
    if failed:
        raise click.exceptions.Exit(1)


def _row(plugin: str, mapper: str, result: CheckResult) -> dict[str, str]:
    check = result.check.removeprefix("test_")
    return {
        "plugin": plugin,
        "mapper": mapper,
        "check": check,
        "status": result.status,
        "message": result.message,
    }


def _print_table(rows: list[dict[str, str]], verbose: bool) -> None:
    if not rows:
        click.echo("no plugin installed in the 'fhirpipes' entry-point group")
        return
    widths = [max(len(row[key]) for row in rows) for key in ("plugin", "mapper", "check")]
    header = ("PLUGIN", "MAPPER", "CHECK")
    widths = [max(width, len(title)) for width, title in zip(widths, header, strict=True)]
    click.echo(f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]:<{widths[2]}}  RESULT")
    for row in rows:
        line = f"{row['plugin']:<{widths[0]}}  {row['mapper']:<{widths[1]}}  {row['check']:<{widths[2]}}  "
        line += _MARKS[row["status"]]
        message = row["message"]
        if message and not verbose:
            first = message.splitlines()[0]
            line += f"  {textwrap.shorten(first, 100, placeholder=' ...')}"
        click.echo(line)
        if message and verbose:
            click.echo(textwrap.indent(message, " " * 6))
    counts = {status: sum(row["status"] == status for row in rows) for status in _MARKS}
    click.echo(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
