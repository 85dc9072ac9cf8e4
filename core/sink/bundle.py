"""Fewer requests: one resource's next event per entry, many resources per ``batch`` Bundle.

With ``FHIRPIPES_FHIR_BUNDLE_SIZE`` above 1, the sink delivers in rounds. Each round takes the
next event of every resource still pending, and, per Bundle of up to that many entries: with the
guard, one ``batch`` Bundle of reads, then one of conditional writes (``request.ifMatch``); without
it, the writes alone. A Bundle may hold a resource only once, so one resource's events take one
round each, in order. ``batch``, not ``transaction``: each entry has its own outcome, mapped back
to its event (a refused entry doesn't fail the others), and HealthLake meters a transaction twice.

Each entry's status is judged as a single request's would be: 412 (and 404/410 to a conditional
write) reads again next round; 408, 409, 429 and 5xx are tried again next round, after a backoff;
401/403 fail the event; other 4xx refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fhirpipes.logs import logger
from fhirpipes.sink.destination import issues_of
from fhirpipes.sink.errors import DeliveryError
from fhirpipes.sink.outcome import AUTH_STATUSES, GONE, Result
from fhirpipes.sink.transport import RETRY_STATUSES, Deadline
from fhirpipes.sink.version import OLDER, SAME, compare, version_of

if TYPE_CHECKING:
    from fhirpipes.sink.deliver import Sink

MAX_ROUNDS_PER_EVENT = 8
"""Rounds one event may take (412s and passing failures) before it is given back to the Pipe."""

AGAIN = "again"


def deliver_in_bundles(
    sink: Sink,
    events: Sequence[Mapping[str, Any]],
    groups: Mapping[tuple[str, str], list[int]],
    results: list[Result | None],
    deadline: Deadline,
) -> None:
    """Fill ``results`` for the events of ``groups`` (resource -> indexes of its events, in order)."""
    pending = {key: list(indexes) for key, indexes in groups.items()}
    tries: dict[int, int] = {}
    backoff = 0
    size = sink.settings.bundle_size
    while pending:
        heads = [(key, indexes[0]) for key, indexes in pending.items()]
        retried = False
        for start in range(0, len(heads), size):
            chunk = heads[start : start + size]
            try:
                outcomes = _round(sink, [events[index] for _, index in chunk], deadline)
            except DeliveryError as exc:
                _log_failed(str(exc), len(chunk))
                outcomes = [Result("failed")] * len(chunk)
            for (key, index), outcome in zip(chunk, outcomes, strict=True):
                if outcome == AGAIN:
                    tries[index] = tries.get(index, 0) + 1
                    if tries[index] < MAX_ROUNDS_PER_EVENT:
                        retried = True
                        continue
                    _log_failed(f"no outcome after {MAX_ROUNDS_PER_EVENT} rounds", 1)
                    outcome = Result("failed")
                assert not isinstance(outcome, str)  # for mypy: AGAIN was handled above
                results[index] = outcome
                queue = pending[key]
                queue.pop(0)
                if outcome.outcome == "failed":
                    for later in queue:
                        results[later] = Result("blocked")
                    queue.clear()
                if not queue:
                    del pending[key]
        if retried:
            delay = sink.client.backoff(backoff)
            if delay >= deadline.left():
                _log_failed("no time left for another round", len(pending))
                for indexes in pending.values():
                    results[indexes[0]] = Result("failed")
                    for later in indexes[1:]:
                        results[later] = Result("blocked")
                return
            sink.client.sleep(delay)
            backoff += 1


def _log_failed(why: str, events: int) -> None:
    logger.warning(
        "Bundle events not delivered; the Pipe will retry them",
        extra={"fhirpipes": {"error": why, "events": events, "outcome": "failed"}},
    )


def _round(sink: Sink, events: Sequence[Mapping[str, Any]], deadline: Deadline) -> list[Result | str]:
    entities = [event["details"]["entity"] for event in events]
    paths = [
        f"{quote(entity['resourceType'], safe='')}/{quote(entity['id'], safe='')}" for entity in entities
    ]
    outcomes: list[Result | str | None] = [None] * len(events)
    writes: list[tuple[int, dict[str, Any]]] = []
    reads: list[Mapping[str, Any] | None] = [None] * len(events)
    if sink.settings.guard == "version":
        reads = [*_post(sink, [{"request": {"method": "GET", "url": path}} for path in paths], deadline)]
    for n, (event, entity, path) in enumerate(zip(events, entities, paths, strict=True)):
        command = event["details"]["command"]
        read = reads[n]
        version_id = None
        if read is not None:
            status = _status(read)
            if status == 200 and isinstance(read.get("resource"), Mapping):
                current = read["resource"]
                order = compare(version_of(entity), version_of(current))
                if order in (OLDER, SAME):
                    outcomes[n] = Result("replayed" if order == SAME and command == "PUT" else "stale")
                    continue
                meta = current.get("meta")
                version_id = meta.get("versionId") if isinstance(meta, Mapping) else None
            elif status in GONE:
                if command == "DELETE":
                    outcomes[n] = Result("absent")
                    continue
            else:
                outcomes[n] = _judge(status, read, command, conditional=False)
                continue
        request: dict[str, Any] = {"method": command, "url": path}
        if isinstance(version_id, str):
            request["ifMatch"] = f'W/"{version_id}"'
        entry: dict[str, Any] = {"request": request}
        if command == "PUT":
            entry["resource"] = entity
        writes.append((n, entry))
    if writes:
        answers = _post(sink, [entry for _, entry in writes], deadline)
        for (n, entry), answer in zip(writes, answers, strict=True):
            conditional = "ifMatch" in entry["request"]
            outcomes[n] = _judge(_status(answer), answer, entry["request"]["method"], conditional)
    return [outcome if outcome is not None else AGAIN for outcome in outcomes]


def _judge(status: int, answer: Mapping[str, Any], command: str, conditional: bool) -> Result | str:
    """One entry's status, judged as a single request's would be."""
    if 200 <= status < 300:
        return Result("written" if command == "PUT" else "deleted", status)
    if command == "DELETE" and status in GONE:
        return Result("absent", status)
    if status == 412 or (conditional and status in GONE) or status in RETRY_STATUSES:
        return AGAIN
    if status in AUTH_STATUSES or not 400 <= status < 500:
        return Result("failed", status)
    response = answer.get("response")
    outcome = response.get("outcome") if isinstance(response, Mapping) else None
    return Result("refused", status, issues_of(outcome))


def _post(sink: Sink, entries: list[dict[str, Any]], deadline: Deadline) -> list[Mapping[str, Any]]:
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    response = sink.client.send("POST", "", deadline, bundle)
    body = response.body
    answers = body.get("entry") if isinstance(body, Mapping) else None
    if response.status != 200 or not isinstance(answers, list) or len(answers) != len(entries):
        # The Bundle as a whole: too big, not supported, or no per-entry answer to map back.
        raise DeliveryError(f"POST Bundle: HTTP {response.status}, without an answer per entry")
    return [answer if isinstance(answer, Mapping) else {} for answer in answers]


def _status(answer: Mapping[str, Any]) -> int:
    """``entry.response.status`` ("201 Created", "412") as a number (0 if there is none)."""
    response = answer.get("response")
    text = response.get("status") if isinstance(response, Mapping) else None
    head = text.split()[0] if isinstance(text, str) and text.strip() else ""
    return int(head) if head.isdigit() else 0
