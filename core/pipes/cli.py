"""``fhirpipes run``: the registered mappers' Pipes, run locally against a real stream API.

Where the streams are read from:

* ``--embedded``: an embedded DynamoDB (moto's server mode) on 127.0.0.1 and a free port,
  started here and stopped on exit, with the mappers' tables created (partition key ``id``);
* ``--endpoint-url URL``: any DynamoDB-compatible endpoint (with your credentials);
* neither: boto3's usual resolution (``AWS_PROFILE``/``--profile``, ``AWS_REGION``/``--region``,
  ``AWS_ENDPOINT_URL``): your AWS account.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import click

from fhirpipes import logs
from fhirpipes.dispatch import Dispatcher
from fhirpipes.errors import ConfigurationError, FhirpipesError
from fhirpipes.mapper import STARTING_POSITIONS, Mapper
from fhirpipes.pipes.appendfile import check_writable
from fhirpipes.pipes.aws import AwsConfig
from fhirpipes.pipes.checkpoint import DEFAULT_PATH, Checkpoints
from fhirpipes.pipes.deadletter import DeadLetters, dead_letter_path
from fhirpipes.pipes.input_template import InvalidInputTemplate, validate_input_template
from fhirpipes.pipes.patterns import InvalidPattern
from fhirpipes.pipes.retry import describe
from fhirpipes.pipes.runner import PipeDefinition, Runner, RunResult, StatusLine, pipe_name, summary_table
from fhirpipes.pipes.streams import StartingPosition, stream_arn_of
from fhirpipes.plugins import Registry
from fhirpipes.settings import Settings


def build_dispatcher(settings: Settings) -> tuple[Registry, Dispatcher]:
    """The Lambda's dispatcher, with every template compiled up front: a local run should
    refuse a broken template before it reads a stream (the Lambda compiles on first use).

    Not through `fhirpipes.handler`: importing that module runs the Lambda's cold start with
    the Lambda's logging set-up.
    """
    dispatcher = Dispatcher.from_env(settings=settings, compile_templates=True)
    return dispatcher.registry, dispatcher


def select_mappers(registry: Registry, tables: Sequence[str]) -> list[Mapper]:
    """The mappers of the named tables (all when none is named)."""
    if not tables:
        return registry.mappers
    unknown = sorted(set(tables) - set(registry.tables))
    if unknown:
        raise ConfigurationError(
            f"no mapper for table(s) {', '.join(unknown)}; registered: {', '.join(registry.tables)}"
        )
    return [mapper for mapper in registry.mappers if mapper.table in set(tables)]


def build_pipes(
    mappers: Sequence[Mapper],
    dynamodb_client: Any,
    settings: Settings,
    *,
    starting_position: StartingPosition | None = None,
    input_template: str | None = None,
    target_input_template: str | None = None,
) -> list[PipeDefinition]:
    """One `PipeDefinition` per mapper, its stream ARN looked up with DescribeTable."""
    pipes: list[PipeDefinition] = []
    arns: dict[str, str] = {}
    for mapper in mappers:
        if mapper.table not in arns:
            arns[mapper.table] = stream_arn_of(dynamodb_client, mapper.table)
        pipes.append(
            PipeDefinition.for_mapper(
                mapper,
                arns[mapper.table],
                name=pipe_name(mapper, settings.pipe_names, [pipe.name for pipe in pipes]),
                starting_position=starting_position,
                input_template=input_template,
                target_input_template=target_input_template,
            )
        )
    return pipes


@contextlib.contextmanager
def stop_on_interrupt(runner: Runner, stream: IO[str] | None = None) -> Iterator[None]:
    """Ctrl-C (SIGINT) asks ``runner`` to stop after the batch in hand; a second Ctrl-C aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if runner.stopping:
            raise KeyboardInterrupt
        runner.status.clear()
        print("stopping after the batch in hand (Ctrl-C again to abort)", file=stream or sys.stderr)
        runner.stop()

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _AboveStatus:
    """A stderr for log lines that first erases the status line (which is then redrawn)."""

    def __init__(self, status: StatusLine) -> None:
        self.status = status

    def write(self, text: str) -> int:
        self.status.clear()
        return self.status.stream.write(text)

    def flush(self) -> None:
        self.status.stream.flush()

    def isatty(self) -> bool:
        return self.status.stream.isatty()


log_format_option = click.option(
    "--log-format",
    type=click.Choice(["auto", "text", "json"]),
    default="auto",
    show_default=True,
    help="Log lines on stderr: text (time, level, message, key=value; coloured unless NO_COLOR), "
    "json (one object a line), or auto: text on a terminal, else json.",
)
"""The ``--log-format`` option of the commands that log (`logging_to` takes its value)."""


