"""``--target fhir:URL``: the local runner delivering through the sink Lambda's code.

The failure and dead-letter mapping runs against the sink's fake FHIR server (tests/sink_fakes.py)
and a fake stream; end to end, the embedded DynamoDB feeds the real Medplum server (slow).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import SECRET, patient_image
from click.testing import CliRunner
from pipes_fakes import STREAM_ARN, FakeStreams
from sink_fakes import FakeFhir, refusal, serving

from fhirpipes.dispatch import Dispatcher
from fhirpipes.pipes.checkpoint import Checkpoints
from fhirpipes.pipes.cli import run
from fhirpipes.pipes.deadletter import DeadLetters
from fhirpipes.pipes.runner import PipeDefinition, Runner
from fhirpipes.pipes.targets import DeliveryError, FhirTarget, deliver, parse_target

CAPABILITIES = (200, {}, {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance"})


@pytest.fixture
def fake() -> Iterator[FakeFhir]:
    with serving(FakeFhir()) as server:
        yield server


def target_for(url: str, bundle_size: int = 1) -> FhirTarget:
    environ = {"FHIRPIPES_FHIR_CONCURRENCY": "1", "FHIRPIPES_FHIR_BUNDLE_SIZE": str(bundle_size)}
    target = FhirTarget(url, "none", environ=environ)
    target.check()
    return target


def runner_for(
    dispatcher: Dispatcher, streams: FakeStreams, target: FhirTarget, letters: DeadLetters
) -> Runner:
    pipe = PipeDefinition(
        name="Patients-Patient-Pipe",
        table="Patients",
        stream_arn=STREAM_ARN,
        filters=({"eventName": ["INSERT", "MODIFY", "REMOVE"]},),
    )
    return Runner(
        dispatcher,
        [pipe],
        streams_client=streams,
        target=target,
        checkpoints=Checkpoints(None),
        dead_letters=letters,
        poll_seconds=0,
        delivery_backoff=0,
    )


@pytest.mark.parametrize("bundle_size", [1, 20], ids=["requests", "bundles"])
def test_failed_events_are_retried_and_refused_ones_dead_lettered(
    fake: FakeFhir,
    dispatcher: Dispatcher,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    bundle_size: int,
) -> None:
    streams = FakeStreams()
    streams.add_shard("s1")
    streams.put("s1", "INSERT", "a", new=patient_image("a"))
    poison = streams.put("s1", "INSERT", "b", new=patient_image("b", birthDate="13-45-2000"))
    refused = streams.put("s1", "INSERT", "d", new=patient_image("d"))
    streams.put("s1", "INSERT", "e", new=patient_image("e"))
    streams.put("s1", "MODIFY", "e", new=patient_image("e", lastName="Smythe"), old=patient_image("e"))
    fake.fault("GET", "metadata", CAPABILITIES)
    fake.fault("PUT", "Patient/d", refusal("Patient.name[0].given[0]", f"bad value {SECRET}"))
    # a 403 the sink reports as a batch item failure: the runner sends e's events again, in order
    fake.fault("PUT", "Patient/e", (403, {}, None))
    letters = DeadLetters(tmp_path / "dead.jsonl")
    target = target_for(fake.url, bundle_size)
    target.prepare()
    with caplog.at_level(logging.DEBUG, logger="fhirpipes"):
        result = runner_for(dispatcher, streams, target, letters).run(once=True)
    letters.close()
    target.close()

    assert sorted(fake.store) == ["Patient/a", "Patient/e"]
    assert fake.store["Patient/e"]["name"][0]["family"] == "Smythe"
    # e's first PUT failed, so its MODIFY was held back; both went again, in stream order
    assert [p for m, p in fake.sent("PUT") if p == "Patient/e"] == ["Patient/e"] * 3
    assert bool(fake.sent("POST")) == (bundle_size > 1)  # batch Bundles, entry by entry
    assert fake.versions["Patient/e"] == 2
    assert result.totals.delivered == 3 and result.totals.dead_lettered == 2
    entries = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [(entry["sequenceNumber"], entry["target"]) for entry in entries] == [
        (poison, target.name),
        (refused, target.name),
    ]
    assert entries[0]["error"].startswith("an error event")
    assert entries[1]["error"] == (
        "the FHIR server refused the resource: HTTP 422 (value Patient.name[0].given[0])"
    )
    text = (tmp_path / "dead.jsonl").read_text() + caplog.text
    assert SECRET not in text


def test_failures_that_outlast_the_retries_fail_the_batch(fake: FakeFhir) -> None:
    fake.fault("PUT", "Patient/a", *[(503 if n % 2 else 401, {}, None) for n in range(4)])
    event = {
        "eventID": "e1",
        "eventType": "Patients.MODIFY",
        "details": {"command": "PUT", "entity": {"resourceType": "Patient", "id": "a"}},
    }
    target = target_for(fake.url)
    with pytest.raises(DeliveryError, match=r"fhir:http://127\.0\.0\.1:\d+/fhir/: delivery failed after 2"):
        deliver(target, [event], attempts=2, backoff=0)
    target.close()
    assert "Patient/a" not in fake.store


def test_messages_that_are_not_fhirpipes_events_are_dead_lettered_not_sent(fake: FakeFhir) -> None:
    target = target_for(fake.url)
    delivery = deliver(target, ["plain text", {"eventID": "x", "details": {"command": "PUT"}}], backoff=0)
    target.close()
    assert delivery.delivered == 0
    assert [index for index, _ in delivery.refused] == [0, 1]
    assert all("not a fhirpipes" in reason for _, reason in delivery.refused)
    assert fake.sent() == []


def test_prepare_says_when_the_url_is_no_fhir_server(fake: FakeFhir) -> None:
    target = target_for(fake.url)  # the fake has no CapabilityStatement: 404
    with pytest.raises(DeliveryError, match="HTTP 404 for GET metadata: is this a FHIR base URL"):
        target.prepare()
    target.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "fhir:"], "give the FHIR base URL"),
        (["--target", "fhir:ftp://host/r4"], "give the FHIR base URL"),
        (["--target", "fhir:http:///r4"], "give the FHIR base URL"),
        (["--target", "fhir:http://host:port/r4"], "give the FHIR base URL"),
        (["--target", f"fhir:https://ann:{SECRET}@host/r4"], "no credentials in the URL"),
        (["--target", "fhir:http://host/r4", "--fhir-auth", "basic"], "must be none, sigv4 or secret:"),
        (["--target", "stdout", "--fhir-auth", "none"], "--fhir-auth is for fhir: targets"),
        (
            ["--target", "fhir:http://host/r4", "--target-endpoint-url", "http://x"],
            "--target-endpoint-url is for",
        ),
    ],
)
def test_cli_refuses_bad_fhir_targets_in_one_line_before_starting(args: list[str], message: str) -> None:
    result = CliRunner().invoke(run, ["--embedded", "--once", *args])
    assert result.exit_code in (1, 2), result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "embedded DynamoDB at" not in result.output and SECRET not in result.output
    if result.exit_code == 1:
        assert len(result.output.strip().splitlines()) == 1


def test_the_sinks_settings_are_checked_with_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIRPIPES_FHIR_GUARD", "sometimes")
    with pytest.raises(Exception, match="fhir:http://host/r4: FHIRPIPES_FHIR_GUARD must be"):
        parse_target("fhir:http://host/r4")
    monkeypatch.setenv("FHIRPIPES_FHIR_GUARD", "none")
    monkeypatch.setenv("FHIRPIPES_FHIR_AUTH", "sigv4")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    target = parse_target("fhir:http://host/r4")
    assert isinstance(target, FhirTarget)
    assert target.settings()[:3] == ("http://host/r4/", "sigv4", "none")


# --- end to end: the embedded DynamoDB, `fhirpipes run`, the real Medplum server -----------------


def read(url: str, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url + path, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, None


@pytest.mark.slow
def test_cli_run_into_a_real_fhir_server_and_replay_harmlessly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medplum import medplum

    from fhirpipes.pipes.embedded import EmbeddedAws, create_stream_table

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("FHIRPIPES_PLUGINS", "patient")
    with EmbeddedAws() as embedded, medplum() as url:
        client = embedded.config.client("dynamodb")
        create_stream_table(client, "Patients")
        checkpoint = tmp_path / "cp.json"
        args = [
            "--endpoint-url",
            embedded.endpoint_url,
            "--region",
            "us-east-1",
            "--target",
            f"fhir:{url}",
            "--checkpoint",
            str(checkpoint),
            "--once",
        ]

        def put(item_id: str, **extra: Any) -> None:
            client.put_item(TableName="Patients", Item=patient_image(item_id, **extra))

        put("a")
        put("a", lastName="Smythe")
        put("a", lastName="Smithers")  # rapid successive updates: the last one stays
        put("b")
        client.delete_item(TableName="Patients", Key={"id": {"S": "b"}})
        put("c", birthDate="13-45-2000")  # a poison record: to the dead-letter file
        first = CliRunner().invoke(run, args)
        assert first.exit_code == 0, first.output
        status, a = read(url, "Patient/a")
        assert status == 200 and a["name"][0]["family"] == "Smithers"
        assert read(url, "Patient/b")[0] in (404, 410)
        assert read(url, "Patient/c")[0] == 404
        assert "1 event(s) the target can never take" in first.stderr
        dead = [json.loads(line) for line in (tmp_path / "cp.dead-letters.jsonl").read_text().splitlines()]
        assert [entry["error"][:14] for entry in dead] == ["an error event"]
        history = len(read(url, "Patient/a/_history")[1]["entry"])

        # A replay of the whole stream (the checkpoint lost): the store is left as it was.
        checkpoint.unlink()
        replay = CliRunner().invoke(run, [*args, "--starting-position", "TRIM_HORIZON"])
        assert replay.exit_code == 0, replay.output
        assert read(url, "Patient/a")[1]["name"][0]["family"] == "Smithers"
        assert len(read(url, "Patient/a/_history")[1]["entry"]) == history
        assert read(url, "Patient/b")[0] in (404, 410)

        put("a", lastName="Smith-Jones")  # and the next change goes on from the checkpoint
        third = CliRunner().invoke(run, args)
        assert third.exit_code == 0, third.output
        assert read(url, "Patient/a")[1]["name"][0]["family"] == "Smith-Jones"
        assert SECRET not in first.output + replay.output + third.output
