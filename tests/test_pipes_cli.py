"""``fhirpipes run`` (`fhirpipes.pipes.cli`): options checked before anything starts, runs end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from builders import SECRET, put_patient
from click.testing import CliRunner

from fhirpipes.pipes.cli import run

# --- the CLI checks everything before it starts anything ---------------------------------------


def one_error_line(result: Any) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert "embedded DynamoDB at" not in result.output and "retrying" not in result.output
    return str(lines[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "bogus"], "Error: unknown target 'bogus': use stdout, file:PATH"),
        (["--target", "sqs:bad name"], "a queue name is"),
        (["--target", "file:{tmp}"], "is a directory; name a file"),
        (["--target", "file:{tmp}/plain/events.jsonl"], "is not a directory"),
        (["--checkpoint", "{tmp}/plain/cp.json"], "the checkpoint file"),
        (["--target", "file:{tmp}/cp.json", "--checkpoint", "{tmp}/cp.json"], "is also the checkpoint file"),
        (
            ["--target", "file:{tmp}/cp.dead-letters.jsonl", "--checkpoint", "{tmp}/cp.json"],
            "is also the dead-letter file",
        ),
        (["--target", "stdout", "--target-endpoint-url", "http://x"], "--target-endpoint-url is for"),
        (["--region", "eu-west-1"], "--embedded starts its own endpoint"),
    ],
)
def test_cli_run_refuses_bad_options_before_starting_anything(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "plain").write_text("")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = CliRunner().invoke(run, ["--embedded", "--once", *args])
    assert result.exit_code in (1, 2), result.output
    if result.exit_code == 2:  # click's usage errors come with the usage line
        assert message in result.output and "embedded DynamoDB at" not in result.output
    else:
        assert message in one_error_line(result)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_cli_run_refuses_an_unwritable_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = CliRunner().invoke(run, ["--embedded", "--once", "--target", f"file:{locked}/events.jsonl"])
    finally:
        locked.chmod(0o700)
    assert "is not writable" in one_error_line(result)


@pytest.mark.slow
def test_cli_run_to_cloudwatch_with_checkpoint_and_restart(
    embedded: Any, patients: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("FHIRPIPES_PLUGINS", "patient")
    logs = embedded.config.client("logs")
    checkpoint = tmp_path / "cp.json"
    args = [
        "--endpoint-url",
        embedded.endpoint_url,
        "--region",
        "us-east-1",
        "--target",
        "cloudwatch:/fhirpipes/test:cli",
        "--checkpoint",
        str(checkpoint),
        "--once",
    ]

    def logged() -> list[str]:
        response = logs.get_log_events(
            logGroupName="/fhirpipes/test", logStreamName="cli", startFromHead=True
        )
        return [json.loads(e["message"])["details"]["entity"]["id"] for e in response["events"]]

    put_patient(patients, "a")
    put_patient(patients, "b")
    first = CliRunner().invoke(run, args)
    assert first.exit_code == 0, first.output
    assert logged() == ["a", "b"]
    assert "run ended: every stream read to its end" in first.stderr

    put_patient(patients, "c")
    second = CliRunner().invoke(run, args)
    assert second.exit_code == 0, second.output
    assert logged() == ["a", "b", "c"]  # nothing lost, nothing repeated

    third = CliRunner().invoke(run, args)
    assert third.exit_code == 0
    assert logged() == ["a", "b", "c"]
    assert SECRET not in first.stderr + second.stderr + third.stderr


@pytest.mark.slow
def test_cli_run_refuses_an_unknown_table_and_a_missing_stream(
    embedded: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    base = [
        "--endpoint-url",
        embedded.endpoint_url,
        "--region",
        "us-east-1",
        "--once",
        "--checkpoint",
        str(tmp_path / "cp.json"),
    ]
    unknown = CliRunner().invoke(run, [*base, "--table", "Nope"])
    assert unknown.exit_code == 1
    assert "no mapper for table(s) Nope" in unknown.output
    client = embedded.config.client("dynamodb")
    if "Practitioners" in client.list_tables()["TableNames"]:
        client.delete_table(TableName="Practitioners")
    client.create_table(
        TableName="Practitioners",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    no_stream = CliRunner().invoke(run, [*base, "--table", "Practitioners"])
    assert no_stream.exit_code == 1
    assert "has no stream" in no_stream.output
    client.delete_table(TableName="Practitioners")


@pytest.mark.slow
def test_cli_run_embedded_needs_no_account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")  # must not be read
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing"))
    monkeypatch.chdir(tmp_path)
    from fhirpipes.logs import logger

    before = (list(logger.handlers), logger.level, logger.propagate)
    result = CliRunner().invoke(run, ["--embedded", "--once"])
    assert result.exit_code == 0, result.output
    assert (list(logger.handlers), logger.level, logger.propagate) == before  # logging left as it was
    assert "embedded DynamoDB at http://127.0.0.1:" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no checkpoint file with --embedded unless asked


def test_cli_run_refuses_a_bad_input_template_before_starting_anything(tmp_path: Path) -> None:
    template = tmp_path / "template.txt"
    template.write_text('{"id": <$.eventID')
    result = CliRunner().invoke(run, ["--embedded", "--once", "--input-template", f"@{template}"])
    assert result.exit_code == 1
    assert "Input template is not valid" in result.output
    assert "embedded DynamoDB at" not in result.output


@pytest.mark.slow
def test_cli_run_dead_letters_an_oversized_error_event_and_goes_on(
    embedded: Any, patients: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("FHIRPIPES_PLUGINS", "patient")
    sqs = embedded.config.client("sqs")
    url = sqs.create_queue(QueueName="dead-letter-test")["QueueUrl"]
    checkpoint = tmp_path / "cp.json"
    args = [
        "--endpoint-url",
        embedded.endpoint_url,
        "--region",
        "us-east-1",
        "--target",
        "sqs:dead-letter-test",
        "--checkpoint",
        str(checkpoint),
        "--once",
    ]
    put_patient(patients, "a")
    # A poison record of 300 KB: its error event carries the whole record, over SQS's 256 KB.
    put_patient(patients, "poison", birthDate="not-a-date", notes=SECRET * 40_000)
    put_patient(patients, "c")
    first = CliRunner().invoke(run, args)
    assert first.exit_code == 0, first.output
    assert "dead-lettered" in first.stderr
    row = next(line for line in first.stderr.splitlines() if line.startswith("Patients-Patient-Pipe"))
    assert row.split()[-2:] == ["2", "1"]  # delivered 2, dead-lettered 1
    dead = tmp_path / "cp.dead-letters.jsonl"
    assert f"1 event(s) the target can never take are in {dead}" in first.stderr
    [entry] = [json.loads(line) for line in dead.read_text().splitlines()]
    assert entry["target"] == "sqs:dead-letter-test" and "over the SQS limit" in entry["error"]
    assert SECRET not in dead.read_text() and SECRET not in first.output
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ids = sorted(json.loads(m["Body"])["details"]["entity"]["id"] for m in received)
    assert ids == ["a", "c"]

    again = CliRunner().invoke(run, args)
    assert again.exit_code == 0
    assert len(dead.read_text().splitlines()) == 1  # not again


@pytest.mark.slow
def test_cli_run_refuses_a_target_file_another_run_is_writing(tmp_path: Path) -> None:
    from fhirpipes.pipes.appendfile import AppendFile

    holder = AppendFile(tmp_path / "events.jsonl")
    holder.open()
    try:
        result = CliRunner().invoke(
            run,
            [
                "--embedded",
                "--once",
                "--target",
                f"file:{tmp_path}/events.jsonl",
                "--checkpoint",
                f"{tmp_path}/cp.json",
            ],
        )
    finally:
        holder.close()
    assert result.exit_code == 1
    assert "is being written by another run" in result.output
    assert "retrying" not in result.output
