"""One partition of a backfill, start to finish: plain Python, the same on every engine.

`run_partition` reads the partition's items (`fhirpipes.backfill.sources`), turns each into
the INSERT the Lambda would get (`fhirpipes.backfill.items`), keeps those the table's Pipes
would pass (the mappers' filters), maps them with the Lambda's own dispatcher, and sends the
resources on: into NDJSON files per resource type (``data/<Type>-<partition>-<n>.ndjson``,
each below ``max_file_bytes``), or into a FHIR store through the sink (`fhirpipes.backfill.store`).

What is guaranteed, per item read: exactly one of written, skipped (no Pipe of its table would
pass it, or the store's guard kept a newer state) or an error line (a line that is no item, an
item without its keys, a record the mapper refuses, a resource the store refuses); so
``read == written + skipped + errors``. A poison item never stops the partition. A fault of the
source itself (an unreadable file, an exception of a mapper's hook, a lost connection) does: the
partition is not marked finished, and a rerun does it again from its first item.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from fhirpipes.backfill.folder import Folder
from fhirpipes.backfill.items import event_id, insert_record
from fhirpipes.backfill.job import Job, Partition, PartitionResult
from fhirpipes.backfill.state import State
from fhirpipes.dispatch import Dispatcher, envelope
from fhirpipes.errors import ErrorCode, InvalidResourceError, MalformedRecordError, RecordError
from fhirpipes.logs import LOGGER_NAME
from fhirpipes.mapper import Mapper

STORE_CHUNK = 100
"""Resources per delivery to a FHIR store (the sink groups them per resource, in order)."""


def data_file_name(resource_type: str, partition: int, number: int) -> str:
    """``data/Patient-00003-000.ndjson``: fixed by the partition, so a rerun replaces, never adds."""
    return f"data/{resource_type}-{partition:05d}-{number:03d}.ndjson"


PROGRESS_EVERY = 500
"""Items between two calls of ``progress``."""


def run_partition(
    job: Job, partition: Partition, progress: Callable[[int, int], None] | None = None
) -> PartitionResult:
    """Back-fill one partition (or return its result if a run before finished it).

    ``progress`` is called with (items read, errors) since its last call, every `PROGRESS_EVERY`
    items and at the end.
    """
    state = State(Folder(job.state, job.source.aws))
    finished = state.result(partition.index)
    if finished is not None:
        if progress is not None:
            progress(finished.read, finished.errors)
        return finished
    dispatcher, filters = _mapping(job)
    out = Folder(job.out, job.source.aws) if job.out else None
    result = PartitionResult(partition.index, partition.name)
    with state.folder.scratch() as scratch, _quiet_logs():
        errors = _ErrorLines(Path(scratch) / "errors.ndjson", job.errors)
        sink = _FileSink(Path(scratch), partition.index, job.max_file_bytes) if out else _StoreSink(job)
        reported = (0, 0)
        for where, raw, problem in _records(job, partition):
            result.read += 1
            if progress is not None and result.read % PROGRESS_EVERY == 0:
                progress(result.read - reported[0], result.errors - reported[1])
                reported = (result.read, result.errors)
            if problem is not None:
                result.errors += 1
                errors.add(where, problem, raw)
                continue
            if not filters.passes(raw):
                result.skipped += 1
                continue
            outcome = dispatcher.map_record(raw)
            if outcome.status == "mapped" and outcome.event is not None:
                sink.add(where, raw, outcome.event)
            elif outcome.status == "failed" and outcome.error is not None:
                result.errors += 1
                errors.add(where, outcome.error, raw, outcome.event)
            else:  # an INSERT isn't "skipped" by skip_unchanged; kept for any mapper that declines one
                result.skipped += 1
        for where, raw, problem in sink.finish():
            if problem is None:
                result.skipped += 1
            else:
                result.errors += 1
                errors.add(where, problem, raw)
        result.written = sink.written
        # Files first, the marker last: a partition with a marker has all of its files in place.
        if out is not None:
            assert isinstance(sink, _FileSink)
            for name, path, resource_type, count in sink.files:
                size = path.stat().st_size
                out.put_file(name, path)
                result.files.append({"type": resource_type, "url": name, "count": count, "bytes": size})
        errors.close()
        if errors.count:
            name = state.errors_name(partition.index)
            state.folder.put_file(name, errors.path)
            result.error_file = {"url": name, "count": errors.count, "bytes": errors.bytes}
    state.finish(result)
    if progress is not None:
        progress(result.read - reported[0], result.errors - reported[1])
    return result


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Error lines go to errors.ndjson: the dispatcher's ERROR log line per failed item would only
    repeat them on stderr (under the progress bar). Restored after: the process may map on."""
    logger = logging.getLogger(LOGGER_NAME)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _records(job: Job, partition: Partition) -> Iterator[tuple[str, Any, RecordError | None]]:
    """``(where, raw INSERT record or item, problem)`` per line of the partition."""
    from fhirpipes.backfill.sources import BadLine, read_items

    for line, item in read_items(job.source, partition):
        where = event_id(partition, line)
        if isinstance(item, BadLine):
            problem = MalformedRecordError(
                f"the line is not an item: {item.reason}", event_id=where, table=job.snapshot.table
            )
            yield where, None, problem
            continue
        try:
            yield where, insert_record(item, job.snapshot, job.keys, where), None
        except MalformedRecordError as exc:
            yield where, {"Item": item}, exc


