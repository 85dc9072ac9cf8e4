"""The backfill, end to end on the real export layout: same resources as the Lambda's INSERTs,
counts that add up, poison items as error lines, rolled files, resume after a kill, the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from backfill_export import every_type_item, patient_items, write_export

from fhirpipes.attributes import decode_image
from fhirpipes.backfill.job import SourceSpec
from fhirpipes.backfill.run import execute, prepare
from fhirpipes.testing.stream import make_record

EXPORT_ARN_PREFIX = "arn:aws:dynamodb:us-east-1:123456789012:table/Patients/export/"


def run_backfill(export: Path, out: Path, workers: int = 1, **options: Any) -> dict[str, Any]:
    job, partitions = prepare(
        SourceSpec(kind="export", location=str(export)), keys=("id",), out=str(out), **options
    )
    return execute(job, partitions, workers=workers)


def resources(out: Path) -> dict[str, dict[str, Any]]:
    """Every resource written, by id; fails if an id is there twice."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((out / "data").glob("*.ndjson")):
        for line in path.read_text(encoding="utf-8").splitlines():
            resource = json.loads(line)
            assert resource["id"] not in found, f"{resource['id']} written twice"
            found[resource["id"]] = resource
    return found


def output_files(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((out / "data").glob("*.ndjson"))} | {
        "errors.ndjson": (out / "errors.ndjson").read_bytes()
    }


@pytest.fixture
def export(tmp_path: Path) -> Path:
    items = [*patient_items(120), every_type_item()]
    return write_export(tmp_path / "bucket", items, files=4, poison=['{"Item": ', "not json at all 0155-22"])


def test_each_item_gives_the_resource_its_insert_gives_through_the_lambda(
    export: Path, tmp_path: Path
) -> None:
    from fhirpipes.handler import handler

    manifest = run_backfill(export, tmp_path / "out")
    written = resources(tmp_path / "out")
    items = [*patient_items(120), every_type_item()]
    assert manifest["counts"]["written"] == len(items) == len(written)
    for item in items:
        plain = decode_image(item)
        (event,) = handler([make_record("Patients", plain)], None)
        expected = event["details"]["entity"]
        got = written[expected["id"]]
        # Lineage says where each came from: the stream, or the export as of its time.
        assert got["meta"]["source"] == f"{EXPORT_ARN_PREFIX}01764547200000-1a2b3c4d#2026-12-01T00:00:00.000Z"
        for resource in (got, expected):
            del resource["meta"]["source"]
        assert got == expected


def test_counts_add_up_and_a_poison_line_is_an_error_line_not_a_stop(export: Path, tmp_path: Path) -> None:
    manifest = run_backfill(export, tmp_path / "out")
    counts = manifest["counts"]
    assert counts == {"read": 123, "written": 121, "skipped": 0, "errors": 2, "byType": {"Patient": 121}}
    assert counts["read"] == counts["written"] + counts["skipped"] + counts["errors"]
    assert sum(entry["count"] for entry in manifest["output"]) == 121
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.ndjson").read_text().splitlines()]
    assert len(errors) == 2
    for error in errors:
        assert error["details"]["command"] == "ERROR"
        assert error["location"].startswith("data/") and ":" in error["location"]
        assert error["details"]["error"]["code"] == "malformed-record"
        # Where and why, never what: the line's text is not quoted.
        assert "0155-22" not in json.dumps(error)
    assert manifest["complete"] is True
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest


