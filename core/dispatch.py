"""The dispatcher: a Pipe's batch in, one event per record out, in input order.

Each record is routed by its table (and the mappers' ``match``) to a mapper, mapped to a FHIR
resource, and wrapped in the original implementation's envelope, generalised::

    {"version": "1.0", "source": "PatientTable", "eventType": "PatientChange",
     "correlationId": <eventID>, "eventID": <eventID>,
     "details": {"command": "PUT" | "DELETE", "entity": <FHIR resource>}}

A record that fails for reasons of its own becomes an error event in the same envelope
(``eventType`` ``PatientMappingFailed``, ``details.command`` ``ERROR``, the error and the
original record), so a poison record never blocks the shard behind it and is never lost.
Pipes can't take partial failures from an enrichment: raising fails and retries the batch.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from fhirpipes import engine
from fhirpipes.change import certainly_shows, reads_agree
from fhirpipes.engine.runtime import same
from fhirpipes.errors import BatchError, ErrorCode, MalformedRecordError, RecordError
from fhirpipes.logs import logger
from fhirpipes.mapper import Mapper
from fhirpipes.plugins import Registry, load_registry
from fhirpipes.records import StreamRecord, identify, parse_record, records_of, table_from_arn
from fhirpipes.resource import (
    base_context,
    finish,
    resource_id,
    resource_value,
    source_version,
    stamp_lineage,
)
from fhirpipes.response import response_size, within
from fhirpipes.settings import Settings
from fhirpipes.storeversion import check_store_version

ENVELOPE_VERSION = "1.0"


# A NamedTuple, not a dataclass: a frozen dataclass costs a Lambda's cold start ~2 ms to define
# and ~4x as much per instance; this one is made per record.
class Outcome(NamedTuple):
    """What became of one record: ``mapped``, ``skipped`` (nothing to send), ``failed`` or ``dropped``."""

    status: str
    event: dict[str, Any] | None = None
    error: RecordError | None = None


class Dispatcher:
    """Maps batches with one registry and one set of settings (both built once per cold start)."""

    def __init__(self, registry: Registry, settings: Settings | None = None) -> None:
        self.registry = registry
        self.settings = settings or Settings()
        check_store_version(registry.mappers, self.settings.store_version)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] = os.environ,
        *,
        settings: Settings | None = None,
        plugins: Iterable[str] | None = None,
        compile_templates: bool = False,
    ) -> Dispatcher:
        """The dispatcher ``environ`` configures, as the Lambda's handler builds it at cold start.

        Args:
            environ: where the ``FHIRPIPES_*`` variables are read: the settings (`Settings.from_env`)
                and the plugins to load (``FHIRPIPES_PLUGINS``, else all installed).
            settings: these instead of ``environ``'s.
            plugins: these entry-point names instead of ``FHIRPIPES_PLUGINS``'s.
            compile_templates: compile every mapper's template now, so that a broken one is refused
                before any work starts (a local run, a backfill). The Lambda leaves it to first use:
                a cold start then pays for the one table its batch holds, not for all of them.
        """
        settings = settings if settings is not None else Settings.from_env(environ)
        registry = load_registry(only=plugins, environ=environ)
        if compile_templates:
            for mapper in registry.mappers:
                engine.check_template(mapper.template_package, mapper.template)
        return cls(registry, settings)

    def map_batch(
        self,
        event: Any,
        *,
        pipe: Mapping[str, Any] | None = None,
        observe: Callable[[dict[tuple[str | None, str], int], float], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Map any accepted batch shape; returns the events to hand to the Pipe's target.

        ``observe`` (the handler's metrics, `fhirpipes.metrics.EmfWriter`) is called once the
        batch is done, raised or not, with its record counts by (table, outcome) and its
        duration in seconds; a record that fails the batch counts as ``failed``.
        """
        started = time.perf_counter()
        out = []
        counts = dict.fromkeys(("mapped", "skipped", "failed", "dropped"), 0)
        observing = observe is not None
        tally: dict[tuple[str | None, str], int] = {}
        records = records_of(event)
        try:
            for raw in records:
                try:
                    outcome = self.map_record(raw, pipe=pipe)
                except Exception as exc:
                    if observing:
                        key = (exc.table if isinstance(exc, RecordError) else identify(raw)[1], "failed")
                        tally[key] = tally.get(key, 0) + 1
                    raise
                counts[outcome.status] += 1
                if observing:
                    # Parsed records have a string ARN that names a table; failed ones say theirs.
                    error = outcome.error
                    table = table_from_arn(raw["eventSourceARN"]) if error is None else error.table
                    key = (table, outcome.status)
                    tally[key] = tally.get(key, 0) + 1
                if outcome.event is not None:
                    out.append(outcome.event)
            out = self._fit(out)
        finally:
            if observe is not None:
                observe(tally, time.perf_counter() - started)
        logger.info("batch mapped", extra={"fhirpipes": {"records": len(records), **counts}})
        return out

    def map_record(self, raw: Any, *, pipe: Mapping[str, Any] | None = None) -> Outcome:
        """Map one raw record; a `RecordError` becomes an error event, is raised, or dropped per settings."""
        record: StreamRecord | None = None
        mapper: Mapper | None = None
        try:
            record = parse_record(raw)
            mapper = self.registry.mapper_for(record)
            event = self._map(mapper, record, self._pipe_variables(record, pipe))
        except RecordError as exc:
            event_id, table, sequence = identify(raw)
            exc.locate(event_id=event_id, table=table, sequence_number=sequence)
            return self._on_error(exc, raw, mapper)
        if event is None:
            if logger.isEnabledFor(logging.DEBUG):
                fields = {**_where(record), "outcome": "skipped"}
                logger.debug("record skipped: nothing FHIR shows changed", extra={"fhirpipes": fields})
            return Outcome("skipped")
        if logger.isEnabledFor(logging.DEBUG):  # checked first: building the fields costs per record
            fields = {**_where(record), "outcome": "mapped", "command": event["details"]["command"]}
            logger.debug(
                "record mapped", extra={"fhirpipes": {**fields, "resourceType": mapper.resource_type}}
            )
        return Outcome("mapped", event)

    def _map(self, mapper: Mapper, record: StreamRecord, pipe: Mapping[str, Any]) -> dict[str, Any] | None:
        if record.event_name == "REMOVE":
            return self._remove(mapper, record, pipe)
        new = record.new
        if new is None:
            raise MalformedRecordError(
                "the record carries no NewImage (the stream view type must include new images)",
                path="dynamodb.NewImage",
            )
        old = record.old if record.event_name == "MODIFY" and self._skip_unchanged(mapper) else None
        if old is not None:
            reads = engine.load(mapper.template_package, mapper.template).reads
            if reads is not None and reads_agree(reads, new, old):
                return None  # nothing the template reads changed: the resource can't have
        context = base_context(mapper, record, pipe)
        value = resource_value(mapper, context, new, self.settings.render_budget)
        entity = finish(mapper, record, value)
        if old is not None and not self._changed(mapper, record, context, value, entity):
            return None
        return envelope(mapper, record.event_id, "PUT", entity=entity)

    def _changed(
        self,
        mapper: Mapper,
        record: StreamRecord,
        context: Mapping[str, Any],
        value: dict[str, Any],
        entity: dict[str, Any],
    ) -> bool:
        """Whether the MODIFY's old image gives another resource than ``entity`` (see `fhirpipes.change`)."""
        try:
            before = resource_value(mapper, context, record.old, self.settings.render_budget)
        except RecordError:
            return True  # the old item didn't map; the new one does: that's a change
        if same(before, value):
            return False
        if certainly_shows(before, value, entity):
            return True
        try:
            return finish(mapper, record, before) != entity
        except RecordError:
            return True

    def _remove(self, mapper: Mapper, record: StreamRecord, pipe: Mapping[str, Any]) -> dict[str, Any] | None:
        if mapper.on_delete == "ignore":
            return None
        context = base_context(mapper, record, pipe)
        if mapper.on_delete == "soft-delete":
            if record.old is None:
                raise MalformedRecordError(
                    "a soft delete needs the OldImage (use a stream view type with old images)",
                    path="dynamodb.OldImage",
                )
            entity = finish(
                mapper, record, resource_value(mapper, context, record.old, self.settings.render_budget)
            )
            entity["active"] = False
            return envelope(mapper, record.event_id, "PUT", entity=entity)
        # DELETE addresses the resource by the id the template gives the item (as a PUT would).
        image = record.old if record.old is not None else record.keys
        try:
            value = resource_value(mapper, context, image, self.settings.render_budget)
        except RecordError as exc:
            if record.old is None:
                raise RecordError(
                    "a REMOVE without OldImage can't be given the template's id: the template needs "
                    "more than the keys (use a stream view type with old images)",
                    template=exc.template,
                    line=exc.line,
                    code=ErrorCode.REMOVE_NEEDS_OLD_IMAGE,
                ) from None
            raise
        # With its lineage, as a PUT's: the sink's stale-write guard orders a DELETE by it too.
        entity = stamp_lineage(
            {"resourceType": mapper.resource_type, "id": resource_id(record, value)},
            record,
            source_version(mapper, record),
        )
        return envelope(mapper, record.event_id, "DELETE", entity=entity)

    def _skip_unchanged(self, mapper: Mapper) -> bool:
        override = self.settings.skip_unchanged
        return mapper.skip_unchanged if override is None else override

    def _pipe_variables(self, record: StreamRecord, pipe: Mapping[str, Any] | None) -> dict[str, Any]:
        if pipe is not None:
            return {"source_arn": record.source_arn, **pipe}
        name = self.settings.pipe_names.get(record.table)
        arn = None
        if name:
            # The Pipe lives in the stream's region and account: arn:aws:pipes:<region>:<account>:pipe/<name>
            parts = record.source_arn.split(":")
            arn = f"arn:aws:pipes:{parts[3]}:{parts[4]}:pipe/{name}"
        return {"name": name, "arn": arn, "source_arn": record.source_arn, "ingestion_time": None}

    def _on_error(self, exc: RecordError, raw: Any, mapper: Mapper | None) -> Outcome:
        """The ``FHIRPIPES_ON_ERROR`` policy: an error event (emit), the batch fails (raise), or nothing (drop)."""
        on_error = self.settings.on_error
        if on_error == "raise":
            _log_failure(exc, "raised")
            raise exc
        if on_error == "drop":
            _log_failure(exc, "dropped")
            return Outcome("dropped", error=exc)
        _log_failure(exc, "failed")
        return Outcome(
            "failed", envelope(mapper, exc.event_id, "ERROR", error=exc.to_dict(), record=raw), exc
        )

    def _fit(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The response, within the Pipe's limit and encodable by the runtime.

        Error events carry their whole record (about 1.35x its size). When the response would be
        over the limit, or the runtime couldn't encode a record (a lone surrogate on python3.12+,
        nesting beyond its encoder's depth), error events shed their records, keeping where they
        came from and the error, and say so (``recordOmitted``), so the batch still goes through.
        """
        limit = self.settings.max_response_bytes
        try:
            if within(events, limit):
                return events
            reason = "size"
        except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
            reason = "encoding"
        shed = [_without_record(event, reason) for event in events]
        omitted = sum(1 for event in shed if event["details"].get("recordOmitted"))
        try:
            size = response_size(shed)
        except (TypeError, ValueError, RecursionError) as exc:
            raise BatchError(f"the runtime could not encode the response ({type(exc).__name__})") from None
        if size > limit:
            raise BatchError(
                f"the enrichment response would be {size} bytes, over the Pipe's limit of {limit}, even with "
                f"error events' records left out: lower the Pipe's batch size "
                f"(this batch had {len(events)} {'event' if len(events) == 1 else 'events'})"
            )
        logger.warning(
            "error events left out their records so that the response fits",
            extra={"fhirpipes": {"reason": reason, "recordsOmitted": omitted, "responseBytes": size}},
        )
        return shed


def _without_record(event: dict[str, Any], reason: str) -> dict[str, Any]:
    """An error event without its record body: where the record came from, and the error, stay."""
    details = event["details"]
    if details.get("command") != "ERROR" or details.get("record") is None:
        return event
    raw = details["record"]
    _, table, sequence = identify(raw)
    arn = raw.get("eventSourceARN") if isinstance(raw, Mapping) else None
    source = {
        "table": table,
        "sequenceNumber": sequence,
        "eventSourceARN": arn if isinstance(arn, str) else None,
    }
    return {**event, "details": {**details, "record": None, "recordOmitted": reason, "recordSource": source}}


def envelope(mapper: Mapper | None, event_id: str | None, command: str, **details: Any) -> dict[str, Any]:
    """The one envelope of every event: PUT and DELETE carry ``entity``; ERROR carries ``error`` and ``record``."""
    failed = command == "ERROR"
    if mapper is None:
        source, event_type = "fhirpipes", "MappingFailed"
    else:
        source = mapper.envelope_source
        event_type = f"{mapper.resource_type}{'MappingFailed' if failed else 'Change'}"
    return {
        "version": ENVELOPE_VERSION,
        "source": source,
        "eventType": event_type,
        "correlationId": event_id,
        "eventID": event_id,
        "details": {"command": command, **details},
    }


_FAILURE_MESSAGES = {
    "failed": "record failed; emitting an error event",
    "dropped": "record failed and was dropped (FHIRPIPES_ON_ERROR=drop)",
    "raised": "record failed; failing the batch so the Pipe retries it",
}


def _log_failure(exc: RecordError, how: str) -> None:
    """One ERROR line per failed record (``how``: failed, dropped or raised): where and why, never a value."""
    fields = {
        "table": exc.table,
        "eventID": exc.event_id,
        "sequenceNumber": exc.sequence_number,
        "code": exc.code,
        "template": exc.template,
        "line": exc.line,
        "path": exc.path,
        "error": exc.message,
        "outcome": "failed" if how == "raised" else how,
    }
    logger.error(_FAILURE_MESSAGES[how], extra={"fhirpipes": fields})


def _where(record: StreamRecord | None) -> dict[str, Any]:
    if record is None:
        return {}
    return {"table": record.table, "eventID": record.event_id, "sequenceNumber": record.sequence_number}
