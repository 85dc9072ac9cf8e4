"""The ``fhirpipes`` command line (click).

Subcommands load lazily (click's documented lazy-group pattern), so ``fhirpipes map`` doesn't
import the local Pipe runner, the packager or boto3.

No command shows a traceback: `LazyGroup` turns what escapes a command into one ``Error:`` line
(`explain`): a missing optional module into the command that installs it, an OS error into the
path and the reason, too deep an input into a refusal, anything else into "internal error" (the
traceback with ``FHIRPIPES_DEBUG=1``). Ctrl-C exits 130.

Exit status of every command: 0 done; 1 an error (one ``Error:`` line); 2 a usage error (click's);
3 finished, but some records are error events (``map``, ``backfill``); 130 interrupted.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click

from fhirpipes.errors import FhirpipesError

DEBUG_ENV = "FHIRPIPES_DEBUG"
EXIT_RECORD_ERRORS = 3
"""The command finished, but some records are error events (``map``; ``backfill`` says the same)."""
EXIT_INTERRUPTED = 130

LAZY_COMMANDS = {
    "backfill": "fhirpipes.backfill.cli:backfill",
    "conformance": "fhirpipes.testing.cli:conformance",
    "demo": "fhirpipes.pipes.demo:demo",
    "new": "fhirpipes.scaffold.cli:new",
    "package": "fhirpipes.deploy.cli:package",
    "run": "fhirpipes.pipes.cli:run",
    "template": "fhirpipes.deploy.cli:template",
}


def explain(exc: BaseException) -> str:
    """One line for an exception that escaped a command: where and why, never a value it holds."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        from fhirpipes.extras import missing_module_hint

        return missing_module_hint(exc.name)
    if isinstance(exc, OSError):
        # strerror and the paths only: an OSError's str() may carry whatever its raiser put in.
        reason = exc.strerror or type(exc).__name__
        if exc.strerror is None and exc.errno is not None:
            reason += f" ({errno.errorcode.get(exc.errno, exc.errno)})"
        paths = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
        return f"{paths}: {reason}" if paths else reason
    if isinstance(exc, RecursionError):
        return (
            "the input is nested too deeply to process "
            f"(about {sys.getrecursionlimit()} levels at most); refused"
        )
    return f"internal error ({type(exc).__name__}); rerun with {DEBUG_ENV}=1 for the traceback"


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """What escapes the block as one ``Error:`` line (click's exceptions pass as they are)."""
    try:
        yield
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise
    except BrokenPipeError:  # `fhirpipes map x | head`: click's own handling, quiet
        raise
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:
        if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            traceback.print_exc()
        raise click.ClickException(explain(exc)) from exc


def _interrupted() -> NoReturn:
    if sys.stderr.isatty():
        click.echo(err=True)  # past the terminal's ^C
    click.echo("interrupted", err=True)
    raise click.exceptions.Exit(EXIT_INTERRUPTED)


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when run (or listed by ``--help``), and
    whose commands never end in a traceback (see the module docstring)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # Parsing runs eager options: ``--help`` lists (so imports) every command.
        with _one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_errors():
            return super().invoke(ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module_name, attribute = LAZY_COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit status: 0 done; 1 an error (one Error: line); 2 a usage error; 3 finished, but "
    "some records failed (map, backfill); 130 interrupted. FHIRPIPES_DEBUG=1 shows the traceback "
    "of an internal error.",
)
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


@main.command("map", short_help="Map a batch of stream records and print the FHIR events.")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option(
    "--indent",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="JSON indentation (0: one line).",
)
def map_command(source: Any, indent: int) -> None:
    """Map a batch (a JSON array of stream records, {"Records": [...]}, or one record) from SOURCE
    (a file, or - for standard input) through the Lambda handler's code path, and print the result.

    Exit status: 0 when every record mapped or was skipped; 3 when the batch mapped but some
    records failed (error events, or dropped with FHIRPIPES_ON_ERROR=drop); 1 for an error
    that stopped it (the input, a plugin, FHIRPIPES_ON_ERROR=raise)."""
    try:
        text = source.read()
    except OSError as exc:
        fail(f"can't read {source.name}: {exc.strerror or type(exc).__name__}")
    except UnicodeDecodeError as exc:  # where, not the bytes
        fail(f"can't read {source.name}: not UTF-8 (byte {exc.start})")
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{source.name} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except RecursionError:
        fail(f"{source.name}: JSON nested deeper than about {sys.getrecursionlimit()} levels; refused")
    outcomes: dict[str, int] = {}

    def tally(counts: dict[tuple[str | None, str], int], seconds: float) -> None:
        for (_table, outcome), count in counts.items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count

    try:
        from fhirpipes import handler as lambda_handler
        from fhirpipes import logs

        # The handler's own body, with an observer of what failed (its output doesn't show drops).
        token = logs.bind_invocation(None, True)
        try:
            with _records_bar(event) as event:
                result = lambda_handler.dispatcher.map_batch(event, observe=tally)
        finally:
            logs.unbind_invocation(token)
    except FhirpipesError as exc:
        fail(str(exc))
    text = json.dumps(result, indent=indent or None, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a record can hold one): JSON's own escapes
        text = json.dumps(result, indent=indent or None, ensure_ascii=True)
    click.echo(text)
    failed = outcomes.get("failed", 0) + outcomes.get("dropped", 0)
    if failed:
        total = sum(outcomes.values())
        records = "record" if total == 1 else "records"
        click.echo(f"{failed} of {total} {records} failed (exit status {EXIT_RECORD_ERRORS})", err=True)
        raise click.exceptions.Exit(EXIT_RECORD_ERRORS)


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


@contextmanager
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
