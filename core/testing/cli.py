"""``fhirpipes conformance [PLUGIN ...]``: the conformance kit over installed plugins, no test code needed.

Each mapper a plugin registers is checked with its own ``samples``, by the very check methods
of `MapperConformanceTests`, run in-process without pytest (`run_checks`), so it works wherever
the plugin is installed (a CI job, a Lambda-like image without pytest).

Each row is printed when its check finishes (a progress bar on stderr counts them on a
terminal); failures that share one cause (a broken template fails most checks at the same
template line) are then told once, in full, and a summary line ends the table.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import click

from fhirpipes.errors import FhirpipesError
from fhirpipes.plugins import entry_points, load_registry
from fhirpipes.testing.conformance import MapperConformanceTests
from fhirpipes.testing.runner import CheckResult, checks_of, run_checks

_MARKS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}
_COLORS = {"passed": "green", "failed": "red", "skipped": "yellow"}

# Where a record error happened, as RecordError's text puts it ("[..., template=x.j2, line=4]") and
# as an error event's dict does ("'template': 'x.j2', 'line': 4").
_TEMPLATE_LINE = re.compile(
    r"""'?template'?[=:]\s*'?(?P<template>[^,'\]\s]+)'?,\s*'?line'?[=:]\s*(?P<line>\d+)"""
)
# What went wrong there: the text after "record error <code>: " (or "does not load: "), before "[".
_ERROR_TEXT = re.compile(r"(?:record error (?P<code>[\w-]+): |does not load: )(?P<text>[^\[]+?)\s*\[")
# Ids that differ from record to record but not from cause to cause.
_RECORD_IDS = re.compile(r"\b(?:eventID|sequenceNumber)=[^,\]]*,?\s*")


@dataclass
class Suite:
    """The checks of one mapper of one plugin (or a plugin that would not load)."""

    plugin: str
    mapper: str
    checks: type[MapperConformanceTests] | None
    names: list[str]
    load_error: str = ""


@dataclass
class Cause:
    """Failures that share one cause: its text (never cut) and the checks it failed."""

    number: int
    text: str
    checks: list[str] = field(default_factory=list)


