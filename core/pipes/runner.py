"""The local Pipe: a table's stream -> filter -> batch -> input template -> enrichment -> target.

One `PipeDefinition` per registered mapper (a Pipe in AWS reads one table's stream for one
mapper). The `Runner` reads each Pipe's stream (`StreamReader`), keeps the records its filters
pass (`matches_any`, the EventBridge pattern semantics), batches them per shard as the Pipe
declares (batch size, batching window), applies the input template if any, calls the enrichment
through the very code path of the Lambda (`Dispatcher.map_batch`), delivers the events to the
target (`deliver`, with retries), sets aside in the dead-letter file what the target can never
take, and only then advances the shard's checkpoint, in one atomic write with the positions of
the exactly-once outputs (the file target, the dead-letter file).

The guarantee (each line is tested by killing the runner at each step of a batch):

* nothing is lost: a shard's checkpoint moves only past records whose events the target took
  (or, refused for good, the dead-letter file holds);
* the file target and the dead-letter file hold each event exactly once, whole, whatever the
  crash: what a batch wrote before its checkpoint is cut at restart and written again;
* the other targets get each event at least once: after a crash between the target's write and
  the checkpoint, the batch is delivered again (every event carries its ``eventID``);
* refused: an event over the target's limit (or that SQS refuses as the sender's fault) goes to
  the dead-letter file, is counted as ``dead_lettered``, and the run goes on.

What happens when:

* a record fails to map: the enrichment turns it into an error event, delivered like any other
  (a poison record never blocks the records behind it);
* the enrichment raises (``FHIRPIPES_ON_ERROR=raise``, a lookup timing out): the batch is
  retried, as Pipes does, then the run stops with `EnrichmentError`, checkpoint not advanced;
* the target fails permanently, or transiently after its retries: the run stops with
  `DeliveryError`, checkpoint not advanced, what an exactly-once output took of it cut;
* `Runner.stop` (Ctrl-C): the batch in hand is finished and checkpointed, then the run ends;
  records read but not yet delivered are read again next time.

Log lines and the status line carry counts and ids only, never a record value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

from fhirpipes.dispatch import Dispatcher
from fhirpipes.errors import ConfigurationError, FhirpipesError
from fhirpipes.logs import logger
from fhirpipes.mapper import MAX_BATCH_SIZE, MAX_BATCHING_WINDOW_SECONDS, Mapper
from fhirpipes.pipes.checkpoint import Checkpoints
from fhirpipes.pipes.deadletter import DeadLetters, dead_letter_path
from fhirpipes.pipes.input_template import (
    PipeContext,
    render_input_template_batch,
    validate_input_template,
)
from fhirpipes.pipes.patterns import matches_any, validate_filters
from fhirpipes.pipes.retry import retrying
from fhirpipes.pipes.streams import ShardState, StartingPosition, StreamReader
from fhirpipes.pipes.targets import Delivery, Target, deliver

POLL_SECONDS = 0.25  # Pipes polls a DynamoDB stream shard about four times a second
ENRICHMENT_ATTEMPTS = 3
ENRICHMENT_BACKOFF_SECONDS = 0.5
COUNTERS = ("read", "filtered", "mapped", "skipped", "failed", "delivered", "dead_lettered")
STEPS = ("before-map", "before-deliver", "after-write", "before-checkpoint", "after-checkpoint")


class EnrichmentError(FhirpipesError):
    """The enrichment failed a whole batch on every attempt (the Pipe would keep retrying it)."""


@dataclasses.dataclass
class Counters:
    """Records ``read`` from the stream, ``filtered`` out, ``mapped`` (PUT/DELETE events),
    ``skipped`` by the enrichment (nothing FHIR shows changed, deletes ignored), ``failed``
    (error events), events ``delivered`` to the target and ``dead_lettered`` (refused by it for
    good, in the dead-letter file)."""

    read: int = 0
    filtered: int = 0
    mapped: int = 0
    skipped: int = 0
    failed: int = 0
    delivered: int = 0
    dead_lettered: int = 0

    def add(self, other: Counters) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}


@dataclasses.dataclass(frozen=True)
class PipeDefinition:
    """One local Pipe: a mapper's table stream and how the Pipe treats it."""

    name: str
    table: str
    stream_arn: str
    filters: tuple[Mapping[str, Any] | str, ...] = ()
    batch_size: int = 10
    batching_window_seconds: float = 0
    starting_position: StartingPosition = "TRIM_HORIZON"
    input_template: str | None = None
    target_input_template: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ConfigurationError(
                f"pipe {self.name}: the batch size must be between 1 and {MAX_BATCH_SIZE}"
            )
        if not 0 <= self.batching_window_seconds <= MAX_BATCHING_WINDOW_SECONDS:
            raise ConfigurationError(
                f"pipe {self.name}: the batching window must be 0 to {MAX_BATCHING_WINDOW_SECONDS} seconds"
            )
        validate_filters(list(self.filters))  # InvalidPattern names the reason
        validate_input_template(self.input_template)
        validate_input_template(self.target_input_template)

    @property
    def arn(self) -> str:
        """``arn:aws:pipes:<region>:<account>:pipe/<name>``, in the stream's region and account."""
        parts = self.stream_arn.split(":")
        region, account = (parts[3], parts[4]) if len(parts) > 4 else ("local", "000000000000")
        return f"arn:aws:pipes:{region}:{account}:pipe/{self.name}"

    @classmethod
    def for_mapper(
        cls,
        mapper: Mapper,
        stream_arn: str,
        *,
        name: str,
        starting_position: StartingPosition | None = None,
        input_template: str | None = None,
        target_input_template: str | None = None,
    ) -> PipeDefinition:
        """The Pipe the mapper declares (``mapper.pipe``, ``mapper.pipe_filters()``), with overrides."""
        spec = mapper.pipe
        return cls(
            name=name,
            table=mapper.table,
            stream_arn=stream_arn,
            filters=tuple(mapper.pipe_filters()),
            batch_size=spec.batch_size,
            batching_window_seconds=spec.batching_window_seconds,
            starting_position=starting_position or spec.starting_position,
            # A future PipeSpec.input_template is honoured; none today means pass-through.
            input_template=input_template or getattr(spec, "input_template", None),
            target_input_template=target_input_template,
        )


