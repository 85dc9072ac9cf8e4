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

import json
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from fhirpipes.errors import BatchError, MalformedRecordError, RecordError
from fhirpipes.logs import logger
from fhirpipes.mapper import Mapper
from fhirpipes.plugins import Registry
from fhirpipes.records import StreamRecord, identify, parse_record, records_of
from fhirpipes.resource import build_resource, default_id, render_resource, template_context
from fhirpipes.settings import Settings

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

    def map_batch(self, event: Any, *, pipe: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Map any accepted batch shape; returns the events to hand to the Pipe's target."""
        out = []
        counts = dict.fromkeys(("mapped", "skipped", "failed", "dropped"), 0)
        records = records_of(event)
        for raw in records:
            outcome = self.map_record(raw, pipe=pipe)
            counts[outcome.status] += 1
            if outcome.event is not None:
                out.append(outcome.event)
        self._check_size(out)
        logger.info("batch mapped", extra={"fhirpipes": {"records": len(records), **counts}})
        return out

    def map_record(self, raw: Any, *, pipe: Mapping[str, Any] | None = None) -> Outcome:
        """Map one raw record; a `RecordError` becomes an error event, is raised, or dropped per settings."""
        record: StreamRecord | None = None
        mapper: Mapper | None = None
        try:
            record = parse_record(raw)
            mapper = self.registry.mapper_for(record)
            event = self._map(mapper, record, pipe)
        except RecordError as exc:
            event_id, table, sequence = identify(raw)
            exc.locate(event_id=event_id, table=table, sequence_number=sequence)
            return self._failed(exc, raw, mapper)
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

    def _map(
        self, mapper: Mapper, record: StreamRecord, pipe: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        pipe_vars = self._pipe_variables(record, pipe)
        if record.event_name == "REMOVE":
            return self._remove(mapper, record, pipe_vars)
        if record.new is None:
            raise MalformedRecordError(
                "the record carries no NewImage (the stream view type must include new images)",
                path="dynamodb.NewImage",
            )
        entity = build_resource(mapper, record, record.new, pipe_vars)
        if record.event_name == "MODIFY" and record.old is not None and self._skip_unchanged(mapper):
            try:
                before = build_resource(mapper, record, record.old, pipe_vars)
            except RecordError:
                before = None  # the old item didn't map; the new one does: that's a change
            if before == entity:
                return None
        return self._envelope(mapper, record, "PUT", entity)

    def _remove(
        self, mapper: Mapper, record: StreamRecord, pipe_vars: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        if mapper.on_delete == "ignore":
            return None
        if mapper.on_delete == "soft-delete":
            if record.old is None:
                raise MalformedRecordError(
                    "a soft delete needs the OldImage (use a stream view type with old images)",
                    path="dynamodb.OldImage",
                )
            entity = build_resource(mapper, record, record.old, pipe_vars)
            entity["active"] = False
            return self._envelope(mapper, record, "PUT", entity)
        # DELETE addresses the resource by the id the template gives the item, else by the default id.
        image = record.old if record.old is not None else record.keys
        try:
            rendered = render_resource(mapper, template_context(mapper, record, image, pipe_vars))
        except RecordError as exc:
            if record.old is None:
                raise RecordError(
                    "a REMOVE without OldImage can't be given the template's id: the template needs "
                    "more than the keys (use a stream view type with old images)",
                    template=exc.template,
                    line=exc.line,
                    code="remove-needs-old-image",
                ) from exc
            raise
        resource_id = rendered.get("id") or default_id(record.table, record.keys)
        return self._envelope(
            mapper, record, "DELETE", {"resourceType": mapper.resource_type, "id": resource_id}
        )

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

    def _envelope(
        self, mapper: Mapper, record: StreamRecord, command: str, entity: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "version": ENVELOPE_VERSION,
            "source": mapper.envelope_source,
            "eventType": f"{mapper.resource_type}Change",
            "correlationId": record.event_id,
            "eventID": record.event_id,
            "details": {"command": command, "entity": entity},
        }

    def _failed(self, exc: RecordError, raw: Any, mapper: Mapper | None) -> Outcome:
        fields = {
            "table": exc.table,
            "eventID": exc.event_id,
            "sequenceNumber": exc.sequence_number,
            "code": exc.code,
            "template": exc.template,
            "line": exc.line,
            "path": exc.path,
            "error": exc.message,
        }
        on_error = self.settings.on_error
        if on_error == "raise":
            logger.error(
                "record failed; failing the batch so the Pipe retries it",
                extra={"fhirpipes": {**fields, "outcome": "failed"}},
            )
            raise exc
        if on_error == "drop":
            logger.error(
                "record failed and was dropped (FHIRPIPES_ON_ERROR=drop)",
                extra={"fhirpipes": {**fields, "outcome": "dropped"}},
            )
            return Outcome("dropped", error=exc)
        logger.error(
            "record failed; emitting an error event", extra={"fhirpipes": {**fields, "outcome": "failed"}}
        )
        event_id = exc.event_id
        event = {
            "version": ENVELOPE_VERSION,
            "source": mapper.envelope_source if mapper else "fhirpipes",
            "eventType": f"{mapper.resource_type}MappingFailed" if mapper else "MappingFailed",
            "correlationId": event_id,
            "eventID": event_id,
            "details": {"command": "ERROR", "error": exc.to_dict(), "record": raw},
        }
        return Outcome("failed", event, exc)

    def _check_size(self, events: list[dict[str, Any]]) -> None:
        limit = self.settings.max_response_bytes
        size = response_size(events)
        if size > limit:
            raise BatchError(
                f"the enrichment response would be {size} bytes, over the Pipe's limit of {limit}: "
                f"lower the Pipe's batch size (this batch had {len(events)} events)"
            )


def response_size(events: list[dict[str, Any]]) -> int:
    """The size in bytes of the response as the Lambda runtime will send it (compact JSON)."""
    import orjson  # ~10x faster than json here, and the size check runs on every batch

    try:
        return len(orjson.dumps(events, default=str))
    except orjson.JSONEncodeError:
        # e.g. an integer beyond 64 bits in a malformed record: json can size it
        return len(json.dumps(events, separators=(",", ":"), default=str).encode())


def _where(record: StreamRecord | None) -> dict[str, Any]:
    if record is None:
        return {}
    return {"table": record.table, "eventID": record.event_id, "sequenceNumber": record.sequence_number}
