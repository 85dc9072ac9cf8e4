"""The local Pipe runner: filter, batching, enrichment, delivery, checkpoints, Ctrl-C.

Unit tests run against a fake stream client (tests/pipes_fakes.py) with the real Patient
mapper and the Lambda's dispatcher; the slow ones run against the embedded DynamoDB. The
``fhirpipes run`` command's own tests are in test_pipes_cli.py.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import SECRET, patient_image, put_patient
from pipes_fakes import STREAM_ARN, FakeStreams

from fhirpipes.dispatch import Dispatcher
from fhirpipes.pipes.checkpoint import Checkpoints
from fhirpipes.pipes.cli import build_pipes, stop_on_interrupt
from fhirpipes.pipes.deadletter import DeadLetters
from fhirpipes.pipes.runner import EnrichmentError, PipeDefinition, Runner, StatusLine, summary_table
from fhirpipes.pipes.targets import DeliveryError, Target, too_large
from fhirpipes.settings import Settings


class ListTarget(Target):
    """Collects delivered messages; can fail the first sends, or run a hook on each send."""

    name = "list"

    def __init__(self, fail: int = 0, on_send: Callable[[], None] | None = None) -> None:
        self.fail = fail
        self.on_send = on_send
        self.batches: list[list[dict[str, Any]]] = []

    def send(self, chunk: list[str]) -> dict[int, str | None]:
        if self.on_send:
            self.on_send()
        if self.fail:
            self.fail -= 1
            raise ConnectionError("target down")
        self.batches.append([json.loads(message) for message in chunk])
        return {}

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for batch in self.batches for event in batch]


def pipe(**overrides: Any) -> PipeDefinition:
    values: dict[str, Any] = {
        "name": "Patients-Patient-Pipe",
        "table": "Patients",
        "stream_arn": STREAM_ARN,
        "filters": ({"eventName": ["INSERT", "MODIFY", "REMOVE"]},),
    }
    values.update(overrides)
    return PipeDefinition(**values)


def make_runner(
    dispatcher: Dispatcher,
    fake: FakeStreams,
    target: Target,
    checkpoints: Checkpoints | None = None,
    **pipe_overrides: Any,
) -> Runner:
    return Runner(
        dispatcher,
        [pipe(**pipe_overrides)],
        streams_client=fake,
        target=target,
        checkpoints=checkpoints or Checkpoints(None),
        poll_seconds=0,
        delivery_backoff=0,
        enrichment_backoff=0,
    )


def entity_ids(target: ListTarget) -> list[tuple[str, str]]:
    out = []
    for event in target.events:
        details = event["details"]
        out.append((details["command"], details.get("entity", {}).get("id", event["eventID"])))
    return out


def one_shard() -> FakeStreams:
    fake = FakeStreams()
    fake.add_shard("s1")
    return fake


# --- unit: the flow ----------------------------------------------------------------------------


def test_filter_is_applied_as_the_pipe_declares(dispatcher: Dispatcher) -> None:
    fake = one_shard()
    fake.put("s1", "INSERT", "a", new=patient_image("a"))
    fake.put("s1", "REMOVE", "a", old=patient_image("a"))
    target = ListTarget()
    runner = make_runner(dispatcher, fake, target, filters=({"eventName": ["INSERT", "MODIFY"]},))
    result = runner.run(once=True)
    assert result.reason == "caught-up"
    assert entity_ids(target) == [("PUT", "a")]
    counts = result.totals.as_dict()
    assert counts == {
        "read": 2,
        "filtered": 1,
        "mapped": 1,
        "skipped": 0,
        "failed": 0,
        "delivered": 1,
        "dead_lettered": 0,
    }


def test_a_poison_record_does_not_block_the_records_behind_it(dispatcher: Dispatcher) -> None:
    fake = one_shard()
    fake.put("s1", "INSERT", "a", new=patient_image("a"))
    fake.put("s1", "INSERT", "bad", new=patient_image("bad", birthDate="not-a-date"))
    last = fake.put("s1", "INSERT", "c", new=patient_image("c"))
    target = ListTarget()
    checkpoints = Checkpoints(None)
    result = make_runner(dispatcher, fake, target, checkpoints, batch_size=1).run(once=True)
    assert [command for command, _ in entity_ids(target)] == ["PUT", "ERROR", "PUT"]
    assert target.events[1]["details"]["error"]["code"] == "conversion-failed"
    assert result.totals.failed == 1 and result.totals.delivered == 3
    assert checkpoints.get("Patients-Patient-Pipe", STREAM_ARN, "s1") == last


def test_unchanged_modifications_are_counted_as_skipped(dispatcher: Dispatcher) -> None:
    fake = one_shard()
    fake.put("s1", "INSERT", "a", new=patient_image("a"))
    fake.put("s1", "MODIFY", "a", new=patient_image("a", lastLoginAt="today"), old=patient_image("a"))
    target = ListTarget()
    result = make_runner(dispatcher, fake, target).run(once=True)
    assert result.totals.skipped == 1 and result.totals.delivered == 1


def test_batches_follow_the_declared_batch_size(dispatcher: Dispatcher) -> None:
    fake = one_shard()
    for n in range(23):
        fake.put("s1", "INSERT", f"p{n}", new=patient_image(f"p{n}"))
    target = ListTarget()
    make_runner(dispatcher, fake, target, batch_size=10).run(once=True)
    assert [len(batch) for batch in target.batches] == [10, 10, 3]
    assert [entity for _, entity in entity_ids(target)] == [f"p{n}" for n in range(23)]


def test_a_batching_window_holds_a_partial_batch_until_it_closes(dispatcher: Dispatcher) -> None:
    fake = one_shard()
    fake.put("s1", "INSERT", "a", new=patient_image("a"))
    now = [100.0]
    stop_at = [103.0]
    target = ListTarget()

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= stop_at[0]:
            runner.stop()

    runner = Runner(
        dispatcher,
        [pipe(batch_size=10, batching_window_seconds=5)],
        streams_client=fake,
        target=target,
        poll_seconds=1,
        clock=lambda: now[0],
        sleep=sleep,
    )
    runner.run()  # stopped 3 s in: the window is still open, nothing sent
    assert target.batches == []

    runner = Runner(
        dispatcher,
        [pipe(batch_size=10, batching_window_seconds=5)],
        streams_client=fake,
        target=target,
        poll_seconds=1,
        clock=lambda: now[0],
        sleep=sleep,
    )
    stop_at[0] = now[0] + 7
    runner.run()
    assert [len(batch) for batch in target.batches] == [1]  # sent when the window closed
    assert now[0] >= 108


def test_input_templates_shape_what_the_enrichment_and_the_target_get(dispatcher: Dispatcher) -> None:
    fake = one_shard()
    fake.put("s1", "INSERT", "a", new=patient_image("a"))
    enrichment_template = (
        '{"eventID": <$.eventID>, "eventName": <$.eventName>, "eventSourceARN": <aws.pipes.source-arn>, '
        '"dynamodb": {"Keys": <$.dynamodb.Keys>, "NewImage": <$.dynamodb.NewImage>}}'
    )
    target_template = '{"pipe": <aws.pipes.pipe-name>, "patient": <$.details.entity.id>}'
    target = ListTarget()
    make_runner(
        dispatcher, fake, target, input_template=enrichment_template, target_input_template=target_template
    ).run(once=True)
    assert target.events == [{"pipe": "Patients-Patient-Pipe", "patient": "a"}]


# --- unit: failures and checkpoints ------------------------------------------------------------


def test_a_failed_delivery_is_not_checkpointed_and_a_restart_loses_and_repeats_nothing(
    dispatcher: Dispatcher, tmp_path: Path
) -> None:
    fake = one_shard()
    for n in range(4):
        fake.put("s1", "INSERT", f"p{n}", new=patient_image(f"p{n}"))
    path = tmp_path / "checkpoints.json"
    first = ListTarget()
    with pytest.raises(DeliveryError):
        # The first batch goes through; the second fails on every attempt.
        flaky = ListTarget()
        calls = [0]

        def second_batch_fails() -> None:
            calls[0] += 1
            if calls[0] > 1:
                raise ConnectionError("down")

        flaky.on_send = second_batch_fails
        first = flaky
        make_runner(dispatcher, fake, flaky, Checkpoints(path), batch_size=2).run(once=True)
    assert [entity for _, entity in entity_ids(first)] == ["p0", "p1"]
    assert Checkpoints(path).get("Patients-Patient-Pipe", STREAM_ARN, "s1") == "102"

    fake.put("s1", "INSERT", "p4", new=patient_image("p4"))
    second = ListTarget()
    make_runner(dispatcher, fake, second, Checkpoints(path), batch_size=2).run(once=True)
    assert [entity for _, entity in entity_ids(second)] == ["p2", "p3", "p4"]

    third = ListTarget()
    result = make_runner(dispatcher, fake, third, Checkpoints(path), batch_size=2).run(once=True)
    assert third.events == [] and result.totals.read == 0


def test_filtered_records_move_the_checkpoint_too(dispatcher: Dispatcher) -> None:
    fake = one_shard()
    fake.put("s1", "INSERT", "a", new=patient_image("a"))
    last = fake.put("s1", "REMOVE", "a", old=patient_image("a"))
    checkpoints = Checkpoints(None)
    make_runner(dispatcher, fake, ListTarget(), checkpoints, filters=({"eventName": ["INSERT"]},)).run(
        once=True
    )
    assert checkpoints.get("Patients-Patient-Pipe", STREAM_ARN, "s1") == last


def test_an_enrichment_that_fails_the_batch_is_retried_then_stops_the_run(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    raising = Dispatcher(dispatcher.registry, Settings(on_error="raise"))
    fake = one_shard()
    fake.put("s1", "INSERT", "bad", new=patient_image("bad", birthDate=SECRET))
    checkpoints = Checkpoints(None)
    target = ListTarget()
    with caplog.at_level(logging.WARNING, logger="fhirpipes"), pytest.raises(EnrichmentError) as raised:
        make_runner(raising, fake, target, checkpoints).run(once=True)
    assert "failed the batch 3 times" in str(raised.value)
    assert SECRET not in str(raised.value)
    assert SECRET not in caplog.text
    assert target.events == []
    assert checkpoints.get("Patients-Patient-Pipe", STREAM_ARN, "s1") is None


def test_ctrl_c_stops_after_the_batch_in_hand(dispatcher: Dispatcher) -> None:
    fake = one_shard()
    sequences = [fake.put("s1", "INSERT", f"p{n}", new=patient_image(f"p{n}")) for n in range(3)]
    checkpoints = Checkpoints(None)
    target = ListTarget(on_send=lambda: os.kill(os.getpid(), signal.SIGINT))
    runner = make_runner(dispatcher, fake, target, checkpoints, batch_size=1)
    messages = io.StringIO()
    with stop_on_interrupt(runner, messages):
        result = runner.run()  # no stop condition but Ctrl-C
    assert result.reason == "stopped"
    assert [entity for _, entity in entity_ids(target)] == ["p0"]  # the batch in hand was finished
    assert checkpoints.get("Patients-Patient-Pipe", STREAM_ARN, "s1") == sequences[0]
    assert "stopping after the batch in hand" in messages.getvalue()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored

    rest = ListTarget()
    make_runner(dispatcher, fake, rest, checkpoints, batch_size=1).run(once=True)
    assert [entity for _, entity in entity_ids(rest)] == ["p1", "p2"]


def test_a_second_ctrl_c_aborts(dispatcher: Dispatcher) -> None:
    runner = make_runner(dispatcher, one_shard(), ListTarget())
    with pytest.raises(KeyboardInterrupt), stop_on_interrupt(runner, io.StringIO()):
        os.kill(os.getpid(), signal.SIGINT)
        assert runner.stopping
        os.kill(os.getpid(), signal.SIGINT)


def test_status_line_and_logs_carry_counts_and_ids_only(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    fake = one_shard()
    fake.put("s1", "INSERT", "a", new=patient_image("a"))
    fake.put("s1", "INSERT", "bad", new=patient_image("bad", birthDate=SECRET))
    screen = io.StringIO()
    runner = make_runner(dispatcher, fake, ListTarget())
    runner.status = StatusLine(screen, enabled=True)
    with caplog.at_level(logging.DEBUG, logger="fhirpipes"):
        result = runner.run(once=True)
    assert "read 2" in screen.getvalue() and "delivered 2" in screen.getvalue()
    assert "batch delivered" in caplog.text
    assert SECRET not in screen.getvalue() and SECRET not in caplog.text
    table = summary_table(result)
    assert table.splitlines()[0].split() == [
        "pipe",
        "table",
        "read",
        "filtered",
        "mapped",
        "skipped",
        "failed",
        "delivered",
        "dead-lettered",
    ]
    assert table.splitlines()[2].split() == [
        "Patients-Patient-Pipe",
        "Patients",
        "2",
        "0",
        "1",
        "0",
        "1",
        "2",
        "0",
    ]


def test_the_status_line_stays_off_when_not_a_terminal() -> None:
    screen = io.StringIO()
    status = StatusLine(screen)
    from fhirpipes.pipes.runner import Counters

    status.update(Counters(read=1), force=True)
    assert screen.getvalue() == ""


# --- unit: refused events go to the dead-letter file ------------------------------------------


class LimitedTarget(ListTarget):
    """A target that can't take a message over ``limit`` bytes (as CloudWatch Logs can't over 256 KB)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def refuse(self, message: str) -> str | None:
        return too_large(message, self.limit, "test")


