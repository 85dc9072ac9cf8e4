"""The sink against a FHIR server of our own (tests/sink_fakes.py): delivery, order per resource,
retries within the deadline, refusals and error events to the error destination, the guard."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sink_fakes import FakeClock, FakeFhir, LambdaContext, refusal, serving

from fhirpipes.dispatch import Dispatcher
from fhirpipes.errors import ConfigurationError
from fhirpipes.plugins import load_registry
from fhirpipes.sink import Sink, SinkSettings
from fhirpipes.sink.auth import SecretBearer
from fhirpipes.sink.destination import ErrorDestination
from fhirpipes.sink.transport import Client
from fhirpipes.testing.stream import make_record, stream_arn

pytestmark = pytest.mark.slow  # each test serves HTTP on 127.0.0.1 (a thread, ~ms)

ARN = stream_arn("Patients")


def put(event_id: str, rid: str, sequence: int | None, **fields: Any) -> dict[str, Any]:
    meta = {"source": f"{ARN}#{sequence:021d}"} if sequence is not None else {}
    entity = {"resourceType": "Patient", "id": rid, "meta": meta, **fields}
    return _envelope(event_id, {"command": "PUT", "entity": entity})


def delete(event_id: str, rid: str, sequence: int | None = None) -> dict[str, Any]:
    entity: dict[str, Any] = {"resourceType": "Patient", "id": rid}
    if sequence is not None:
        entity["meta"] = {"source": f"{ARN}#{sequence:021d}"}
    return _envelope(event_id, {"command": "DELETE", "entity": entity})


def _envelope(event_id: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "1.0",
        "source": "PatientTable",
        "eventType": "PatientChange",
        "correlationId": event_id,
        "eventID": event_id,
        "details": details,
    }


def error_event(event_id: str, secret: str) -> dict[str, Any]:
    """A real error event: the enrichment's, for a record of a table no mapper knows."""
    record = make_record("Nobody", new={"id": "x", "note": secret}, event_id=event_id)
    [event] = Dispatcher(load_registry(only=["patient"])).map_batch([record])
    assert event["details"]["command"] == "ERROR"
    return event


