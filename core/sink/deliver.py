"""The sink: a Pipe target's batch of fhirpipes events, delivered into a FHIR store in order.

For each event: PUT ``<type>/<id>`` with the entity, DELETE ``<type>/<id>`` for a DELETE; error
events go to the `ErrorDestination`, not the store. The answer is the Pipe's partial-failure
contract, ``{"batchItemFailures": [{"itemIdentifier": <eventID>}]}``, listing what to retry.

Per resource, order holds: one resource's events go one after another, and once one fails, the
later ones for that resource in the batch are not tried and are reported too. Different
resources go at once, up to ``FHIRPIPES_FHIR_CONCURRENCY``.

With the guard (``FHIRPIPES_FHIR_GUARD=version``, the default), a write never replaces a state
that came later from the source (`fhirpipes.sink.version`): read the current resource, compare
source versions, skip an older or replayed state, else write with ``If-Match`` on the
``versionId`` read; on 412 (someone wrote in between) read again and decide again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from fhirpipes.logs import logger
from fhirpipes.sink.auth import auth_for
from fhirpipes.sink.bundle import deliver_in_bundles
from fhirpipes.sink.destination import ErrorDestination, Undelivered, issues_of
from fhirpipes.sink.errors import DeliveryError
from fhirpipes.sink.outcome import AUTH_STATUSES, GONE, Result
from fhirpipes.sink.settings import SinkSettings
from fhirpipes.sink.transport import Client, Deadline, Response
from fhirpipes.sink.version import OLDER, SAME, compare, version_of

DELETED = "deleted"  # `Sink._read`'s versionId for a resource the server says was deleted (410)
MAX_CONFLICTS = 5
"""Reads and conditional writes of one event before it is given back to the Pipe (412 each time)."""


class Sink:
    """One FHIR server, its client and error destination (built once per cold start)."""

    def __init__(
        self,
        settings: SinkSettings,
        client: Client | None = None,
        destination: ErrorDestination | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._clock = clock  # the deadline's (tests give a fake one, with the client's sleep)
        self.client = client or Client(
            settings.fhir_url,
            auth_for(settings.auth, settings.region, settings.timeout),
            timeout=settings.timeout,
        )
        self.destination = destination or ErrorDestination(settings.error_queue)

    def deliver(self, batch: Any, context: Any = None) -> dict[str, list[dict[str, str]]]:
        """Deliver a Pipe's batch; returns the ``batchItemFailures`` to retry, in the batch's order."""
        events = batch if isinstance(batch, list) else [batch]
        results = self.deliver_outcomes(events, context)
        return {"batchItemFailures": _failures(events, results)}

    def deliver_outcomes(
        self, events: list[Any], context: Any = None, *, deadline: Deadline | None = None
    ) -> list[Result]:
        """Deliver ``events`` as `deliver` does; returns what became of each, in order.

        Each `Result`'s outcome is one of: ``written``, ``deleted``, ``absent`` (deleted already),
        ``stale`` (the store holds a later state), ``replayed`` (it holds this one), ``refused`` (the
        server refused it: the error destination has it; ``status`` and ``issues`` say why),
        ``undelivered`` (an error event, or not a fhirpipes event: the error destination has it),
        ``failed`` (retryable: ``reason`` or ``status`` may say why) or ``blocked`` (an earlier
        event for its resource failed). ``deadline``: when to stop trying (default: from ``context``).
        """
        deadline = deadline or Deadline.of(context, clock=self._clock)
        sent_before = self.client.requests
        groups: dict[tuple[str, str], list[int]] = {}
        results: list[Result | None] = [None] * len(events)
        undelivered: list[tuple[int, Undelivered]] = []
        for index, event in enumerate(events):
            key, problem = _address(event)
            if key is not None:
                groups.setdefault(key, []).append(index)
            else:
                undelivered.append((index, Undelivered(_event_id(event), problem, event)))

        def run(indexes: list[int]) -> None:
            failed = False
            for index in indexes:
                if failed:
                    results[index] = Result("blocked")
                    continue
                result = self._one(events[index], deadline)
                results[index] = result
                failed = result.outcome == "failed"

        work = list(groups.values())
        if self.settings.bundle_size > 1:
            deliver_in_bundles(self, events, groups, results, deadline)
        elif self.settings.concurrency > 1 and len(work) > 1:
            with ThreadPoolExecutor(min(self.settings.concurrency, len(work))) as pool:
                list(pool.map(run, work))  # list(): re-raises a thread's unexpected exception
        else:
            for indexes in work:
                run(indexes)

        refused = set()
        for index, result in enumerate(results):
            if result is not None and result.outcome == "refused":
                item = Undelivered(
                    _event_id(events[index]), "refused", events[index], result.status, result.issues
                )
                undelivered.append((index, item))
                refused.add(index)
        lost = self.destination.send([item for _, item in sorted(undelivered, key=lambda pair: pair[0])])
        for index, item in undelivered:
            if item.event_id in lost:
                results[index] = Result("failed", item.status, reason="the error destination did not take it")
            elif index not in refused:
                results[index] = Result("undelivered", item.status)

        final = [result if result is not None else Result("failed") for result in results]
        counts: dict[str, int] = {}
        for result in final:
            # refused ones count as undelivered, as they always have in this log line
            outcome = "undelivered" if result.outcome == "refused" else result.outcome
            counts[outcome] = counts.get(outcome, 0) + 1
        logger.info(
            "batch delivered",
            extra={
                "fhirpipes": {
                    "events": len(events),
                    **counts,
                    "requests": self.client.requests - sent_before,
                    "batchItemFailures": len(_failures(events, final)),
                }
            },
        )
        return final

    def _one(self, event: Mapping[str, Any], deadline: Deadline) -> Result:
        details = event["details"]
        entity = details["entity"]
        path = f"{quote(entity['resourceType'], safe='')}/{quote(entity['id'], safe='')}"
        try:
            if details["command"] == "PUT":
                return self._put(path, entity, deadline)
            return self._delete(path, entity, deadline)
        except DeliveryError as exc:
            logger.warning(
                "event not delivered; the Pipe will retry it",
                extra={
                    "fhirpipes": {
                        "eventID": _event_id(event),
                        "resourceType": entity["resourceType"],
                        "error": str(exc),
                        "outcome": "failed",
                    }
                },
            )
            return Result("failed", reason=str(exc))

    def _put(self, path: str, entity: Mapping[str, Any], deadline: Deadline) -> Result:
        if self.settings.guard == "none":
            return _written(self.client.send("PUT", path, deadline, entity), "written")
        for _ in range(MAX_CONFLICTS):
            current, version_id = self._read(path, deadline)
            if current is None and version_id == DELETED:
                # 410: the server says it was deleted. Re-create it only if this state is later
                # than the last one it had: a replayed PUT, older than the delete, must not.
                current, version_id = self._last_live(path, deadline), None
                if current is not None and compare(version_of(entity), version_of(current)) in (OLDER, SAME):
                    return Result("stale")
            elif current is not None:
                order = compare(version_of(entity), version_of(current))
                if order == OLDER:
                    return Result("stale")
                if order == SAME:
                    return Result("replayed")
            headers = {"If-Match": f'W/"{version_id}"'} if version_id else None
            response = self.client.send("PUT", path, deadline, entity, headers)
            # 412: someone wrote since our read; 404/410 to a conditional write: someone deleted it.
            if response.status != 412 and not (headers and response.status in GONE):
                return _written(response, "written")
        raise DeliveryError(
            f"PUT {path.split('/')[0]}: {MAX_CONFLICTS} conditional writes in a row lost a race"
        )

    def _delete(self, path: str, entity: Mapping[str, Any], deadline: Deadline) -> Result:
        if self.settings.guard == "none":
            return _written(self.client.send("DELETE", path, deadline), "deleted")
        for _ in range(MAX_CONFLICTS):
            current, version_id = self._read(path, deadline)
            if current is None:
                return Result("absent")
            # A delete with no version of its own (the enrichment gives DELETE events no meta yet)
            # compares UNKNOWN and is applied; one older than the stored state is not.
            if compare(version_of(entity), version_of(current)) in (OLDER, SAME):
                return Result("stale")
            headers = {"If-Match": f'W/"{version_id}"'} if version_id else None
            response = self.client.send("DELETE", path, deadline, headers=headers)
            if response.status != 412:
                return _written(response, "deleted")
        raise DeliveryError(
            f"DELETE {path.split('/')[0]}: {MAX_CONFLICTS} conditional deletes in a row lost a race"
        )

    def _read(self, path: str, deadline: Deadline) -> tuple[Mapping[str, Any] | None, str | None]:
        """The stored resource and its versionId; (None, None) if there is none, (None, `DELETED`)
        if the server says it was deleted (410)."""
        response = self.client.send("GET", path, deadline)
        if response.status in GONE:
            return None, DELETED if response.status == 410 else None
        if response.status != 200 or not isinstance(response.body, Mapping):
            raise DeliveryError(
                f"GET {path.split('/')[0]}: HTTP {response.status} reading the current version"
            )
        meta = response.body.get("meta")
        version_id = meta.get("versionId") if isinstance(meta, Mapping) else None
        if not isinstance(version_id, str):
            version_id = _etag_version(response.headers.get("etag"))
        return response.body, version_id

    def _last_live(self, path: str, deadline: Deadline) -> Mapping[str, Any] | None:
        """The newest version a deleted resource had (from its ``_history``), if the server tells."""
        response = self.client.send("GET", f"{path}/_history?_count=5", deadline)
        entries = response.body.get("entry") if isinstance(response.body, Mapping) else None
        if response.status != 200 or not isinstance(entries, list):
            return None  # no history to judge by: write, as a store without the guard would
        for entry in entries:  # newest first; the delete itself has no resource
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if isinstance(resource, Mapping):
                return resource
        return None


def _failures(events: list[Any], results: list[Result]) -> list[dict[str, str]]:
    """The Pipe's ``batchItemFailures``: the failed and blocked events (that have an eventID)."""
    failures = []
    for event, result in zip(events, results, strict=True):
        event_id = _event_id(event)
        if result.outcome in ("failed", "blocked") and event_id is not None:
            failures.append({"itemIdentifier": event_id})
    return failures