def test_an_event_over_the_targets_limit_is_dead_lettered_and_the_run_goes_on(
    dispatcher: Dispatcher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = one_shard()
    fake.put("s1", "INSERT", "a", new=patient_image("a"))
    big = fake.put("s1", "INSERT", "big", new=patient_image("big", lastName=SECRET * 1000))
    last = fake.put("s1", "INSERT", "c", new=patient_image("c"))
    path = tmp_path / "cp.json"
    target = LimitedTarget(5_000)
    with caplog.at_level(logging.WARNING, logger="fhirpipes"):
        result = make_runner(dispatcher, fake, target, Checkpoints(path), batch_size=2).run(once=True)
    assert [entity for _, entity in entity_ids(target)] == ["a", "c"]
    assert result.totals.dead_lettered == 1 and result.totals.delivered == 2
    assert Checkpoints(path).get("Patients-Patient-Pipe", STREAM_ARN, "s1") == last
    dead = path.with_name("cp.dead-letters.jsonl")
    [entry] = [json.loads(line) for line in dead.read_text().splitlines()]
    assert entry.pop("time").endswith("Z")
    assert entry == {
        "pipe": "Patients-Patient-Pipe",
        "streamArn": STREAM_ARN,
        "shardId": "s1",
        "sequenceNumber": big,
        "firstSequenceNumber": "101",
        "lastSequenceNumber": big,
        "eventID": f"evt-{big}",
        "target": "list",
        "error": entry["error"],
    }
    assert entry["error"].startswith("the message is ") and "over the test limit of 5000" in entry["error"]
    assert SECRET not in dead.read_text() and SECRET not in caplog.text  # no body unless asked for
    assert oct(dead.stat().st_mode & 0o777) == "0o600"

    again = LimitedTarget(5_000)
    assert make_runner(dispatcher, fake, again, Checkpoints(path)).run(once=True).totals.read == 0
    assert len(dead.read_text().splitlines()) == 1


def test_dead_letter_bodies_only_when_asked_for(dispatcher: Dispatcher, tmp_path: Path) -> None:
    fake = one_shard()
    fake.put("s1", "INSERT", "big", new=patient_image("big", lastName="x" * 6000))
    letters = DeadLetters(tmp_path / "dead.jsonl", bodies=True)
    runner = Runner(
        dispatcher,
        [pipe()],
        streams_client=fake,
        target=LimitedTarget(5_000),
        dead_letters=letters,
        poll_seconds=0,
    )
    runner.run(once=True)
    letters.close()
    [entry] = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert entry["event"]["details"]["entity"]["name"][0]["family"] == "x" * 6000


def test_memory_only_checkpoints_keep_dead_letters_in_memory(
    dispatcher: Dispatcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fake = one_shard()
    fake.put("s1", "INSERT", "big", new=patient_image("big", lastName="x" * 6000))
    runner = make_runner(dispatcher, fake, LimitedTarget(5_000))
    assert runner.run(once=True).totals.dead_lettered == 1
    assert [entry["eventID"] for entry in runner.dead_letters.entries] == ["evt-101"]
    assert list(tmp_path.iterdir()) == []


def test_a_failed_batch_is_cut_from_the_file_target_at_once(dispatcher: Dispatcher, tmp_path: Path) -> None:
    from fhirpipes.pipes.targets import FileTarget

    fake = one_shard()
    for n in range(4):
        fake.put("s1", "INSERT", f"p{n}", new=patient_image(f"p{n}"))
    out = tmp_path / "events.jsonl"
    calls = [0]

    def second_batch_dies(step: str) -> None:
        if step == "after-write":
            calls[0] += 1
            if calls[0] == 2:
                raise ConnectionError("the next step failed")

    target = FileTarget(out)
    runner = make_runner(dispatcher, fake, target, Checkpoints(tmp_path / "cp.json"), batch_size=2)
    runner.on_step = second_batch_dies
    with pytest.raises(ConnectionError):
        runner.run(once=True)
    target.close()
    assert [json.loads(line)["eventID"] for line in out.read_text().splitlines()] == ["evt-101", "evt-102"]


# --- against the embedded DynamoDB -------------------------------------------------------------


@pytest.mark.slow
def test_end_to_end_from_put_item_to_a_file(
    embedded: Any, patients: Any, dispatcher: Dispatcher, tmp_path: Path
) -> None:
    from fhirpipes.pipes.targets import FileTarget

    put_patient(patients, "a")
    put_patient(patients, "b", birthDate="13-45-2000")  # a poison record
    put_patient(patients, "a", lastName="Smythe")
    patients.delete_item(TableName="Patients", Key={"id": {"S": "a"}})
    put_patient(patients, "c")
    mapper = dispatcher.registry.mappers[0]
    pipes = build_pipes([mapper], patients, Settings())
    out = tmp_path / "events.jsonl"
    target = FileTarget(out)
    runner = Runner(
        dispatcher,
        pipes,
        streams_client=embedded.config.client("dynamodbstreams"),
        target=target,
        poll_seconds=0,
    )
    result = runner.run(once=True)
    target.close()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    commands = [(e["details"]["command"], e["details"].get("entity", {}).get("id")) for e in events]
    assert commands == [("PUT", "a"), ("ERROR", None), ("PUT", "a"), ("DELETE", "a"), ("PUT", "c")]
    assert events[2]["details"]["entity"]["name"][0]["family"] == "Smythe"
    assert events[0]["details"]["entity"]["meta"]["source"].startswith(pipes[0].stream_arn)
    assert result.totals.as_dict() == {
        "read": 5,
        "filtered": 0,
        "mapped": 4,
        "skipped": 0,
        "failed": 1,
        "delivered": 5,
        "dead_lettered": 0,
    }


@pytest.mark.slow
def test_importing_the_local_pipe_does_not_import_boto3_or_moto() -> None:
    import subprocess
    import sys

    code = (
        "import sys, fhirpipes.handler, fhirpipes.pipes.cli, fhirpipes.pipes.demo, fhirpipes.pipes.runner;"
        "print(sorted(m for m in ('boto3', 'botocore', 'moto') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"