class PipeFilters:
    """The filters of a table's Pipes, compiled once: an INSERT goes on when any Pipe's filters pass it."""

    def __init__(self, filters: list[list[dict[str, Any]]]) -> None:
        from fhirpipes.pipes.patterns import compile_pattern

        self._pipes = [[compile_pattern(pattern) for pattern in patterns] for patterns in filters]
        # The common case, checked once rather than per item: a Pipe that passes every INSERT (no
        # filter, or only {"eventName": [..., "INSERT", ...]}), as the default filters do.
        self.pass_all = not filters or any(
            not patterns or any(_passes_every_insert(pattern) for pattern in patterns) for patterns in filters
        )

    def passes(self, raw: Mapping[str, Any]) -> bool:
        """Whether a Pipe of the table would pass the INSERT record ``raw``."""
        return self.pass_all or any(
            any(pattern.matches(raw) for pattern in patterns) for patterns in self._pipes
        )


def _passes_every_insert(pattern: Mapping[str, Any]) -> bool:
    names = pattern.get("eventName")
    return set(pattern) == {"eventName"} and isinstance(names, list) and "INSERT" in names


@functools.cache
def _mapping_for(environ: tuple[tuple[str, str], ...], table: str) -> tuple[Dispatcher, PipeFilters]:
    from fhirpipes.engine import check_template
    from fhirpipes.settings import Settings

    merged = {**os.environ, **dict(environ)}
    # A poison item is an error line, never a stop: whatever FHIRPIPES_ON_ERROR says for the Lambda.
    settings = Settings.from_env(merged)._replace(on_error="emit", metrics=False)
    dispatcher = Dispatcher.from_env(merged, settings=settings)
    mappers: list[Mapper] = [mapper for mapper in dispatcher.registry.mappers if mapper.table == table]
    # This table's templates only: another table's broken template is that table's backfill's error.
    for mapper in mappers:
        check_template(mapper.template_package, mapper.template)
    return dispatcher, PipeFilters([mapper.pipe_filters() for mapper in mappers])


def _mapping(job: Job) -> tuple[Dispatcher, PipeFilters]:
    """The dispatcher and the table's Pipe filters, built once per process (a worker, an executor)."""
    return _mapping_for(job.environ, job.snapshot.table)