class FakeSqs:
    def __init__(self, fail: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail = fail

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        if self.fail:
            return {"Successful": [], "Failed": [{"Id": e["Id"], "Code": "x"} for e in Entries]}
        self.messages += [json.loads(e["MessageBody"]) for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


@pytest.fixture
def fake() -> Iterator[FakeFhir]:
    with serving(FakeFhir()) as server:
        yield server


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    clock = FakeClock()
    yield clock
    for client in CLIENTS:
        client.close()
    CLIENTS.clear()


CLIENTS: list[Client] = []


def sink_for(fake: FakeFhir, clock: FakeClock, sqs: FakeSqs | None = None, **settings: Any) -> Sink:
    options = {"concurrency": 1, **settings}
    client = Client(fake.url, timeout=5, sleep=clock.sleep, jitter=lambda: 0.5)
    CLIENTS.append(client)
    queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/errors" if sqs is not None else None
    return Sink(SinkSettings(fake.url, **options), client, ErrorDestination(queue, sqs), clock)


def failures(*event_ids: str) -> dict[str, list[dict[str, str]]]:
    return {"batchItemFailures": [{"itemIdentifier": event_id} for event_id in event_ids]}


def test_puts_and_deletes_reach_the_store(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock)
    batch = [put("e1", "a", 1, gender="female"), put("e2", "b", 2), delete("e3", "b", 3)]
    assert sink.deliver(batch, LambdaContext(clock)) == failures()
    assert fake.store["Patient/a"]["gender"] == "female"
    assert fake.store["Patient/a"]["meta"]["source"].endswith("#000000000000000000001")
    assert "Patient/b" not in fake.store and "Patient/b" in fake.deleted
    # the guard: a read before each write
    assert fake.sent() == [
        ("GET", "Patient/a"),
        ("PUT", "Patient/a"),
        ("GET", "Patient/b"),
        ("PUT", "Patient/b"),
        ("GET", "Patient/b"),
        ("DELETE", "Patient/b"),
    ]
    # the conditional write names the version read
    assert dict((m, h.get("if-match")) for m, p, h in fake.requests if m == "DELETE") == {"DELETE": 'W/"1"'}


def test_without_the_guard_each_event_is_one_request(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock, guard="none")
    assert sink.deliver([put("e1", "a", 1), delete("e2", "a", 2), delete("e3", "zz")]) == failures()
    assert fake.sent() == [("PUT", "Patient/a"), ("DELETE", "Patient/a"), ("DELETE", "Patient/zz")]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_failure_holds_back_the_later_events_of_its_resource_only(
    fake: FakeFhir, clock: FakeClock, concurrency: int, fhirpipes_log: list[str]
) -> None:
    sink = sink_for(fake, clock, concurrency=concurrency)
    fake.fault("PUT", "Patient/a", *[(503, {}, None)] * 1000)  # down for a's second event, for good
    fake.put("Patient/a", put("x", "a", 1)["details"]["entity"])
    batch = [put("a2", "a", 2), put("b1", "b", 3), put("a3", "a", 4), delete("a4", "a", 5), put("b2", "b", 6)]
    assert sink.deliver(batch, LambdaContext(clock, 30)) == failures("a2", "a3", "a4")
    assert fake.store["Patient/a"]["meta"]["versionId"] == "1"  # nothing later was applied to a
    assert fake.store["Patient/b"]["meta"]["source"].endswith("6")  # b went on
    assert ("PUT", "Patient/a") in fake.sent() and ("DELETE", "Patient/a") not in fake.sent()
    assert not any(
        '"a"' in line or "Patient/a" in line for line in fhirpipes_log
    )  # ids may be built from values
    assert clock.now - 1000 <= 30  # within the function's time


def test_429_waits_as_long_as_retry_after_says(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock)
    fake.fault("PUT", "Patient/a", (429, {"Retry-After": "3"}, None), (429, {"Retry-After": "2"}, None))
    assert sink.deliver([put("e1", "a", 1)], LambdaContext(clock)) == failures()
    assert [round(s, 3) for s in clock.sleeps] == [3.025, 2.025]  # Retry-After plus a jitter of 25 ms
    assert fake.store["Patient/a"]["meta"]["versionId"] == "1"


def test_a_retry_after_past_the_deadline_is_reported_without_waiting(
    fake: FakeFhir, clock: FakeClock
) -> None:
    sink = sink_for(fake, clock)
    fake.fault("PUT", "Patient/a", (429, {"Retry-After": "120"}, None))
    assert sink.deliver([put("e1", "a", 1), put("e2", "a", 2)], LambdaContext(clock, 60)) == failures(
        "e1", "e2"
    )
    assert clock.sleeps == []
    assert fake.sent("PUT") == [("PUT", "Patient/a")]


def test_5xx_and_dropped_connections_are_retried_with_growing_backoff(
    fake: FakeFhir, clock: FakeClock
) -> None:
    sink = sink_for(fake, clock)
    fake.fault("GET", "Patient/a", "drop", (500, {}, None))
    fake.fault("PUT", "Patient/a", (502, {}, None), "drop", (504, {}, None))
    assert sink.deliver([put("e1", "a", 1)], LambdaContext(clock)) == failures()
    assert fake.store["Patient/a"]["meta"]["versionId"] == "1"
    # full jitter (0.5 here) of 50 ms doubling: two waits for the read, three for the write
    assert clock.sleeps == pytest.approx([0.025, 0.05, 0.025, 0.05, 0.1])


def test_with_no_time_left_nothing_is_tried_and_all_is_reported(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock)
    batch = [put("e1", "a", 1), put("e2", "b", 2), put("e3", "c", 3)]
    assert sink.deliver(batch, LambdaContext(clock, 1.5)) == failures("e1", "e2", "e3")  # under the margin
    assert fake.sent() == []


def test_retries_stop_at_the_deadline(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock)
    fake.fault("GET", "Patient/a", *[(500, {}, None)] * 1000)
    assert sink.deliver([put("e1", "a", 1), put("e2", "b", 2)], LambdaContext(clock, 30)) == failures("e1")
    assert 20 < sum(clock.sleeps) <= 27  # 30 s less the margin kept to answer (a tenth, at least 2 s)
    assert fake.store["Patient/b"]["meta"]["versionId"] == "1"


def test_a_refused_resource_goes_to_the_error_destination_with_where_not_what(
    fake: FakeFhir, clock: FakeClock, fhirpipes_log: list[str]
) -> None:
    sqs = FakeSqs()
    sink = sink_for(fake, clock, sqs)
    fake.fault("PUT", "Patient/a", refusal("Patient.birthDate", "'1991-02-30' is not a valid date"))
    batch = [put("e1", "a", 1, birthDate="1991-02-30"), put("e2", "a", 2, birthDate="1991-03-01")]
    assert sink.deliver(batch, LambdaContext(clock)) == failures()  # refused is final: not retried
    assert fake.sent("PUT") == [("PUT", "Patient/a")] * 2  # once, then the next event went on
    assert fake.store["Patient/a"]["birthDate"] == "1991-03-01"
    [line] = [json.loads(text) for text in fhirpipes_log if "refused" in text]
    assert line["eventID"] == "e1" and line["status"] == 422 and line["reason"] == "refused"
    assert line["issues"] == [
        {
            "severity": "error",
            "code": "value",
            "expression": ["Patient.birthDate"],
            "details": ["MSG_BAD_FORMAT"],
        }
    ]
    assert not any("1991-02-30" in text for text in fhirpipes_log)
    [message] = sqs.messages  # the queue gets the whole event, for the operator to mend and resend
    assert message["reason"] == "refused" and message["event"]["eventID"] == "e1"
    assert message["event"]["details"]["entity"]["birthDate"] == "1991-02-30"
    summary = json.loads(next(text for text in fhirpipes_log if "batch delivered" in text))
    assert summary["undelivered"] == 1 and summary["written"] == 1 and summary["requests"] == 4


def test_error_events_are_not_sent_to_the_store_but_logged_and_counted(
    fake: FakeFhir, clock: FakeClock, fhirpipes_log: list[str]
) -> None:
    sqs = FakeSqs()
    sink = sink_for(fake, clock, sqs)
    batch = [error_event("bad", "SECRET-VALUE-42"), put("e2", "a", 1)]
    assert sink.deliver(batch, LambdaContext(clock)) == failures()
    assert [path for _, path in fake.sent()] == ["Patient/a", "Patient/a"]
    [line] = [json.loads(text) for text in fhirpipes_log if "not delivered to the FHIR store" in text]
    assert line["eventID"] == "bad" and line["reason"] == "mapping-failed" and line["code"]
    assert not any("SECRET-VALUE-42" in text for text in fhirpipes_log)
    assert sqs.messages[0]["event"]["eventID"] == "bad"
    summary = json.loads(next(text for text in fhirpipes_log if "batch delivered" in text))
    assert summary["undelivered"] == 1 and summary["events"] == 2


def test_what_the_queue_refuses_is_retried(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock, FakeSqs(fail=True))
    assert sink.deliver([error_event("bad", "v"), put("e2", "a", 1)], LambdaContext(clock)) == failures("bad")


def test_an_event_without_an_address_is_malformed_not_sent(fake: FakeFhir, clock: FakeClock) -> None:
    sqs = FakeSqs()
    sink = sink_for(fake, clock, sqs)
    odd = _envelope("odd", {"command": "PUT", "entity": {"resourceType": "Patient"}})
    assert sink.deliver([odd, {"not": "an event"}], LambdaContext(clock)) == failures()
    assert fake.sent() == []
    assert [m["reason"] for m in sqs.messages] == ["malformed", "malformed"]


def test_an_older_state_after_a_newer_one_is_not_applied(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock)
    assert sink.deliver([put("new", "a", 20, gender="male")], LambdaContext(clock)) == failures()
    assert sink.deliver([put("old", "a", 10, gender="female"), delete("old-d", "a", 15)]) == failures()
    assert fake.store["Patient/a"]["gender"] == "male"
    assert fake.sent("PUT") == [("PUT", "Patient/a")] and fake.sent("DELETE") == []


def test_a_replayed_batch_writes_nothing_twice(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock)
    batch = [put("e1", "a", 1), put("e2", "a", 2), put("e3", "b", 3)]
    assert sink.deliver(batch) == failures()
    writes = fake.sent("PUT")
    assert sink.deliver(batch) == failures()
    assert fake.sent("PUT") == writes  # reads only
    assert fake.versions == {"Patient/a": 2, "Patient/b": 1}


def test_a_newer_stream_outranks_an_older_one(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock)
    assert sink.deliver([put("e1", "a", 999)]) == failures()
    later = put("e2", "a", 1)
    later["details"]["entity"]["meta"]["source"] = (
        ARN.rsplit("/", 1)[0] + "/2099-01-01T00:00:00.000#000000000000000000001"
    )
    assert sink.deliver([later]) == failures()
    assert fake.store["Patient/a"]["meta"]["source"].startswith(ARN.rsplit("/", 1)[0] + "/2099")


def test_a_write_that_races_ours_is_read_again_and_judged(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock)
    fake.put("Patient/a", put("x", "a", 1)["details"]["entity"])
    raced = []

    def racer(method: str, path: str) -> None:
        if not raced:  # between our read and our write, a newer state lands
            raced.append(fake.put("Patient/a", put("y", "a", 9, gender="other")["details"]["entity"]))

    fake.before_write = racer
    assert sink.deliver([put("e5", "a", 5, gender="male")]) == failures()
    assert fake.sent() == [("GET", "Patient/a"), ("PUT", "Patient/a"), ("GET", "Patient/a")]
    assert fake.store["Patient/a"]["gender"] == "other"  # 412, read again: ours was older, so dropped


def test_a_resource_deleted_between_our_read_and_write_is_read_again(
    fake: FakeFhir, clock: FakeClock
) -> None:
    sink = sink_for(fake, clock)
    fake.put("Patient/a", put("x", "a", 1)["details"]["entity"])
    fake.fault("PUT", "Patient/a", (410, {}, None))  # the conditional write finds it gone
    assert sink.deliver([put("e2", "a", 2)]) == failures()
    assert fake.sent() == [
        ("GET", "Patient/a"),
        ("PUT", "Patient/a"),
        ("GET", "Patient/a"),
        ("PUT", "Patient/a"),
    ]
    assert fake.store["Patient/a"]["meta"]["source"].endswith("2")


def test_a_deleted_resource_answers_410_and_a_later_put_recreates_it(
    fake: FakeFhir, clock: FakeClock
) -> None:
    sink = sink_for(fake, clock)
    batch = [put("e1", "a", 1), delete("e2", "a", 2), delete("e3", "a", 3), put("e4", "a", 4)]
    assert sink.deliver(batch) == failures()
    history = ("GET", "Patient/a/_history?_count=5")  # 410: is e4 later than what was deleted?
    assert fake.sent()[4:] == [("GET", "Patient/a"), ("GET", "Patient/a"), history, ("PUT", "Patient/a")]
    assert fake.store["Patient/a"]["meta"]["source"].endswith("4")


def test_a_replayed_put_does_not_bring_back_what_was_deleted_after_it(
    fake: FakeFhir, clock: FakeClock
) -> None:
    sink = sink_for(fake, clock)
    batch = [put("e1", "a", 1), delete("e2", "a", 2)]
    assert sink.deliver(batch) == failures()
    assert sink.deliver(batch) == failures()  # the Pipe retries the whole batch
    assert fake.versions["Patient/a"] == 1 and "Patient/a" in fake.deleted
    assert fake.sent("PUT") == [("PUT", "Patient/a")]


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_retried_by_the_pipe_not_discarded(
    fake: FakeFhir, clock: FakeClock, status: int
) -> None:
    sink = sink_for(fake, clock, FakeSqs())
    fake.fault("GET", "Patient/a", (status, {}, None))
    assert sink.deliver([put("e1", "a", 1)]) == failures("e1")


# --- batch Bundles (FHIRPIPES_FHIR_BUNDLE_SIZE) ----------------------------------------------------


def test_bundles_read_and_write_many_resources_in_two_requests(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock, bundle_size=10)
    batch = [put(f"e{n}", f"r{n}", n) for n in range(8)]
    assert sink.deliver(batch, LambdaContext(clock)) == failures()
    assert sink.client.requests == 2  # one Bundle of reads, one of writes
    assert sorted(fake.store) == sorted(f"Patient/r{n}" for n in range(8))
    assert sink.deliver(batch, LambdaContext(clock)) == failures()
    assert sink.client.requests == 3  # replayed: the reads only
    assert all(version == 1 for version in fake.versions.values())


def test_bundles_keep_one_resources_events_in_order_one_round_each(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock, bundle_size=3)
    batch = [put("a1", "a", 1), put("b1", "b", 2), put("a2", "a", 3, gender="male"), delete("b2", "b", 4)]
    batch += [put("c1", "c", 5), put("d1", "d", 6), put("a3", "a", 7, gender="female")]
    assert sink.deliver(batch, LambdaContext(clock)) == failures()
    assert fake.store["Patient/a"]["gender"] == "female" and fake.versions["Patient/a"] == 3
    assert "Patient/b" in fake.deleted
    # rounds: {a1,b1,c1 | d1}, {a2,b2}, {a3}; each a Bundle of reads and one of writes
    assert sink.client.requests == 2 * (2 + 1 + 1)


def test_bundle_entries_are_judged_each_on_its_own(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock, FakeSqs(), bundle_size=10)
    fake.fault("PUT", "Patient/bad", refusal("Patient.birthDate", "'x' is not a date"))
    fake.fault("PUT", "Patient/busy", (503, {}, None))  # once: tried again next round
    fake.fault("PUT", "Patient/down", *[(500, {}, None)] * 100)  # for good: given back to the Pipe
    batch = [put("bad", "bad", 1), put("busy", "busy", 2), put("down", "down", 3), put("down2", "down", 4)]
    batch += [put("ok", "ok", 5)]
    assert sink.deliver(batch, LambdaContext(clock)) == failures("down", "down2")
    assert "Patient/busy" in fake.store and "Patient/ok" in fake.store and "Patient/bad" not in fake.store
    assert clock.sleeps  # a backoff between rounds


def test_a_bundle_the_server_wont_take_is_given_back_to_the_pipe(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock, bundle_size=10)
    fake.fault("POST", "", (413, {}, None))
    assert sink.deliver([put("e1", "a", 1), put("e2", "b", 2)], LambdaContext(clock)) == failures("e1", "e2")


def test_bundle_writes_are_conditional_on_the_version_read(fake: FakeFhir, clock: FakeClock) -> None:
    sink = sink_for(fake, clock, bundle_size=10)
    fake.put("Patient/a", put("x", "a", 1)["details"]["entity"])
    raced: list[Any] = []

    def racer(method: str, path: str) -> None:
        if not raced:
            raced.append(fake.put("Patient/a", put("y", "a", 9, gender="other")["details"]["entity"]))

    fake.before_write = racer
    assert sink.deliver([put("e5", "a", 5, gender="male")], LambdaContext(clock)) == failures()
    assert fake.store["Patient/a"]["gender"] == "other"  # 412 in the entry; read again: ours is older
    assert sink.client.requests == 3


# --- OAuth client credentials from a secret ------------------------------------------------------


class FakeSecrets:
    def __init__(self, value: str) -> None:
        self.value, self.reads = value, 0

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        self.reads += 1
        return {"SecretString": self.value}


def test_client_credentials_give_a_token_used_until_a_401(fake: FakeFhir, clock: FakeClock) -> None:
    secret = {
        "token_url": fake.url + "token",
        "client_id": "fhirpipes",
        "client_secret": "s3cr:t",
        "scope": "system/*.write",
    }
    auth = SecretBearer(
        "arn:aws:secretsmanager:eu-west-1:1:secret:fhir", client=FakeSecrets(json.dumps(secret))
    )
    client = Client(fake.url, auth, timeout=5, sleep=clock.sleep)
    CLIENTS.append(client)
    sink = Sink(SinkSettings(fake.url, concurrency=1), client, ErrorDestination(), clock)
    fake.require_token = True
    assert sink.deliver([put("e1", "a", 1), put("e2", "b", 2)], LambdaContext(clock)) == failures()
    assert fake.tokens == ["token-1"]  # one token for the batch
    headers, form = fake.token_requests[0]
    assert base64.b64decode(headers["authorization"].removeprefix("Basic ")) == b"fhirpipes:s3cr%3At"
    assert form == "grant_type=client_credentials&scope=system%2F%2A.write"
    fake.tokens.append("token-revoked-and-reissued")  # the server no longer takes token-1
    assert sink.deliver([put("e3", "c", 3)], LambdaContext(clock)) == failures()
    assert fake.tokens[-1] == "token-3" and "Patient/c" in fake.store  # 401, a new token, the retry


def test_deliver_outcomes_says_what_became_of_each_event(
    fake: FakeFhir, clock: FakeClock, fhirpipes_log: list[str]
) -> None:
    sink = sink_for(fake, clock)
    fake.put("Patient/s", put("x", "s", 9)["details"]["entity"])
    fake.fault("PUT", "Patient/r", refusal("Patient.birthDate", "'1991-02-30' is not a valid date"))
    fake.fault("GET", "Patient/f", *[(503, {}, None)] * 1000)
    batch = [
        put("w", "w", 1),
        put("s", "s", 8),  # older than the stored state
        put("p", "s", 9),  # the stored state itself
        put("r", "r", 1, birthDate="1991-02-30"),
        error_event("bad", "SECRET-VALUE-42"),
        put("f1", "f", 1),
        put("f2", "f", 2),
    ]
    results = sink.deliver_outcomes(batch, LambdaContext(clock, 20))
    assert [result.outcome for result in results] == [
        "written",
        "stale",
        "replayed",
        "refused",
        "undelivered",
        "failed",
        "blocked",
    ]
    assert results[3].status == 422 and results[3].issues[0]["expression"] == ["Patient.birthDate"]
    assert results[5].reason == "GET Patient: HTTP 503, and no time left to retry"
    assert not any("1991-02-30" in str(result) or "SECRET" in str(result) for result in results)
    # deliver is built on it: the same batch gives back the failed and the blocked
    fake.faults.clear()
    fake.fault("GET", "Patient/f", *[(503, {}, None)] * 1000)
    fake.fault("PUT", "Patient/r", refusal("Patient.birthDate", "'1991-02-30' is not a valid date"))
    assert sink.deliver(batch, LambdaContext(clock, 20)) == failures("f1", "f2")


def test_deliver_outcomes_calls_failed_what_the_error_destination_lost(
    fake: FakeFhir, clock: FakeClock
) -> None:
    sink = sink_for(fake, clock, FakeSqs(fail=True))
    fake.fault("PUT", "Patient/r", refusal("Patient.birthDate", "'1991-02-30' is not a valid date"))
    results = sink.deliver_outcomes([put("r", "r", 1), error_event("bad", "v")], LambdaContext(clock))
    assert [(result.outcome, result.reason) for result in results] == [
        ("failed", "the error destination did not take it"),
        ("failed", "the error destination did not take it"),
    ]


def test_the_handler_without_a_url_fails_with_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import fhirpipes.sink as sink

    monkeypatch.delenv("FHIRPIPES_FHIR_URL", raising=False)
    sink._sink.cache_clear()
    try:
        with pytest.raises(
            ConfigurationError, match=r"^FHIRPIPES_FHIR_URL must be the FHIR server's base URL"
        ):
            sink.handler([], None)
    finally:
        sink._sink.cache_clear()