def pipe_name(mapper: Mapper, pipe_names: Mapping[str, str], taken: Iterable[str] = ()) -> str:
    """The Pipe's name: ``FHIRPIPES_PIPE_NAMES[table]``, else ``<Table>-<ResourceType>-Pipe``."""
    name = pipe_names.get(mapper.table) or f"{mapper.table}-{mapper.resource_type}-Pipe"
    if name in set(taken):  # several mappers on one table: one Pipe each
        name = f"{name}-{mapper.resource_type}"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:64]


@dataclasses.dataclass
class _Buffer:
    """Records of one shard that passed the filter and wait for their batch."""

    pending: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    window_started: float | None = None
    last_seen: str | None = None  # the last sequence number read (passed or filtered)


class PipeRun:
    """A `PipeDefinition` at work: its reader, buffers and counters."""

    def __init__(self, definition: PipeDefinition, reader: StreamReader) -> None:
        self.definition = definition
        self.reader = reader
        self.counters = Counters()
        self.buffers: dict[str, _Buffer] = {}
        self._filters = list(definition.filters)

    def passes(self, record: Mapping[str, Any]) -> bool:
        """The Pipe's filters, as Pipes applies them: any pattern matches (or there are none)."""
        return matches_any(self._filters, record)

    @property
    def context(self) -> dict[str, Any]:
        return {
            "name": self.definition.name,
            "arn": self.definition.arn,
            "source_arn": self.definition.stream_arn,
        }


@dataclasses.dataclass(frozen=True)
class RunResult:
    """How a run ended (``caught-up``, ``idle``, ``time-limit``, ``stopped``) and each Pipe's counts."""

    reason: str
    pipes: tuple[tuple[PipeDefinition, Counters], ...]

    @property
    def totals(self) -> Counters:
        total = Counters()
        for _, counters in self.pipes:
            total.add(counters)
        return total


