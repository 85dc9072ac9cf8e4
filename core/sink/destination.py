"""Where events the store won't get go: error events, and resources the server refused.

Always one ERROR log line per event, with where and why (eventID, eventType, the error code, the
server's status and OperationOutcome issue codes and locations), never a value: records are PHI,
and an OperationOutcome's text may quote them. With ``FHIRPIPES_SINK_ERROR_QUEUE`` set, the whole
event goes to that SQS queue as well (the operator's chosen place, encrypted at rest), so nothing
is lost; an event the queue didn't take is reported back for the Pipe to retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from fhirpipes.logs import logger

SQS_BATCH = 10
SQS_BATCH_BYTES = 900_000  # under SQS's 1 MiB per batch, with room for the attributes


class Undelivered(NamedTuple):
    """One event the store won't get: ``reason`` is ``mapping-failed``, ``refused`` or ``malformed``."""

    event_id: str | None
    reason: str
    event: Any
    status: int | None = None
    issues: tuple[Mapping[str, Any], ...] = ()


class ErrorDestination:
    """The log, and optionally an SQS queue (``queue_url``; ``client`` for tests, else boto3's)."""

    def __init__(self, queue_url: str | None = None, client: Any = None) -> None:
        self.queue_url = queue_url
        self._client = client

    def send(self, items: Sequence[Undelivered]) -> set[str]:
        """Log (and enqueue) ``items``; returns the eventIDs the queue did not take."""
        for item in items:
            logger.error(_MESSAGES[item.reason], extra={"fhirpipes": _fields(item)})
        if not self.queue_url or not items:
            return set()
        return self._enqueue(items)

    def _enqueue(self, items: Sequence[Undelivered]) -> set[str]:
        if self._client is None:
            import boto3  # lazy: only a sink with a queue needs it

            self._client = boto3.client("sqs")
        failed: set[str] = set()
        for chunk in _chunks(items):
            entries = [{"Id": str(n), "MessageBody": _body(item).decode()} for n, item in enumerate(chunk)]
            try:
                answer = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
                lost = [chunk[int(entry["Id"])] for entry in answer.get("Failed", ())]
            except Exception as exc:
                logger.error(
                    "the error queue did not take the batch's undelivered events",
                    extra={"fhirpipes": {"exception": type(exc).__name__, "events": len(chunk)}},
                )
                lost = list(chunk)
            failed.update(item.event_id for item in lost if item.event_id)
        return failed


_MESSAGES = {
    "mapping-failed": "error event not delivered to the FHIR store (the record could not be mapped)",
    "refused": "the FHIR server refused the resource; sent to the error destination",
    "malformed": "not a fhirpipes event; sent to the error destination",
}


def _fields(item: Undelivered) -> dict[str, Any]:
    event = _mapping(item.event)
    details = _mapping(event.get("details"))
    error = _mapping(details.get("error"))
    entity = _mapping(details.get("entity"))
    return {
        "eventID": item.event_id,
        "eventType": event.get("eventType") if isinstance(event.get("eventType"), str) else None,
        "reason": item.reason,
        "resourceType": entity.get("resourceType") if isinstance(entity.get("resourceType"), str) else None,
        "code": error.get("code") if isinstance(error.get("code"), str) else None,
        "status": item.status,
        "issues": [dict(issue) for issue in item.issues] or None,
        "outcome": "undelivered",
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _body(item: Undelivered) -> bytes:
    return orjson.dumps(
        {"reason": item.reason, "status": item.status, "issues": list(item.issues), "event": item.event},
        default=str,
    )


def _chunks(items: Iterable[Undelivered]) -> Iterable[list[Undelivered]]:
    chunk: list[Undelivered] = []
    size = 0
    for item in items:
        length = len(_body(item))
        if chunk and (len(chunk) == SQS_BATCH or size + length > SQS_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += length
    if chunk:
        yield chunk


def issues_of(outcome: Any) -> tuple[Mapping[str, Any], ...]:
    """An OperationOutcome's issues, reduced to what says where: severity, code, expression, location.

    ``details`` and ``diagnostics`` are left out: servers often quote the offending value there.
    """
    if not isinstance(outcome, Mapping) or outcome.get("resourceType") != "OperationOutcome":
        return ()
    kept = []
    for issue in outcome.get("issue") or ():
        if not isinstance(issue, Mapping):
            continue
        reduced = {
            key: issue[key]
            for key in ("severity", "code", "expression", "location")
            if isinstance(issue.get(key), (str, list))
        }
        details = issue.get("details")
        codes = [
            coding.get("code")
            for coding in (details.get("coding") or () if isinstance(details, Mapping) else ())
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str)
        ]
        if codes:
            reduced["details"] = codes  # coded details name a kind of problem, not a value
        kept.append(reduced)
    return tuple(kept)