class _ErrorLines:
    """The partition's error lines: error events (with the INSERT record) or locations only."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path, self.mode = path, mode
        self.count = self.bytes = 0
        self._handle: IO[bytes] | None = None

    def add(self, where: str, problem: RecordError, raw: Any, event: dict[str, Any] | None = None) -> None:
        """One line for the item read at ``where``: the dispatcher's error ``event`` when it made one
        (the Lambda's own, naming the mapper), else one in the same envelope."""
        error = problem.to_dict()
        if self.mode == "locations":
            line: dict[str, Any] = {"location": where, "error": error}
        else:
            line = (
                dict(event) if event is not None else envelope(None, where, "ERROR", error=error, record=raw)
            )
            line["location"] = where
        data = _encode(line)
        if data is None:  # a record the encoder refuses (a lone surrogate): its location stays
            data = _encode({"location": where, "error": error, "recordOmitted": "encoding"})
            assert data is not None
        if self._handle is None:
            self._handle = open(self.path, "wb")  # noqa: SIM115 (closed by close(), after the last line)
        self._handle.write(data)
        self.count += 1
        self.bytes += len(data)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _encode(value: Any) -> bytes | None:
    """One NDJSON line, as the sink sends JSON to a FHIR store (orjson, UTF-8); None if it can't be."""
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
    except (orjson.JSONEncodeError, TypeError):
        return None


class _FileSink:
    """NDJSON files per resource type, each rolled over before it passes ``max_bytes``."""

    def __init__(self, scratch: Path, partition: int, max_bytes: int) -> None:
        self.scratch, self.partition, self.max_bytes = scratch, partition, max_bytes
        self.written = 0
        self.files: list[tuple[str, Path, str, int]] = []  # (name, path, type, count), in order opened
        self._open: dict[str, tuple[IO[bytes], str, int]] = {}  # type -> (handle, name, bytes so far)
        self._counts: dict[str, int] = {}  # file name -> resources in it
        self._numbers: dict[str, int] = {}  # type -> number of its file open now
        self._paths: dict[str, tuple[Path, str]] = {}
        self._failed: list[tuple[str, Any, RecordError | None]] = []

    def add(self, where: str, raw: Any, event: dict[str, Any]) -> None:
        details = event["details"]
        entity = details.get("entity")
        if details.get("command") != "PUT" or not isinstance(entity, dict):
            # An INSERT gives a PUT; anything else would be a mapper's doing: reported, not lost.
            problem = RecordError("the mapper gave no resource to PUT for an INSERT", event_id=where)
            self._failed.append((where, raw, problem))
            return
        data = _encode(entity)
        if data is None:
            problem = InvalidResourceError(
                "the resource can't be encoded as UTF-8 JSON (a lone surrogate in a string)", event_id=where
            )
            self._failed.append((where, raw, problem))
            return
        resource_type = entity["resourceType"]
        current = self._open.get(resource_type)
        if current is None:
            current = self._start(resource_type)
        elif current[2] and current[2] + len(data) > self.max_bytes:
            current[0].close()
            current = self._start(resource_type)
        handle, name, size = current
        handle.write(data)
        self._open[resource_type] = (handle, name, size + len(data))
        self._counts[name] += 1
        self.written += 1

    def _start(self, resource_type: str) -> tuple[IO[bytes], str, int]:
        number = self._numbers.get(resource_type, -1) + 1
        self._numbers[resource_type] = number
        name = data_file_name(resource_type, self.partition, number)
        path = self.scratch / f"{resource_type}-{number:03d}.ndjson"
        self._paths[name] = (path, resource_type)
        self._counts[name] = 0
        return open(path, "wb"), name, 0

    def finish(self) -> list[tuple[str, Any, RecordError | None]]:
        for handle, _, _ in self._open.values():
            handle.close()
        self.files = [(name, path, kind, self._counts[name]) for name, (path, kind) in self._paths.items()]
        return self._failed


class _StoreSink:
    """Resources into a FHIR store through the sink, in chunks, with the sink's guard."""

    def __init__(self, job: Job) -> None:
        from fhirpipes.backfill.store import StoreWriter

        assert job.target is not None
        self._writer = StoreWriter(job.target, job.fhir_auth, {**os.environ, **dict(job.environ)})
        self._pending: list[tuple[str, Any, dict[str, Any]]] = []
        self._done: list[tuple[str, Any, RecordError | None]] = []
        self.written = 0

    def add(self, where: str, raw: Any, event: dict[str, Any]) -> None:
        self._pending.append((where, raw, event))
        if len(self._pending) >= STORE_CHUNK:
            self._flush()

    def _flush(self) -> None:
        chunk, self._pending = self._pending, []
        outcomes = self._writer.send([event for _, _, event in chunk])
        for (where, raw, _), (outcome, reason) in zip(chunk, outcomes, strict=True):
            if outcome == "written":
                self.written += 1
            elif outcome == "skipped":
                self._done.append((where, raw, None))
            else:
                problem = RecordError(
                    f"the FHIR store did not take the resource: {reason or outcome}",
                    event_id=where,
                    code=ErrorCode.STORE_REFUSED,
                )
                self._done.append((where, raw, problem))

    def finish(self) -> list[tuple[str, Any, RecordError | None]]:
        if self._pending:
            self._flush()
        self._writer.close()
        return self._done