class StatusLine:
    """A live line on a terminal (``\\r`` + erase), refreshed at most ten times a second."""

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._shown = False
        self._at = 0.0

    def update(self, counters: Counters, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._at < 0.1:
            return
        self._at = now
        text = "  ".join(f"{label(name)} {value}" for name, value in counters.as_dict().items())
        self.stream.write(f"\r\x1b[K{text}")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


class Runner:
    """Runs local Pipes until caught up, idle, out of time or stopped.

    Args:
        dispatcher: the enrichment (the Lambda's `Dispatcher`).
        pipes: the Pipes to run.
        streams_client: a boto3 ``dynamodbstreams`` client (or a fake with its methods).
        target: where events go.
        checkpoints: where shard positions are kept.
        dead_letters: where events the target refuses go (default: the file beside the
            checkpoints, or in memory with memory-only checkpoints).
        on_step: called with each of `STEPS` as a batch goes through them (tests kill the
            process there to check the guarantee; a tracer can time them).
        rng: the random source of the retries' jitter.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        pipes: Sequence[PipeDefinition],
        *,
        streams_client: Any,
        target: Target,
        checkpoints: Checkpoints | None = None,
        dead_letters: DeadLetters | None = None,
        on_step: Callable[[str], None] | None = None,
        rng: Any = None,
        poll_seconds: float = POLL_SECONDS,
        status: StatusLine | None = None,
        delivery_attempts: int = 5,
        delivery_backoff: float = 0.5,
        enrichment_attempts: int = ENRICHMENT_ATTEMPTS,
        enrichment_backoff: float = ENRICHMENT_BACKOFF_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.dispatcher = dispatcher
        self.target = target
        self.checkpoints = checkpoints or Checkpoints()
        if dead_letters is None:
            path = self.checkpoints.path
            dead_letters = DeadLetters(dead_letter_path(path) if path is not None else None)
        self.dead_letters = dead_letters
        self.on_step = on_step
        self.rng = rng
        self.poll_seconds = poll_seconds
        self.status = status or StatusLine(enabled=False)
        self.delivery_attempts = delivery_attempts
        self.delivery_backoff = delivery_backoff
        self.enrichment_attempts = enrichment_attempts
        self.enrichment_backoff = enrichment_backoff
        self._clock = clock
        self._sleep = sleep
        self._stopping = False
        self.runs = [
            PipeRun(
                pipe,
                StreamReader(
                    streams_client,
                    pipe.stream_arn,
                    starting_position=pipe.starting_position,
                    positions=self.checkpoints.shards(pipe.name, pipe.stream_arn),
                    clock=clock,
                    sleep=sleep,
                ),
            )
            for pipe in pipes
        ]
        # Cut what the outputs hold beyond the last checkpoint (a batch written but never
        # checkpointed, a line torn by a crash): it is read from the stream and written again.
        started: dict[str, dict[str, Any]] = {}
        for output in self._outputs:
            saved = self.checkpoints.output(output.key)
            output.recover(saved)
            position = output.position()
            if saved is None and position is not None:
                started[output.key] = position
        # An output new to this checkpoint file: its length now is saved before the first
        # batch, or a crash before the first checkpoint would leave that batch to be repeated.
        self.checkpoints.record_outputs(started)

    @property
    def _outputs(self) -> tuple[Target | DeadLetters, ...]:
        return (self.target, self.dead_letters)

    def _step(self, step: str) -> None:
        if self.on_step is not None:
            self.on_step(step)

    # --- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop after the batch in hand (safe to call from a signal handler)."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def totals(self) -> Counters:
        total = Counters()
        for run in self.runs:
            total.add(run.counters)
        return total

    def run(
        self, *, once: bool = False, max_seconds: float | None = None, idle_exit: float | None = None
    ) -> RunResult:
        """Poll every Pipe's stream until a stop condition; returns the counts.

        Args:
            once: stop as soon as every shard is read to its end (partial batches are flushed).
            max_seconds: stop after this long (partial batches are flushed).
            idle_exit: stop when caught up and nothing new came for this long.
        """
        started = last_activity = self._clock()
        reason = "stopped"
        try:
            while not self._stopping:
                if self._poll_once():
                    last_activity = self._clock()
                if self._stopping:
                    break
                now = self._clock()
                caught_up = all(run.reader.caught_up for run in self.runs)
                if once and caught_up:
                    reason = "caught-up"
                elif max_seconds is not None and now - started >= max_seconds:
                    reason = "time-limit"
                elif idle_exit is not None and caught_up and now - last_activity >= idle_exit:
                    reason = "idle"
                else:
                    self._flush_due(force=False)
                    if caught_up:
                        self._pause()
                    continue
                self._flush_due(force=True)
                if self._stopping:
                    reason = "stopped"
                break
        finally:
            self.status.update(self.totals, force=True)
            self.status.clear()
            # Let go of the dead-letter file (and its lock); it opens again if the run resumes.
            self.dead_letters.close()
        return RunResult(reason, tuple((run.definition, run.counters) for run in self.runs))

    def _pause(self) -> None:
        # In short steps, so a stop request is seen quickly.
        remaining = self.poll_seconds
        while remaining > 0 and not self._stopping:
            step = min(0.05, remaining)
            self._sleep(step)
            remaining -= step

    # --- reading ------------------------------------------------------------------------------

    def _poll_once(self) -> bool:
        """One GetRecords on every readable shard of every Pipe; True if any record came."""
        activity = False
        for run in self.runs:
            for shard in run.reader.readable():
                if self._stopping:
                    return activity
                records = run.reader.read(shard)
                if records:
                    activity = True
                    self._accept(run, shard, records)
                self._flush(run, shard, force=shard.finished)
                self.status.update(self.totals)
        return activity

    def _accept(self, run: PipeRun, shard: ShardState, records: list[dict[str, Any]]) -> None:
        buffer = run.buffers.setdefault(shard.shard_id, _Buffer())
        run.counters.read += len(records)
        for record in records:
            buffer.last_seen = record["dynamodb"]["SequenceNumber"]
            if run.passes(record):
                if not buffer.pending:
                    buffer.window_started = self._clock()
                buffer.pending.append(record)
            else:
                run.counters.filtered += 1

    # --- batches ------------------------------------------------------------------------------

    def _flush_due(self, *, force: bool) -> None:
        for run in self.runs:
            for shard_id in list(run.buffers):
                if self._stopping:
                    return
                self._flush(run, run.reader.shards[shard_id], force=force)

    def _flush(self, run: PipeRun, shard: ShardState, *, force: bool) -> None:
        """Send the shard's full batches (and a partial one when its window closed or ``force``)."""
        buffer = run.buffers.get(shard.shard_id)
        if buffer is None:
            return
        size = run.definition.batch_size
        window = run.definition.batching_window_seconds
        while buffer.pending and not self._stopping:
            waited = self._clock() - (buffer.window_started or 0.0)
            if len(buffer.pending) < size and not force and window > 0 and waited < window:
                break
            batch = buffer.pending[:size]
            try:
                self._process(run, shard, batch)
            except BaseException:
                # Not checkpointed: what the exactly-once outputs took of it goes too.
                for output in self._outputs:
                    output.rollback()
                raise
            del buffer.pending[: len(batch)]
            buffer.window_started = self._clock() if buffer.pending else None
            position = batch[-1]["dynamodb"]["SequenceNumber"] if buffer.pending else buffer.last_seen
            self._step("before-checkpoint")
            self._checkpoint(run, shard, position)
            self._step("after-checkpoint")
        if not buffer.pending and buffer.last_seen is not None:
            # Only filtered records since the last batch: move past them too.
            self._checkpoint(run, shard, buffer.last_seen)

    def _checkpoint(self, run: PipeRun, shard: ShardState, position: str | None) -> None:
        if position is None:
            return
        outputs: dict[str, dict[str, Any]] = {}
        for output in self._outputs:
            saved = output.position()
            if saved is not None:
                outputs[output.key] = saved
        self.checkpoints.advance(
            run.definition.name, run.definition.stream_arn, shard.shard_id, position, outputs
        )
        for output in self._outputs:
            output.commit()

    def _process(self, run: PipeRun, shard: ShardState, batch: list[dict[str, Any]]) -> None:
        definition = run.definition
        self._step("before-map")
        ingestion = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        pipe = {**run.context, "ingestion_time": ingestion}
        template_context = PipeContext(
            name=definition.name,
            arn=definition.arn,
            source_arn=definition.stream_arn,
            target_arn=None,
            ingestion_time=ingestion,
        )
        payload: Any = render_input_template_batch(definition.input_template, batch, pipe=template_context)
        events = self._enrich(run, payload, pipe)
        for event in events:
            command = event.get("details", {}).get("command") if isinstance(event, Mapping) else None
            if command == "ERROR":
                run.counters.failed += 1
            else:
                run.counters.mapped += 1
        run.counters.skipped += max(0, len(batch) - len(events))
        mapped = events
        if definition.target_input_template:
            events = render_input_template_batch(
                definition.target_input_template, events, pipe=template_context
            )
        self._step("before-deliver")
        delivery = Delivery(0)
        if events:
            delivery = deliver(
                self.target,
                events,
                attempts=self.delivery_attempts,
                backoff=self.delivery_backoff,
                sleep=self._sleep,
                rng=self.rng,
            )
            self._step("after-write")
            run.counters.delivered += delivery.delivered
            if delivery.refused:
                self._dead_letter(run, shard, batch, mapped, events, delivery)
        logger.info(
            "batch delivered",
            extra={
                "fhirpipes": {
                    "pipe": definition.name,
                    "records": len(batch),
                    "events": len(events),
                    "deadLettered": len(delivery.refused),
                    "firstSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                    "lastSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                }
            },
        )

    def _dead_letter(
        self,
        run: PipeRun,
        shard: ShardState,
        batch: list[dict[str, Any]],
        mapped: list[Any],
        events: list[Any],
        delivery: Delivery,
    ) -> None:
        """The refused events to the dead-letter file, each with where its record is in the stream."""
        sequences = {record.get("eventID"): record["dynamodb"]["SequenceNumber"] for record in batch}
        entries, bodies = [], []
        for index, reason in delivery.refused:
            # The event as mapped names its record, even when a target template reshaped it.
            source = mapped[index] if len(mapped) == len(events) else events[index]
            event_id = source.get("eventID") if isinstance(source, Mapping) else None
            entries.append(
                {
                    "pipe": run.definition.name,
                    "streamArn": run.definition.stream_arn,
                    "shardId": shard.shard_id,
                    "sequenceNumber": sequences.get(event_id),
                    "firstSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                    "lastSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                    "eventID": event_id,
                    "target": self.target.name,
                    "error": reason,
                }
            )
            bodies.append(events[index])
        # A dead-letter write that fails is cut back (AppendFile), so retrying it is safe.
        retrying(
            lambda: self.dead_letters.add(entries, bodies),
            what="writing the dead-letter file",
            backoff=self.delivery_backoff,
            sleep=self._sleep,
        )
        run.counters.dead_lettered += len(entries)
        logger.warning(
            "events the target can never take went to the dead-letter file",
            extra={
                "fhirpipes": {
                    "pipe": run.definition.name,
                    "events": len(entries),
                    "eventIDs": [entry["eventID"] for entry in entries],
                    "deadLetters": str(self.dead_letters.path) if self.dead_letters.path else None,
                }
            },
        )

    def _enrich(self, run: PipeRun, payload: Any, pipe: Mapping[str, Any]) -> list[Any]:
        for attempt in range(1, self.enrichment_attempts + 1):
            try:
                return self.dispatcher.map_batch(payload, pipe=pipe)
            except Exception as exc:  # the Lambda would fail the invocation: Pipes retries the batch
                failure = type(exc).__name__
                if attempt == self.enrichment_attempts:
                    where = f" [{exc}]" if isinstance(exc, FhirpipesError) else ""
                    raise EnrichmentError(
                        f"pipe {run.definition.name}: the enrichment failed the batch {attempt} times "
                        f"({failure}){where}; the batch is not checkpointed and will be read again"
                    ) from exc
                logger.warning(
                    "the enrichment failed the batch; retrying",
                    extra={"fhirpipes": {"pipe": run.definition.name, "attempt": attempt, "error": failure}},
                )
                self._sleep(self.enrichment_backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover


def label(counter: str) -> str:
    """A counter's name as shown: ``dead_lettered`` -> ``dead-lettered``."""
    return counter.replace("_", "-")


def summary_table(result: RunResult) -> str:
    """The counts per Pipe and in total, as a plain-text table."""
    header = ("pipe", "table", *map(label, COUNTERS))
    rows = [(d.name, d.table, *map(str, c.as_dict().values())) for d, c in result.pipes]
    if len(rows) > 1:
        rows.append(("total", "", *map(str, result.totals.as_dict().values())))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])