def test_an_item_the_mapper_refuses_is_the_lambdas_own_error_event(tmp_path: Path) -> None:
    import logging

    from fhirpipes.handler import handler

    bad = {"id": {"S": "p-bad"}, "lastName": {"S": "Q"}, "birthDate": {"S": "Secret-Not-A-Date"}}
    export = write_export(tmp_path / "bucket", [*patient_items(2), bad], files=1)
    level = logging.getLogger("fhirpipes").level
    manifest = run_backfill(export, tmp_path / "out")
    assert logging.getLogger("fhirpipes").level == level  # quiet while it maps, then as it was
    assert manifest["counts"]["errors"] == 1
    (line,) = (tmp_path / "out" / "errors.ndjson").read_text().splitlines()
    event = json.loads(line)
    (expected,) = handler([make_record("Patients", decode_image(bad))], None)
    assert (
        (event["source"], event["eventType"])
        == (expected["source"], expected["eventType"])
        == (
            "PatientTable",
            "PatientMappingFailed",
        )
    )
    assert event["details"]["error"] == expected["details"]["error"]
    assert event["details"]["record"]["dynamodb"]["NewImage"] == bad
    assert "Secret-Not-A-Date" not in event["details"]["error"]["message"]


def test_an_item_without_its_key_is_an_error_line_naming_the_attribute(tmp_path: Path) -> None:
    keyless = {"firstName": {"S": "Zed-Secret"}, "lastName": {"S": "Q"}}
    export = write_export(tmp_path / "bucket", [*patient_items(3), keyless], files=1)
    manifest = run_backfill(export, tmp_path / "out", errors="locations")
    assert manifest["counts"]["errors"] == 1
    (line,) = (tmp_path / "out" / "errors.ndjson").read_text().splitlines()
    error = json.loads(line)
    assert error["error"]["path"] == "Item.id" and "record" not in error and "details" not in error
    assert "Zed-Secret" not in line


def test_files_roll_over_below_the_limit_and_hold_every_resource_once(export: Path, tmp_path: Path) -> None:
    manifest = run_backfill(export, tmp_path / "out", max_file_bytes=4096)
    files = sorted((tmp_path / "out" / "data").glob("*.ndjson"))
    assert len(files) > 8
    for path in files:
        lines = path.read_bytes().splitlines(keepends=True)
        assert path.stat().st_size <= 4096 or len(lines) == 1
    assert {entry["url"] for entry in manifest["output"]} == {f"data/{path.name}" for path in files}
    for entry in manifest["output"]:
        assert entry["count"] == len((tmp_path / "out" / entry["url"]).read_bytes().splitlines())
        assert entry["bytes"] == (tmp_path / "out" / entry["url"]).stat().st_size
    assert len(resources(tmp_path / "out")) == 121


def test_two_workers_write_what_one_writes(export: Path, tmp_path: Path) -> None:
    one = run_backfill(export, tmp_path / "one", workers=1)
    two = run_backfill(export, tmp_path / "two", workers=2)
    assert output_files(tmp_path / "one") == output_files(tmp_path / "two")
    assert one["counts"] == two["counts"] and one["output"] == two["output"]


def test_a_rerun_skips_finished_partitions_and_refuses_another_backfills_state(
    export: Path, tmp_path: Path
) -> None:
    first = run_backfill(export, tmp_path / "out")
    marker = tmp_path / "out" / "state" / "partition-00000.json"
    stamp = marker.stat().st_mtime_ns
    assert run_backfill(export, tmp_path / "out") == first
    assert marker.stat().st_mtime_ns == stamp  # not done again
    from fhirpipes.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"belongs to another backfill .*maxFileBytes"):
        run_backfill(export, tmp_path / "out", max_file_bytes=9999)


