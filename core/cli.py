"""The ``fhirpipes`` command line (click).

Subcommands load lazily (click's documented lazy-group pattern), so ``fhirpipes map`` doesn't
import the local Pipe runner, the packager or boto3.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import click

from fhirpipes.errors import FhirpipesError

LAZY_COMMANDS = {
    "backfill": "fhirpipes.backfill.cli:backfill",
    "conformance": "fhirpipes.testing.cli:conformance",
    "demo": "fhirpipes.pipes.demo:demo",
    "new": "fhirpipes.scaffold.cli:new",
    "package": "fhirpipes.deploy.cli:package",
    "run": "fhirpipes.pipes.cli:run",
    "template": "fhirpipes.deploy.cli:template",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when run (or listed by ``--help``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module_name, attribute = LAZY_COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fhirpipes")
def main() -> None:
    """fhirpipes: DynamoDB stream changes to HL7 FHIR, through one shared Pipes enrichment Lambda."""


def fail(message: str) -> None:
    """Exit non-zero with a one-line reason (never a record value)."""
    raise click.ClickException(message)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List the installed plugins and the mappers they register."""
    from fhirpipes.plugins import load_registry

    try:
        registry = load_registry()
    except FhirpipesError as exc:
        fail(str(exc))
    listing: list[dict[str, Any]] = [
        {
            "name": info.name,
            "module": info.module,
            "distribution": info.distribution,
            "version": info.version,
            "mappers": [_describe_mapper(mapper) for mapper in info.mappers],
        }
        for info in registry.plugins
    ]
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for plugin in listing:
        origin = f"{plugin['distribution'] or plugin['module']} {plugin['version'] or ''}".strip()
        click.echo(f"{plugin['name']} ({origin})")
        for mapper in plugin["mappers"]:
            click.echo(
                f"  {mapper['table']:<20} -> {mapper['resourceType']} ({mapper['fhirVersion']}), "
                f"template {mapper['template']}"
            )


def _describe_mapper(mapper: Any) -> dict[str, Any]:
    return {
        "table": mapper.table,
        "name": mapper.name,
        "resourceType": mapper.resource_type,
        "fhirVersion": mapper.fhir_version,
        "template": mapper.template,
        "templatePackage": mapper.template_package,
        "onDelete": mapper.on_delete,
        "pipe": {
            "filters": mapper.pipe_filters(),
            "batchSize": mapper.pipe.batch_size,
            "batchingWindowSeconds": mapper.pipe.batching_window_seconds,
            "startingPosition": mapper.pipe.starting_position,
        },
    }


@main.command("map")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--indent", type=int, default=2, show_default=True, help="JSON indentation (0: one line).")
def map_command(source: Any, indent: int) -> None:
    """Map a batch (a JSON array of stream records, {"Records": [...]}, or one record) from SOURCE
    (a file, or - for standard input) through the Lambda handler's code path, and print the result."""
    try:
        text = source.read()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"can't read {source.name}: {type(exc).__name__}")
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{source.name} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    try:
        from fhirpipes.handler import handler

        with _records_bar(event) as event:
            result = handler(event, None)
    except FhirpipesError as exc:
        fail(str(exc))
    text = json.dumps(result, indent=indent or None, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a record can hold one): JSON's own escapes
        text = json.dumps(result, indent=indent or None, ensure_ascii=True)
    click.echo(text)


MAP_BAR_RECORDS = 1000
"""``map`` shows a bar (on a terminal) for batches of more records than this: smaller ones take a blink."""


class _Counted(list):  # type: ignore[type-arg]
    """The batch's records, counting each one the handler takes on a bar (the list itself unchanged)."""

    def __init__(self, records: list[Any], advance: Any) -> None:
        super().__init__(records)
        self._advance = advance

    def __iter__(self) -> Iterator[Any]:
        for record in super().__iter__():
            yield record
            self._advance()


@contextlib.contextmanager
def _records_bar(event: Any) -> Iterator[Any]:
    """``event`` as the handler takes it, its records counted on a bar when there are many and
    stderr is a terminal (the handler's code path is the same: a list is a list)."""
    records = event.get("Records") if isinstance(event, dict) and "dynamodb" not in event else event
    if not isinstance(records, list) or len(records) <= MAP_BAR_RECORDS:
        yield event
        return
    from fhirpipes.progress import ProgressBar, show_bar

    if not show_bar():
        yield event
        return
    import logging

    from fhirpipes.logs import logger

    stderr = sys.stderr
    with ProgressBar("map", len(records), enabled=True, unit="records", rate=True) as bar:
        # The handler's log lines go above the bar too: through the stderr rich puts in place.
        moved = [h for h in logger.handlers if isinstance(h, logging.StreamHandler) and h.stream is stderr]
        for handler in moved:
            handler.setStream(sys.stderr)
        try:
            counted = _Counted(records, bar.advance)
            yield counted if records is event else {**event, "Records": counted}
        finally:
            for handler in moved:
                handler.setStream(stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
