"""The sink against a real FHIR server (Medplum's, tests/medplum.py), end to end from DynamoDB
stream records through the enrichment's dispatcher to the resource read back from the server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from medplum import medplum

from fhirpipes.dispatch import Dispatcher
from fhirpipes.sink import Sink, SinkSettings
from fhirpipes.sink.outcome import Result
from fhirpipes.sink.transport import Response
from fhirpipes.testing.stream import make_record

pytestmark = pytest.mark.slow  # starts node


@pytest.fixture(scope="module")
def fhir_url() -> Iterator[str]:
    with medplum() as url:
        yield url


@pytest.fixture(params=[1, 20], ids=["requests", "bundles"])
def sink(fhir_url: str, request: pytest.FixtureRequest) -> Iterator[Sink]:
    sink = Sink(SinkSettings(fhir_url, concurrency=2, bundle_size=request.param))
    yield sink
    sink.client.close()


def read(fhir_url: str, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(fhir_url + path, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, None


def write(fhir_url: str, path: str, resource: dict[str, Any]) -> None:
    request = urllib.request.Request(
        fhir_url + path,
        data=json.dumps(resource).encode(),
        method="PUT",
        headers={"Content-Type": "application/fhir+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status in (200, 201)


def versions(fhir_url: str, path: str) -> int:
    status, bundle = read(fhir_url, path + "/_history")
    assert status == 200
    return len(bundle.get("entry", []))


def key(sink: Sink, name: str) -> str:
    """An item key of its own per test and sink mode (the server lives for the module)."""
    return f"{name}-{sink.settings.bundle_size}"


def item(ident: str, **fields: Any) -> dict[str, Any]:
    return {"id": ident, "firstName": "Ann", "lastName": "Lee", "birthDate": "07-13-1991", **fields}


def records(
    *changes: tuple[dict[str, Any] | None, dict[str, Any] | None], start: int = 100
) -> list[dict[str, Any]]:
    """Stream records of (old, new) item pairs, with growing sequence numbers from ``start``."""
    return [
        make_record("Patients", new=new, old=old, sequence_number=f"{start + n:021d}")
        for n, (old, new) in enumerate(changes)
    ]


def without_server_meta(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in resource["meta"].items() if k not in ("versionId", "lastUpdated")}
    return {**resource, "meta": meta}


def test_insert_modify_remove_end_to_end(fhir_url: str, sink: Sink, dispatcher: Dispatcher) -> None:
    first, second = item(key(sink, "e2e")), item(key(sink, "e2e"), lastName="Lee-Park")
    events = dispatcher.map_batch(records((None, first)))
    [event] = events
    assert sink.deliver(events) == {"batchItemFailures": []}
    path = f"Patient/{event['details']['entity']['id']}"
    status, stored = read(fhir_url, path)
    assert status == 200 and without_server_meta(stored) == event["details"]["entity"]

    events = dispatcher.map_batch(records((first, second), start=200))
    assert sink.deliver(events) == {"batchItemFailures": []}
    assert read(fhir_url, path)[1]["name"][0]["family"] == "Lee-Park"

    events = dispatcher.map_batch(records((second, None), start=300))
    assert [e["details"]["command"] for e in events] == ["DELETE"]
    assert sink.deliver(events) == {"batchItemFailures": []}
    assert read(fhir_url, path)[0] == 404  # Medplum's answer for a deleted resource (the spec prefers 410)


def test_rapid_updates_of_one_item_land_in_order(fhir_url: str, sink: Sink, dispatcher: Dispatcher) -> None:
    states = [item(key(sink, "rapid"), lastName=f"Name{n}") for n in range(5)]
    changes = [(None, states[0])] + [(states[n - 1], states[n]) for n in range(1, 5)]
    events = dispatcher.map_batch(records(*changes))
    assert len(events) == 5
    assert sink.deliver(events) == {"batchItemFailures": []}
    path = f"Patient/{events[0]['details']['entity']['id']}"
    assert read(fhir_url, path)[1]["name"][0]["family"] == "Name4"
    assert versions(fhir_url, path) == 5


def test_a_replayed_batch_adds_no_version(fhir_url: str, sink: Sink, dispatcher: Dispatcher) -> None:
    events = dispatcher.map_batch(
        records((None, item(key(sink, "replay-1"))), (None, item(key(sink, "replay-2"))))
    )
    assert sink.deliver(events) == {"batchItemFailures": []}
    paths = [f"Patient/{e['details']['entity']['id']}" for e in events]
    before = [versions(fhir_url, p) for p in paths]
    requests = sink.client.requests
    assert sink.deliver(events) == {"batchItemFailures": []}
    assert [versions(fhir_url, p) for p in paths] == before == [1, 1]
    # one read per event (or one Bundle of reads), no write
    assert sink.client.requests - requests == (2 if sink.settings.bundle_size == 1 else 1)


def test_an_older_state_arriving_after_a_newer_one_is_not_applied(
    fhir_url: str, sink: Sink, dispatcher: Dispatcher
) -> None:
    ident = key(sink, "late")
    old, new = item(ident), item(ident, lastName="Newer")
    [older] = dispatcher.map_batch(records((None, old), start=500))
    [newer] = dispatcher.map_batch(records((old, new), start=600))
    assert sink.deliver([newer]) == {"batchItemFailures": []}
    assert sink.deliver([older]) == {"batchItemFailures": []}  # delivered late: dropped, not retried
    path = f"Patient/{newer['details']['entity']['id']}"
    assert read(fhir_url, path)[1]["name"][0]["family"] == "Newer"
    assert versions(fhir_url, path) == 1


def test_a_write_racing_ours_makes_the_server_answer_412_and_the_sink_judge_again(
    fhir_url: str, sink: Sink, dispatcher: Dispatcher
) -> None:
    ident = key(sink, "race")
    first, ours, theirs = item(ident), item(ident, lastName="Ours"), item(ident, lastName="Theirs")
    [created] = dispatcher.map_batch(records((None, first), start=700))
    [mine] = dispatcher.map_batch(records((first, ours), start=800))
    [other] = dispatcher.map_batch(records((first, theirs), start=900))
    assert sink.deliver([created]) == {"batchItemFailures": []}
    path = f"Patient/{created['details']['entity']['id']}"
    statuses: list[int] = []
    send = sink.client.send

    def racing(method: str, where: str, deadline: Any, body: Any = None, headers: Any = None) -> Response:
        writing = method == "PUT" or (method == "POST" and body["entry"][0]["request"]["method"] == "PUT")
        if writing and not statuses:  # between our read and our write, a newer state lands
            write(fhir_url, path, other["details"]["entity"])
        response = send(method, where, deadline, body, headers)
        if method == "PUT":
            statuses.append(response.status)
        elif writing:  # the entry's own status, in the batch-response Bundle
            statuses.append(int(response.body["entry"][0]["response"]["status"].split()[0]))
        return response

    sink.client.send = racing  # type: ignore[method-assign]
    assert sink.deliver([mine]) == {"batchItemFailures": []}
    assert statuses == [412]  # the real server refused the stale If-Match; re-read, ours is older
    assert read(fhir_url, path)[1]["name"][0]["family"] == "Theirs"


def backfilled(new: dict[str, Any], time: str = "2026-12-01T00:00:00.000Z") -> dict[str, Any]:
    """An item of the table's export, as the INSERT a backfill maps: ``meta.source`` is the export's."""
    record = make_record("Patients", new=new)
    table = record["eventSourceARN"].partition("/stream/")[0]
    record["eventSourceARN"] = f"{table}/export/01764547200000-a1b2c3d4"
    record["dynamodb"]["SequenceNumber"] = time
    return record


def outcomes(sink: Sink, events: list[dict[str, Any]]) -> list[str]:
    return [result.outcome for result in sink.deliver_outcomes(events)]


def test_a_backfilled_state_never_replaces_the_streams(
    fhir_url: str, sink: Sink, dispatcher: Dispatcher
) -> None:
    ident = key(sink, "stream-first")
    [live] = dispatcher.map_batch(records((item(ident), item(ident, lastName="Live")), start=1000))
    [snapshot] = dispatcher.map_batch([backfilled(item(ident, lastName="Snapshot"))])
    assert snapshot["details"]["entity"]["meta"]["source"].endswith("#2026-12-01T00:00:00.000Z")
    assert outcomes(sink, [live]) == ["written"]
    assert sink.deliver_outcomes([snapshot]) == [Result("stale")]
    path = f"Patient/{live['details']['entity']['id']}"
    status, stored = read(fhir_url, path)
    assert status == 200 and without_server_meta(stored) == live["details"]["entity"]
    assert versions(fhir_url, path) == 1


def test_the_streams_state_replaces_a_backfilled_one(
    fhir_url: str, sink: Sink, dispatcher: Dispatcher
) -> None:
    ident = key(sink, "backfill-first")
    [snapshot] = dispatcher.map_batch([backfilled(item(ident, lastName="Snapshot"))])
    [live] = dispatcher.map_batch(records((item(ident), item(ident, lastName="Live")), start=1100))
    assert outcomes(sink, [snapshot]) == ["written"]
    assert sink.deliver_outcomes([snapshot]) == [Result("replayed")]  # a rerun of the backfill
    assert outcomes(sink, [live]) == ["written"]
    path = f"Patient/{live['details']['entity']['id']}"
    assert without_server_meta(read(fhir_url, path)[1]) == live["details"]["entity"]
    assert versions(fhir_url, path) == 2


def test_the_lambda_handler_reads_its_settings(fhir_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import fhirpipes.sink as module

    monkeypatch.setenv("FHIRPIPES_FHIR_URL", fhir_url.rstrip("/"))
    monkeypatch.setenv("FHIRPIPES_FHIR_AUTH", "none")
    module._sink.cache_clear()
    try:
        entity = {
            "resourceType": "Observation",
            "id": "via-handler",
            "status": "final",
            "code": {"text": "x"},
        }
        event = {"eventID": "h1", "details": {"command": "PUT", "entity": entity}}
        assert module.handler([event], None) == {"batchItemFailures": []}
        assert read(fhir_url, "Observation/via-handler")[0] == 200
        module._sink().client.close()
    finally:
        module._sink.cache_clear()