def test_single_table_designs_map_by_match_and_skip_what_no_pipe_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fhirpipes import hookimpl
    from fhirpipes.backfill import work
    from fhirpipes.dispatch import Dispatcher
    from fhirpipes.mapper import KeyPrefix
    from fhirpipes.plugins import load_registry
    from fhirpipes.testing.stream import attribute_values
    from fhirpipes_patient import PATIENT
    from fhirpipes_practitioner import PRACTITIONER

    patients = dataclasses.replace(PATIENT, table="Clinic", match=KeyPrefix(attribute="id", prefix="PAT-"))
    doctors = dataclasses.replace(
        PRACTITIONER, table="Clinic", match=KeyPrefix(attribute="id", prefix="DOC-")
    )

    @hookimpl
    def register_mappers(register: Any) -> None:
        register(patients)
        register(doctors)

    import types

    registry = load_registry(modules={"clinic": types.SimpleNamespace(register_mappers=register_mappers)})
    filters = work.PipeFilters([mapper.pipe_filters() for mapper in registry.mappers])
    assert not filters.pass_all
    monkeypatch.setattr(work, "_mapping", lambda job: (Dispatcher(registry), filters))
    items = [
        attribute_values({"id": "PAT-1", "firstName": "A", "lastName": "B"}),
        attribute_values({"id": "DOC-1", "npi": "1234567893", "firstName": "C", "lastName": "D"}),
        attribute_values({"id": "APPT-1", "when": "tomorrow"}),
    ]
    export = write_export(tmp_path / "bucket", items, table="Clinic", files=1)
    manifest = run_backfill(export, tmp_path / "out")
    assert manifest["counts"] == {
        "read": 3,
        "written": 2,
        "skipped": 1,
        "errors": 0,
        "byType": {"Patient": 1, "Practitioner": 1},
    }


def test_the_plan_says_when_the_pipe_must_start(export: Path, tmp_path: Path) -> None:
    result = _cli("backfill", str(export), "--keys", "id", "--out", str(tmp_path / "out"), "--plan")
    assert result.returncode == 0, result.stderr
    assert "2026-12-02T00:00:00.000Z" in result.stdout and "TRIM_HORIZON" in result.stdout
    assert not (tmp_path / "out" / "data").exists()


def test_the_cli_exits_3_when_some_items_are_error_lines(export: Path, tmp_path: Path) -> None:
    result = _cli("backfill", str(export), "--keys", "id", "--out", str(tmp_path / "out"), "--workers", "1")
    assert result.returncode == 3, result.stderr
    assert "123 items read: 121 written, 0 skipped, 2 errors" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "give SOURCE (an export) or --table NAME"),
        (
            ["EXPORT", "--out", "o", "--target", "fhir:http://127.0.0.1:1/fhir"],
            "give one of --out DIR or --target",
        ),
        (["EXPORT", "--keys", "a,b,c", "--out", "o"], "--keys takes the partition key"),
        (["EXPORT", "--out", "o", "--start-import"], "--start-import needs --datastore-id"),
        (["EXPORT", "--out", "o", "--datastore-id", "x"], "are for --start-import"),
        (["EXPORT", "--target", "fhir:http://127.0.0.1:1/fhir"], "with --target, give --state DIR"),
    ],
)
def test_bad_arguments_get_one_error_line(
    export: Path, tmp_path: Path, arguments: list[str], message: str
) -> None:
    arguments = [str(export) if part == "EXPORT" else part for part in arguments]
    result = _cli("backfill", *arguments, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_markers", [0, 1, 3])
def test_a_rerun_after_sigkill_continues_and_writes_nothing_twice(
    tmp_path: Path, kill_after_markers: int
) -> None:
    items = patient_items(2000)
    export = write_export(tmp_path / "bucket", items, files=5)
    reference = tmp_path / "reference"
    run_backfill(export, reference)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "fhirpipes",
        "backfill",
        str(export),
        "--keys",
        "id",
        "--out",
        str(out),
        "--workers",
        "1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "state"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(state.glob("partition-*.json"))) >= kill_after_markers and (
            kill_after_markers or (state / ".tmp").exists()
        ):
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, (
        "the backfill ended before the kill: the test tested nothing"
    )
    assert len(list(state.glob("partition-*.json"))) < 5
    rerun = subprocess.run(command, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert output_files(out) == output_files(reference)
    assert len(resources(out)) == 2000


def _cli(*arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "fhirpipes", *arguments],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=environ,
    )