@contextlib.contextmanager
def logging_to(level: str, stream: Any, log_format: str = "auto") -> Iterator[None]:
    """The ``fhirpipes`` logger on ``stream`` while the block runs: as text or JSON lines (``auto``:
    text if ``stream`` is a terminal)."""
    from fhirpipes.progress import is_terminal, wants_color

    if log_format == "auto":
        log_format = "text" if is_terminal(stream) else "json"
    logger = logs.logger
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logs.configure(level, stream, log_format=log_format, color=wants_color(stream))
    try:
        yield
    finally:
        # As it was: a process that goes on (tests, an embedding program) keeps its logging.
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def aws_failure(exc: Exception) -> str:
    """A one-line reason for a boto3/botocore failure: its type, error code and operation."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code", "?")
        operation = getattr(exc, "operation_name", "an AWS call")
        return f"{operation} failed: {code}"
    # botocore's own errors (no credentials, no connection) say what is wrong, with no record value.
    return f"{type(exc).__name__}: {exc}"


def _template_option(value: str | None) -> str | None:
    if value and value.startswith("@"):
        try:
            return Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"can't read {value[1:]}: {type(exc).__name__}") from exc
    return value


@click.command(short_help="Run the mappers' Pipes locally against a stream API.")
@click.option(
    "--table", "tables", multiple=True, metavar="TABLE", help="Run only this table's Pipe (repeatable)."
)
@click.option(
    "--target",
    default="stdout",
    show_default=True,
    metavar="SPEC",
    help="stdout, file:PATH, cloudwatch:GROUP[:STREAM], sqs:QUEUE_URL_OR_NAME or fhir:URL (a FHIR "
    "server's base URL, delivered as the sink Lambda delivers).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help=f"Checkpoint file [default: {DEFAULT_PATH}; in memory with --embedded]. Refused events go "
    "to the dead-letter file beside it (<name>.dead-letters.jsonl).",
)
@click.option("--embedded", is_flag=True, help="Start an embedded DynamoDB (moto) and create the tables.")
@click.option(
    "--endpoint-url", metavar="URL", help="DynamoDB (and target) endpoint, e.g. http://localhost:8000."
)
@click.option("--target-endpoint-url", metavar="URL", help="Another endpoint for the target's service.")
@click.option(
    "--fhir-auth",
    metavar="none|sigv4|secret:ARN",
    help="A fhir: target's auth [default: FHIRPIPES_FHIR_AUTH, else none].",
)
@click.option("--region", help="AWS region (default: boto3's resolution).")
@click.option("--profile", help="AWS profile.")
@click.option(
    "--starting-position",
    type=click.Choice(STARTING_POSITIONS),
    help="Override the mappers' declared starting position (used only where no checkpoint exists).",
)
@click.option(
    "--input-template", metavar="TEXT|@FILE", help="The enrichment's input template (default: none)."
)
@click.option(
    "--target-input-template", metavar="TEXT|@FILE", help="The target's input template (default: none)."
)
@click.option(
    "--dead-letter-bodies",
    is_flag=True,
    help="Also write the refused events themselves (PHI) to the dead-letter file, not only where they are.",
)
@click.option("--once", is_flag=True, help="Stop when every stream is read to its end.")
@click.option("--max-seconds", type=click.FloatRange(min=0), help="Stop after this many seconds.")
@click.option(
    "--idle-exit",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Stop after SECONDS with nothing new.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="WARNING",
    show_default=True,
    help="Log lines on stderr (INFO: one per record and batch; ids only).",
)
@log_format_option
def run(
    tables: tuple[str, ...],
    dead_letter_bodies: bool,
    target: str,
    checkpoint: str | None,
    embedded: bool,
    endpoint_url: str | None,
    target_endpoint_url: str | None,
    fhir_auth: str | None,
    region: str | None,
    profile: str | None,
    starting_position: StartingPosition | None,
    input_template: str | None,
    target_input_template: str | None,
    once: bool,
    max_seconds: float | None,
    idle_exit: float | None,
    log_level: str,
    log_format: str,
) -> None:
    """Run the mappers' Pipes locally: read each table's DynamoDB stream, filter and batch as the
    Pipe declares, map through the Lambda's code path and deliver to a target, checkpointing as
    it goes. Ctrl-C stops after the batch in hand."""
    status = StatusLine()
    try:
        # Everything that can be checked is checked before anything starts: a typo costs no
        # server start, no stream read and no retry.
        plan = plan_run(
            target=target,
            checkpoint=checkpoint,
            embedded=embedded,
            endpoint_url=endpoint_url,
            target_endpoint_url=target_endpoint_url,
            fhir_auth=fhir_auth,
            region=region,
            profile=profile,
            dead_letter_bodies=dead_letter_bodies,
        )
        input_template = _template_option(input_template)
        target_input_template = _template_option(target_input_template)
        validate_input_template(input_template)
        validate_input_template(target_input_template)
        with contextlib.ExitStack() as stack:
            stack.enter_context(logging_to(log_level.upper(), _AboveStatus(status), log_format))
            settings = Settings.from_env()
            registry, dispatcher = build_dispatcher(settings)
            mappers = select_mappers(registry, tables)
            if embedded:
                from fhirpipes.pipes.embedded import EmbeddedAws

                server = stack.enter_context(EmbeddedAws())
                aws = server.config
            else:
                aws = AwsConfig(endpoint_url=endpoint_url, region=region, profile=profile)
            session = aws.session()
            dynamodb = aws.client("dynamodb", session)
            if embedded:
                from fhirpipes.pipes.embedded import create_stream_table

                for table in dict.fromkeys(mapper.table for mapper in mappers):
                    create_stream_table(dynamodb, table)
                click.echo(
                    f"embedded DynamoDB at {aws.endpoint_url} (ready in {server.ready_seconds:.2f} s), "
                    f"region {aws.region}, any credentials; tables: "
                    f"{', '.join(dict.fromkeys(m.table for m in mappers))}",
                    err=True,
                )
            pipes = build_pipes(
                mappers,
                dynamodb,
                settings,
                starting_position=starting_position,
                input_template=input_template,
                target_input_template=target_input_template,
            )
            from fhirpipes.pipes.retry import retrying
            from fhirpipes.pipes.targets import StreamTarget, parse_target

            the_target = parse_target(
                target, aws.with_endpoint(target_endpoint_url), create_missing=embedded, fhir_auth=fhir_auth
            )
            if isinstance(the_target, StreamTarget):
                the_target.before_write = status.clear
            stack.callback(the_target.close)
            retrying(the_target.prepare, what="connecting to the target")
            stack.callback(plan.dead_letters.close)
            runner = Runner(
                dispatcher,
                pipes,
                streams_client=aws.client("dynamodbstreams", session),
                target=the_target,
                checkpoints=plan.checkpoints,
                dead_letters=plan.dead_letters,
                status=status,
            )
            with stop_on_interrupt(runner):
                result = runner.run(once=once, max_seconds=max_seconds, idle_exit=idle_exit)
    except (FhirpipesError, InvalidPattern, InvalidInputTemplate) as exc:
        # The pattern and template errors name the pattern or template, never a record value.
        status.clear()
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # a file of the run (checkpoint, dead letters) that can't be written
        status.clear()
        raise click.ClickException(f"{exc.filename or 'a file'}: {describe(exc)}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith(("botocore", "boto3")):
            status.clear()
            raise click.ClickException(aws_failure(exc)) from exc
        raise
    report(result, err=True)
    if result.totals.dead_lettered:
        click.echo(
            f"{result.totals.dead_lettered} event(s) the target can never take are in "
            f"{plan.dead_letters.path or 'memory'}",
            err=True,
        )


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What `plan_run` checked and opened: the checkpoints (read) and the dead-letter file."""

    checkpoints: Checkpoints
    dead_letters: DeadLetters


