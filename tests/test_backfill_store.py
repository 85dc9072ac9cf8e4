"""The backfill's store writer (`fhirpipes.backfill.store`): backfilled Patients into a real FHIR
server (Medplum's, tests/medplum.py), reruns skipped by the guard, refusals and unreachable servers
failed with a reason that quotes nothing; retries against a FHIR server of our own (sink_fakes)."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from medplum import medplum
from sink_fakes import FakeFhir, serving

from fhirpipes.backfill.store import StoreWriter, refusal
from fhirpipes.dispatch import Dispatcher
from fhirpipes.errors import ConfigurationError
from fhirpipes.plugins import load_registry
from fhirpipes.testing.stream import make_record

EXPORT_TIME = "2026-12-01T00:00:00.000Z"
FAST = {"FHIRPIPES_FHIR_TIMEOUT": "0.5"}


@pytest.fixture(scope="module")
def fhir_url() -> Iterator[str]:
    with medplum() as url:
        yield url


@pytest.fixture(scope="module")
def dispatcher() -> Dispatcher:
    return Dispatcher(load_registry(only=["patient"]))


def backfilled(dispatcher: Dispatcher, *items: dict[str, Any]) -> list[dict[str, Any]]:
    """The events a backfill maps from export items: INSERTs whose source is the export."""
    records = []
    for item in items:
        record = make_record("Patients", new=item)
        table = record["eventSourceARN"].partition("/stream/")[0]
        record["eventSourceARN"] = f"{table}/export/01764547200000-a1b2c3d4"
        record["dynamodb"]["SequenceNumber"] = EXPORT_TIME
        records.append(record)
    return dispatcher.map_batch(records)


def patient(ident: str, **fields: Any) -> dict[str, Any]:
    return {"id": ident, "firstName": "Ann", "lastName": "Lee", "birthDate": "07-13-1991", **fields}


@contextmanager
def writer(url: str, **options: Any) -> Iterator[StoreWriter]:
    store = StoreWriter(f"fhir:{url}", None, options.pop("environ", {}), **options)
    store.check()
    try:
        yield store
    finally:
        store.close()


@pytest.mark.slow  # starts node
@pytest.mark.parametrize("bundle_size", ["1", "20"], ids=["requests", "bundles"])
def test_fifty_patients_are_written_then_a_rerun_skips_them_all(
    fhir_url: str, dispatcher: Dispatcher, bundle_size: str
) -> None:
    events = backfilled(dispatcher, *(patient(f"fifty-{bundle_size}-{n}") for n in range(50)))
    assert len(events) == 50 and all(e["details"]["command"] == "PUT" for e in events)
    environ = {"FHIRPIPES_FHIR_BUNDLE_SIZE": bundle_size, "FHIRPIPES_FHIR_CONCURRENCY": "4"}
    with writer(fhir_url, environ=environ) as store:
        store.prepare()
        assert store.send(events) == [("written", None)] * 50
        assert store.send(events) == [("skipped", None)] * 50  # the guard: the SAME snapshot state
    entity = events[7]["details"]["entity"]
    with urllib.request.urlopen(f"{fhir_url}Patient/{entity['id']}", timeout=10) as got:
        stored = json.loads(got.read())
    assert stored["meta"]["source"] == entity["meta"]["source"] and stored["meta"]["versionId"]


@pytest.mark.slow  # starts node
def test_a_refused_resource_fails_with_where_and_why_not_what(fhir_url: str, dispatcher: Dispatcher) -> None:
    [good] = backfilled(dispatcher, patient("refused-good"))
    bad = json.loads(json.dumps(good))
    # Past the mapper's validation, a resource the server refuses (it validates ids only).
    bad["details"]["entity"]["id"] = "SECRET bad id"
    bad["eventID"] = "refused-bad"
    with writer(fhir_url) as store:
        [(outcome, reason), written] = store.send([bad, good])
    assert written == ("written", None)
    assert outcome == "failed" and reason is not None
    assert reason == "the FHIR server refused the resource: HTTP 400 (invalid)"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # connects to 127.0.0.1
def test_an_unreachable_server_fails_each_event_after_the_retries(dispatcher: Dispatcher) -> None:
    events = backfilled(dispatcher, patient("gone-1"), patient("gone-2"))
    waits: list[float] = []
    url = f"http://127.0.0.1:{closed_port()}/r4/"
    with writer(
        url,
        environ={"FHIRPIPES_FHIR_TIMEOUT": "0.1"},
        attempts=3,
        backoff=0.01,
        attempt_seconds=0.2,
        sleep=waits.append,
    ) as store:
        with pytest.raises(
            ConfigurationError, match=r"did not answer \(GET metadata: ConnectionRefusedError"
        ):
            store.prepare()
        answers = store.send(events)
        requests = store._get_sink().client.requests
    assert (
        answers
        == [
            (
                "failed",
                "not delivered after 3 attempts: GET Patient: ConnectionRefusedError, and no time left to retry",
            )
        ]
        * 2
    )
    assert len(waits) == 2 and all(0 <= wait <= 0.02 for wait in waits)  # between the 3 attempts
    assert requests >= 3 * 2  # each attempt tried each event at least once


@pytest.fixture
def fake() -> Iterator[FakeFhir]:
    with serving(FakeFhir()) as server:
        yield server


@pytest.mark.slow  # serves HTTP on 127.0.0.1 (a thread)
def test_what_the_sink_gives_back_is_sent_again_in_order(fake: FakeFhir, dispatcher: Dispatcher) -> None:
    first, second = backfilled(dispatcher, patient("again"))[0], backfilled(dispatcher, patient("other"))[0]
    later = json.loads(json.dumps(first))
    later["details"]["entity"]["meta"]["source"] = later["details"]["entity"]["meta"]["source"].replace(
        "00.000Z", "00.001Z"
    )  # the same resource in a later snapshot: held back while the first is failing
    path = f"Patient/{first['details']['entity']['id']}"
    fake.fault("GET", path, *[(503, {}, None)] * 1000)

    def recover(seconds: float) -> None:
        fake.faults.clear()  # between our attempts, the server comes back

    with writer(
        fake.url, environ=FAST, attempts=3, backoff=0.01, attempt_seconds=0.2, sleep=recover
    ) as store:
        assert store.send([first, second, later]) == [("written", None)] * 3
    assert fake.store[path]["meta"]["source"].endswith("00.001Z")
    assert fake.versions[path] == 2
    assert [m for m, p in fake.sent() if p == path][-4:] == ["GET", "PUT", "GET", "PUT"]


@pytest.mark.slow  # serves HTTP on 127.0.0.1 (a thread)
def test_error_events_are_never_sent(fake: FakeFhir, dispatcher: Dispatcher) -> None:
    [error] = Dispatcher(load_registry(only=["patient"])).map_batch(
        [make_record("Nobody", new={"id": "x", "note": "SECRET-VALUE"})]
    )
    assert error["details"]["command"] == "ERROR"
    odd = {"eventID": "odd", "details": {"command": "PUT", "entity": {"resourceType": "Patient"}}}
    with writer(fake.url) as store:
        answers = store.send([error, odd])
    assert [outcome for outcome, _ in answers] == ["failed", "failed"]
    assert answers[0][1] == "an error event (the record could not be mapped): not sent to the store"
    assert answers[1][1] is not None and "not a fhirpipes PUT or DELETE event" in answers[1][1]
    assert fake.sent() == []


@pytest.mark.parametrize(
    ("target", "auth", "environ", "message"),
    [
        ("fhir:ftp://x/r4", None, {}, r"^fhir:ftp://x/r4: give the FHIR base URL"),
        ("fhir:http://user:pw@host/r4", None, {}, r"^fhir target: no credentials in the URL"),
        ("fhir:http://host:port/r4", None, {}, "give the FHIR base URL"),
        ("fhir:", None, {}, "give the FHIR base URL"),
        ("fhir:http://host/r4", "basic", {}, "must be none, sigv4 or secret:"),
        ("fhir:http://host/r4", None, {"FHIRPIPES_FHIR_AUTH": "secret:"}, "must be none, sigv4 or secret:"),
        ("fhir:https://fhir.example.org/r4", "sigv4", {}, "sigv4 needs a region"),
        (
            "fhir:http://host/r4",
            None,
            {"FHIRPIPES_FHIR_BUNDLE_SIZE": "0"},
            "FHIRPIPES_FHIR_BUNDLE_SIZE must be",
        ),
    ],
)
def test_check_refuses_a_bad_url_auth_or_setting_before_any_work(
    target: str, auth: str | None, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        StoreWriter(target, auth, environ).check()
    assert "pw" not in str(raised.value)


def test_check_accepts_healthlake_with_sigv4_and_a_bare_url() -> None:
    healthlake = "https://healthlake.eu-west-1.amazonaws.com/datastore/0123456789abcdef0123456789abcdef/r4/"
    StoreWriter(f"fhir:{healthlake}", "sigv4", {}).check()
    StoreWriter("http://127.0.0.1:1/r4", None, {"FHIRPIPES_FHIR_AUTH": "none"}).check()


def test_a_refusal_names_codes_and_paths_only() -> None:
    issues = ({"severity": "error", "code": "value", "expression": ["Patient.birthDate"], "details": ["X"]},)
    assert refusal(422, issues) == "the FHIR server refused the resource: HTTP 422 (value Patient.birthDate)"
    assert refusal(404, ()) == "the FHIR server refused the resource: HTTP 404"