@click.command(short_help="Check installed mapper plugins with the conformance kit.")
@click.argument("plugins", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Print whole failure and skip messages.")
@click.option("-k", "keyword", default=None, help="Run only the checks whose name contains this.")
@click.option(
    "--progress/--no-progress", default=None, help="A progress bar [default: when stderr is a terminal]."
)
def conformance(
    plugins: tuple[str, ...], as_json: bool, verbose: bool, keyword: str | None, progress: bool | None
) -> None:
    """Check installed mapper PLUGINS (entry-point names; default: all) with the conformance kit.

    Prints one row per check and mapper as it finishes, then each cause of failure once; exits 1
    if any check fails, or if nothing was checked (no plugin installed, or no check matches -k)."""
    from fhirpipes.progress import ProgressBar, show_bar, wants_color

    installed = [ep.name for ep in entry_points()]
    unknown = sorted(set(plugins) - set(installed))
    if unknown:
        raise click.ClickException(
            f"not installed in the 'fhirpipes' entry-point group: {', '.join(unknown)} "
            f"(installed: {', '.join(installed) or 'none'})"
        )
    only: Callable[[str], bool] | None = None if keyword is None else lambda check: keyword in check
    if not installed:
        raise click.ClickException("no plugin is installed in the 'fhirpipes' entry-point group")
    suites = _suites(plugins or tuple(installed), only)
    if not any(suite.names for suite in suites):  # every mapper loaded, and -k matched none of the checks
        why = f"no check matched -k {keyword!r}" if keyword is not None else "the plugins register no mapper"
        raise click.ClickException(f"{why}; nothing was checked")
    table = None if as_json else _Table(suites, verbose, color=wants_color(sys.stdout))
    rows: list[dict[str, str]] = []
    total = sum(len(suite.names) for suite in suites)
    with ProgressBar("conformance", total, enabled=show_bar(progress), unit="checks") as bar:
        for suite in suites:
            for result in _results(suite, only):
                row = _row(suite.plugin, suite.mapper, result)
                rows.append(row)
                if table is not None:
                    table.print_row(row)
                bar.advance(1, errors=row["status"] == "failed")
    if table is not None:
        table.print_end(rows)
    else:
        click.echo(json.dumps(rows, indent=2))
    if any(row["status"] == "failed" for row in rows):
        raise click.exceptions.Exit(1)


def _suites(names: tuple[str, ...], only: Callable[[str], bool] | None) -> list[Suite]:
    suites: list[Suite] = []
    for name in names:
        try:
            registry = load_registry(only=[name])
        except FhirpipesError as exc:
            suites.append(Suite(name, "-", None, ["load_plugin"], str(exc)))
            continue
        for mapper in registry.mappers:
            checks = type(
                f"Conformance[{name}:{mapper.name}]",
                (MapperConformanceTests,),
                {"plugin": name, "mapper": mapper, "tables": registry.tables},
            )
            selected = [check for check in checks_of(checks) if only is None or only(check)]
            suites.append(Suite(name, mapper.name, checks, selected))
    return suites


def _results(suite: Suite, only: Callable[[str], bool] | None) -> Iterable[CheckResult]:
    if suite.checks is None:
        return [CheckResult("load_plugin", "failed", suite.load_error)]
    return run_checks(suite.checks, only)


def _row(plugin: str, mapper: str, result: CheckResult) -> dict[str, str]:
    check = result.check.removeprefix("test_")
    return {
        "plugin": plugin,
        "mapper": mapper,
        "check": check,
        "status": result.status,
        "message": result.message,
    }


def cause_of(message: str) -> tuple[str, str]:
    """A failure's cause: (a key failures with the same cause share, the cause told in one line).

    A record error at a template line is the same cause whichever check met it; any other
    failure is its own message (its first line, without the record's ids).
    """
    where = _TEMPLATE_LINE.search(message)
    if where is not None:
        place = f"template {where['template']}, line {where['line']}"
        error = _ERROR_TEXT.search(message)
        if error is not None:
            told = f"{place}: {error['text']}" + (f" ({error['code']})" if error["code"] else "")
        else:
            told = f"{place}: {message.splitlines()[0]}"
        return f"{where['template']}:{where['line']}", told
    first = message.splitlines()[0] if message else "failed"
    return _RECORD_IDS.sub("", first), first


class _Table:
    """The rows, printed as they come, in columns sized from every check's name up front."""

    header = ("PLUGIN", "MAPPER", "CHECK")

    def __init__(self, suites: list[Suite], verbose: bool, *, color: bool) -> None:
        names = [
            (suite.plugin, suite.mapper, check.removeprefix("test_"))
            for suite in suites
            for check in suite.names
        ]
        self.widths = [
            max([len(title), *(len(name[i]) for name in names)]) for i, title in enumerate(self.header)
        ]
        self.verbose, self.color, self.suites = verbose, color, bool(suites)
        self.causes: dict[tuple[str, str, str], Cause] = {}
        self.started = False

    def _cells(self, values: tuple[str, str, str]) -> str:
        return "  ".join(f"{value:<{width}}" for value, width in zip(values, self.widths, strict=True))

    def print_row(self, row: dict[str, str]) -> None:
        if not self.started:
            click.echo(f"{self._cells(self.header)}  RESULT")
            self.started = True
        status, message = row["status"], row["message"]
        mark = _MARKS[status]
        if self.color:
            mark = click.style(mark, fg=_COLORS[status], bold=status == "failed")
        line = f"{self._cells((row['plugin'], row['mapper'], row['check']))}  {mark}"
        if status == "failed":
            key, told = cause_of(message)
            cause = self.causes.setdefault(
                (row["plugin"], row["mapper"], key), Cause(len(self.causes) + 1, told)
            )
            cause.checks.append(row["check"])
            line += f"  [{cause.number}]"
        elif message and not self.verbose:
            line += f"  {textwrap.shorten(message.splitlines()[0], 100, placeholder=' ...')}"
        click.echo(line)
        if message and self.verbose:
            click.echo(textwrap.indent(message, " " * 6))

    def print_end(self, rows: list[dict[str, str]]) -> None:
        if not rows:
            click.echo("no check matched" if self.suites else "no plugin installed in the 'fhirpipes' group")
            return
        if self.causes:
            click.echo("")
        for (plugin, mapper, _), cause in self.causes.items():
            count = len(cause.checks)
            failed = f"{count} checks failed" if count > 1 else "1 check failed"
            text = f"[{cause.number}] {plugin} {mapper}: {failed}: {cause.text}"
            click.echo(click.style(text, fg="red") if self.color else text)
        counts = {status: sum(row["status"] == status for row in rows) for status in _MARKS}
        click.echo(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