@pytest.mark.slow
def test_into_a_fhir_server_the_guard_keeps_what_the_stream_wrote(tmp_path: Path) -> None:
    import urllib.request

    from medplum import medplum

    from fhirpipes.handler import handler
    from fhirpipes.sink import Sink, SinkSettings

    items = patient_items(40)
    export = write_export(tmp_path / "bucket", items, files=2)
    changed = {**decode_image(items[0]), "lastName": "Changed-After-The-Export"}
    with medplum() as url:
        # The live Pipe wrote a change of item 0 (made after the export) before the backfill got to it.
        stream_events = handler([make_record("Patients", changed, sequence_number="900")], None)
        sink = Sink(SinkSettings(url))
        assert sink.deliver(stream_events) == {"batchItemFailures": []}
        sink.client.close()
        target = ["--target", f"fhir:{url}", "--keys", "id", "--workers", "1"]
        first = _cli("backfill", str(export), *target, "--state", str(tmp_path / "s1"), "--json")
        assert first.returncode == 0, first.stderr
        counts = json.loads(first.stdout)["counts"]
        assert (counts["read"], counts["written"], counts["skipped"], counts["errors"]) == (40, 39, 1, 0)
        resource_id = stream_events[0]["details"]["entity"]["id"]
        with urllib.request.urlopen(f"{url}/Patient/{resource_id}") as answer:
            kept = json.load(answer)
        assert kept["name"][0]["family"] == "Changed-After-The-Export"
        # The same backfill again (a fresh state): every state is already there, nothing is written.
        again = _cli("backfill", str(export), *target, "--state", str(tmp_path / "s2"), "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["counts"]["skipped"] == 40


def test_a_rerun_of_a_scan_keeps_the_first_runs_time_and_a_damaged_state_is_refused(tmp_path: Path) -> None:
    from fhirpipes.backfill.folder import Folder
    from fhirpipes.backfill.job import Job, Snapshot
    from fhirpipes.backfill.state import State
    from fhirpipes.errors import ConfigurationError

    def scan_job(time: str) -> Job:
        arn = "arn:aws:dynamodb:us-east-1:123456789012:table/Patients"
        snapshot = Snapshot(kind="scan", table="Patients", table_arn=arn, source_arn=f"{arn}/scan", time=time)
        return Job(
            SourceSpec(kind="scan", table="Patients", segments=4), snapshot, ("id",), str(tmp_path), out="o"
        )

    state = State(Folder(str(tmp_path)))
    first = state.begin(scan_job("2026-12-01T00:00:00.000Z"))
    # A scan read later than the first run's start: the first run's (older) time stays the lineage.
    assert state.begin(scan_job("2026-12-01T05:00:00.000Z")).snapshot == first.snapshot
    with pytest.raises(ConfigurationError, match=r"belongs to another backfill .*source"):
        state.begin(
            dataclasses.replace(
                scan_job("2026-12-01T05:00:00.000Z"),
                source=SourceSpec(kind="scan", table="Patients", segments=8),
            )
        )
    (tmp_path / "job.json").write_text('{"snapshot": 7}')
    with pytest.raises(ConfigurationError, match="is not a backfill's state"):
        state.begin(scan_job("2026-12-01T05:00:00.000Z"))


def test_a_missing_error_part_fails_the_manifest_rather_than_lose_its_lines(
    export: Path, tmp_path: Path
) -> None:
    from fhirpipes.errors import ConfigurationError

    run_backfill(export, tmp_path / "out")
    (part,) = (tmp_path / "out" / "state").glob("errors-*.ndjson")
    part.unlink()
    with pytest.raises(
        ConfigurationError, match=r"errors-\d+\.ndjson is gone: remove .*partition-\d+\.json and rerun"
    ):
        run_backfill(export, tmp_path / "out")
    # As the message says: remove the partition's marker, and the rerun writes its part again.
    for marker in (tmp_path / "out" / "state").glob("partition-*.json"):
        if json.loads(marker.read_text())["error_file"] is not None:
            marker.unlink()
    assert run_backfill(export, tmp_path / "out")["counts"]["errors"] == 2
    assert len((tmp_path / "out" / "errors.ndjson").read_text().splitlines()) == 2