def plan_run(
    *,
    target: str,
    checkpoint: str | None,
    embedded: bool,
    endpoint_url: str | None = None,
    target_endpoint_url: str | None = None,
    fhir_auth: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    dead_letter_bodies: bool = False,
) -> RunPlan:
    """Check the options, the target specification and every path before anything starts
    (`click.UsageError` or `ConfigurationError`, one line); read the checkpoint file."""
    from fhirpipes.pipes.targets import FhirTarget, FileTarget, StreamTarget, parse_target

    if embedded and (endpoint_url or profile or region):
        raise click.UsageError(
            "--embedded starts its own endpoint in us-east-1: drop --endpoint-url/--profile/--region"
        )
    spec = parse_target(target, fhir_auth=fhir_auth)  # syntax, names, a file's path: no client yet
    if target_endpoint_url and isinstance(spec, StreamTarget | FileTarget | FhirTarget):
        raise click.UsageError(f"--target-endpoint-url is for cloudwatch and sqs targets, not {spec.name}")
    if fhir_auth is not None and not isinstance(spec, FhirTarget):
        raise click.UsageError(f"--fhir-auth is for fhir: targets, not {spec.name}")
    path = checkpoint if checkpoint is not None else (None if embedded else str(DEFAULT_PATH))
    if path is not None:
        # The checkpoint is replaced by a rename: its folder must be writable, not only the file.
        check_writable(Path(path), "the checkpoint file", folder=True)
    dead_path = dead_letter_path(path if path is not None else DEFAULT_PATH)
    dead_letters = DeadLetters(dead_path, bodies=dead_letter_bodies)
    dead_letters.check()
    if isinstance(spec, FileTarget):
        taken = {
            os.path.abspath(p): what for p, what in ((dead_path, "dead-letter"), (path, "checkpoint")) if p
        }
        clash = taken.get(os.path.abspath(spec.path))
        if clash:
            raise ConfigurationError(f"the target file {spec.path} is also the {clash} file; name another")
    return RunPlan(Checkpoints(path), dead_letters)


def report(result: RunResult, *, err: bool) -> None:
    """The summary table and why the run ended."""
    click.echo(summary_table(result), err=err)
    reasons = {
        "caught-up": "every stream read to its end",
        "idle": "nothing new for the idle time",
        "time-limit": "time limit reached",
        "stopped": "stopped",
    }
    click.echo(f"run ended: {reasons.get(result.reason, result.reason)}", err=err)


__all__ = [
    "aws_failure",
    "build_dispatcher",
    "build_pipes",
    "log_format_option",
    "logging_to",
    "plan_run",
    "report",
    "run",
    "select_mappers",
    "stop_on_interrupt",
]