def _written(response: Response, outcome: str) -> Result:
    status = response.status
    if 200 <= status < 300 or (outcome == "deleted" and status in GONE):
        return Result(outcome if 200 <= status < 300 else "absent", status)
    if status in AUTH_STATUSES or not 400 <= status < 500:
        raise DeliveryError(f"HTTP {status} from the FHIR server")
    # 400, 404 (no such type), 405, 413, 422, ...: the server refused this resource; retrying can't help.
    return Result("refused", status, issues_of(response.body))


def _etag_version(etag: str | None) -> str | None:
    if not etag:
        return None
    value = etag.strip()
    value = value.removeprefix("W/")
    return value.strip('"') or None


def _event_id(event: Any) -> str | None:
    value = event.get("eventID") if isinstance(event, Mapping) else None
    return value if isinstance(value, str) and value else None


def _address(event: Any) -> tuple[tuple[str, str] | None, str]:
    """The resource a PUT or DELETE event addresses, or why the event goes to the error destination."""
    details = event.get("details") if isinstance(event, Mapping) else None
    command = details.get("command") if isinstance(details, Mapping) else None
    if command == "ERROR":
        return None, "mapping-failed"
    if command not in ("PUT", "DELETE") or _event_id(event) is None:
        return None, "malformed"
    entity = details.get("entity")  # type: ignore[union-attr]
    if not isinstance(entity, Mapping):
        return None, "malformed"
    kind, ident = entity.get("resourceType"), entity.get("id")
    if not (isinstance(kind, str) and kind.isalpha() and isinstance(ident, str) and ident):
        return None, "malformed"
    return (kind, ident), ""
