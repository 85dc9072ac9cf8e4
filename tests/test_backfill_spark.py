"""The Spark engine and the Glue job script: the same files as the local engine, byte for byte, from
one local Spark session (loopback only); the Glue argument parser; spark-submit of the script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backfill_export import patient_items, upload_export, write_export

from fhirpipes.backfill import glue, spark
from fhirpipes.backfill.job import Partition, SourceSpec
from fhirpipes.backfill.run import execute, prepare
from fhirpipes.errors import ConfigurationError, FhirpipesError

PHI = "Zebediah-0155-PHI"
"""A value planted where an error could quote it: it must never show."""


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the state folder (its markers name the engine's run), by name."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).parts[0] != "state"
    }


def run(export: Path, out: Path, engine: str, **options: Any) -> dict[str, Any]:
    job, partitions = prepare(SourceSpec(kind="export", location=str(export)), keys=("id",), out=str(out))
    return execute(job, partitions, engine=engine, **options)


@pytest.fixture(scope="module")
def local(export: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The local engine's manifest and files: what every Spark run must give."""
    out = tmp_path_factory.mktemp("local")
    manifest = run(export, out, "local", workers=2)
    return manifest, tree(out)


@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    before = signal.getsignal(signal.SIGINT)
    started = spark.session("local[2]")
    yield started
    spark.stop(started)
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C is Python's again


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bucket")
    # 5 files for 2 cores: more partitions than task slots; the poison line is an error line.
    return write_export(root, patient_items(150), files=5, poison=["not json at all"])


# --- the local session ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_local_session_listens_on_loopback_only_without_ui_on_java_17(session: Any) -> None:
    context = session.sparkContext
    conf = dict(context.getConf().getAll())
    assert conf["spark.master"] == "local[2]"
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.ui.enabled"] == "false"
    assert context.pythonExec == sys.executable  # the workers import fhirpipes from this venv
    assert context._jvm.java.lang.System.getProperty("java.specification.version") == "17"
    # Spark 3.5 adds Java 17's --add-opens itself, beside our logging configuration.
    options = conf["spark.driver.extraJavaOptions"]
    assert "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED" in options
    assert "log4j2.configurationFile=file:" in options
    assert "SPARK_LOCAL_IP" not in os.environ  # set for the JVM's start only
    pid = context._jvm.java.lang.ProcessHandle.current().pid()
    listening = listening_addresses(pid)
    assert listening, "the JVM listens nowhere? (the test can't see its sockets)"
    assert all(address in LOOPBACK for address in listening), listening


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
"""127.0.0.1, ::ffff:127.0.0.1 and ::1 as /proc/net/tcp{,6} write them."""


def listening_addresses(pid: int) -> set[str]:
    """The local addresses of the TCP sockets process ``pid`` listens on (Linux /proc)."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc")
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(fields[1].split(":")[0])
    return found


# --- the engine -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_spark_writes_what_the_local_engine_writes_byte_for_byte(
    session: Any, export: Path, local: tuple[dict[str, Any], dict[str, bytes]], tmp_path: Path
) -> None:
    manifest, files = local
    # engine="spark" through the orchestrator: it runs on the active session (and leaves it running)
    on_spark = run(export, tmp_path / "spark", "spark")
    assert on_spark["counts"] == manifest["counts"]
    assert on_spark["counts"] == {
        "read": 151,
        "written": 150,
        "skipped": 0,
        "errors": 1,
        "byType": {"Patient": 150},
    }
    assert len([name for name in files if name.startswith("data/")]) == 5
    assert tree(tmp_path / "spark") == files  # manifest.json and errors.ndjson included
    assert not session.sparkContext._jsc.sc().isStopped()


@pytest.mark.slow
def test_executors_read_and_write_s3_from_the_job_alone(
    session: Any, export: Path, local: tuple[dict[str, Any], dict[str, bytes]]
) -> None:
    """As on Glue: the export and the output in S3, each executor building its clients from the job."""
    from fhirpipes.pipes.aws import AwsConfig
    from fhirpipes.pipes.embedded import EmbeddedAws

    manifest, files = local
    with EmbeddedAws() as server:
        aws = AwsConfig.embedded(server.endpoint_url)
        s3 = aws.client("s3")
        s3.create_bucket(Bucket="exports")
        s3.create_bucket(Bucket="fhir")
        root = export.parents[2]  # <root>/exports/AWSDynamoDB/<id>
        upload_export(s3, "exports", export, root)
        source = SourceSpec(
            kind="export", location=f"s3://exports/{export.relative_to(root).as_posix()}/", aws=aws
        )
        job, partitions = prepare(source, keys=("id",), out="s3://fhir/patients")
        on_spark = execute(job, partitions, engine="spark")
        listed = s3.list_objects_v2(Bucket="fhir", Prefix="patients/")["Contents"]
        written = {
            entry["Key"][len("patients/") :]: s3.get_object(Bucket="fhir", Key=entry["Key"])["Body"].read()
            for entry in listed
            if not entry["Key"].startswith("patients/state/")
        }
    assert on_spark["counts"] == manifest["counts"]
    assert written == files


@pytest.mark.slow
def test_a_failed_partition_is_named_and_the_others_finish(
    session: Any, export: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "export"
    subprocess.run(["cp", "-r", str(export), str(broken)], check=True)
    victim = sorted((broken / "data").glob("*.json.gz"))[0]
    victim.write_bytes(b"\x1f\x8b\x08\x00" + PHI.encode() * 20)  # a gzip header, then garbage
    job, partitions = prepare(
        SourceSpec(kind="export", location=str(broken)), keys=("id",), out=str(tmp_path / "o")
    )
    results = []
    with pytest.raises(spark.SparkJobError) as caught:
        for result in spark.run_on_spark(job, partitions, spark=session):
            results.append(result)
    message = str(caught.value)
    failed = next(part for part in partitions if part.location.endswith(victim.name))
    assert f"1 of 5 partitions failed: partition {failed.index} (data/{victim.name}): SourceError" in message
    assert PHI not in message
    assert len(results) == 4  # the others finished: a rerun does only the broken one
    assert sorted(result.index for result in results) == sorted(
        p.index for p in partitions if p is not failed
    )


def test_no_partitions_start_no_spark() -> None:
    job: Any = None  # never looked at
    assert list(spark.run_on_spark(job, [], master="no-such-master://x")) == []


def test_an_unexpected_exception_is_sent_to_spark_without_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fhirpipes.backfill import work

    def explode(job: Any, partition: Partition) -> Any:
        raise ValueError(f"bad value {PHI}")

    monkeypatch.setattr(work, "run_partition", explode)
    with pytest.raises(RuntimeError) as caught:
        spark._run(None, Partition(2, "data/x.json.gz", "/x"))
    message = str(caught.value)
    assert message.startswith("partition 2 (data/x.json.gz): ValueError at ")
    assert "test_backfill_spark.py:" in message and "in explode" in message
    assert PHI not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    # ... and the driver finds that line in Spark's report of the failed job
    report = Exception(
        f"Job aborted\nTraceback (most recent call last):\n  ...\nRuntimeError: {message}\n\tat org"
    )
    assert spark._cause(report) == message
    assert spark._cause(Exception(f"anything else {PHI}")) == "Exception"


def test_a_fhirpipes_error_comes_back_as_a_failure_with_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from fhirpipes.backfill import work

    def refuse(job: Any, partition: Partition) -> Any:
        raise FhirpipesError("data/x.json.gz: not a gzip file")

    monkeypatch.setattr(work, "run_partition", refuse)
    failure = spark._run(None, Partition(2, "data/x.json.gz", "/x"))
    assert failure == spark._Failed(2, "data/x.json.gz", "FhirpipesError: data/x.json.gz: not a gzip file")


# --- the Glue job script ----------------------------------------------------------------------------

GLUE_ARGUMENTS = [
    # what Glue passes besides ours (its own, before and between)
    "--JOB_ID",
    "j_0123",
    "--job-bookmark-option",
    "job-bookmark-disable",
    "--JOB_RUN_ID",
    "jr_0123",
    "--TempDir",
    "s3://aws-glue-temporary/admin",
    "--enable-glue-datacatalog",
    "--JOB_NAME",
    "fhirpipes-backfill",
    "--SOURCE",
    "s3://exports/x/AWSDynamoDB/01764547200000-1a2b3c4d/",
    "--enable-metrics",
    "true",
    "--OUT=s3://fhir/patients/",
    "--KEYS",
    "id",
    "--additional-python-modules",
    "s3://wheels/fhirpipes-0.1.0-py3-none-any.whl",
]


def test_glue_arguments_are_taken_and_glues_own_ignored() -> None:
    assert glue.parse_arguments(GLUE_ARGUMENTS) == {
        "JOB_NAME": "fhirpipes-backfill",
        "SOURCE": "s3://exports/x/AWSDynamoDB/01764547200000-1a2b3c4d/",
        "OUT": "s3://fhir/patients/",
        "KEYS": "id",
    }
    # a run's argument overrides the job's default; a blank one is as good as absent
    again = glue.parse_arguments([*GLUE_ARGUMENTS, "--KEYS", "pk,sk", "--STATE", " "])
    assert again["KEYS"] == "pk,sk" and "STATE" not in again


def test_glue_arguments_become_the_backfills() -> None:
    options = glue.backfill_options(
        glue.parse_arguments([*GLUE_ARGUMENTS, "--MAX_FILE_BYTES", "4096", "--REGION", "eu-west-1"])
    )
    source = options.pop("source")
    assert source.kind == "export" and source.location.endswith("/01764547200000-1a2b3c4d/")
    assert source.aws.region == "eu-west-1"
    assert options == {
        "out": "s3://fhir/patients/",
        "target": None,
        "fhir_auth": None,
        "state": None,
        "errors": "events",
        "keys": ("id",),
        "max_file_bytes": 4096,
    }
    scan = glue.backfill_options(
        {"TABLE": "Patients", "SEGMENTS": "32", "TARGET": "fhir:https://f", "STATE": "s3://s/"}
    )
    assert (scan["source"].kind, scan["source"].table, scan["source"].segments) == ("scan", "Patients", 32)
    assert (
        glue.backfill_options({"TABLE": "Patients", "OUT": "o"})["source"].segments == glue.DEFAULT_SEGMENTS
    )


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"OUT": "s3://o/"}, "missing job argument --SOURCE"),
        ({"SOURCE": "s3://e/"}, "give one of the job arguments --OUT (a folder) or --TARGET"),
        ({"SOURCE": "s3://e/", "OUT": "o", "TARGET": "fhir:x"}, "give one of the job arguments --OUT"),
        ({"SOURCE": "s3://e/", "OUT": "o", "SEGMENTS": "4"}, "--SEGMENTS is for a Scan"),
        ({"TABLE": "T", "OUT": "o", "SEGMENTS": "four"}, "--SEGMENTS must be a whole number"),
        ({"TABLE": "T", "OUT": "o", "SEGMENTS": "0"}, "--SEGMENTS must be at least 1"),
        ({"SOURCE": "s3://e/", "OUT": "o", "ERRORS": "all"}, "--ERRORS must be events or locations"),
        ({"SOURCE": "s3://e/", "OUT": "o", "KEYS": "a,b,c"}, "--KEYS takes the partition key"),
    ],
)
def test_bad_glue_arguments_are_refused_clearly(arguments: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigurationError, match=None) as caught:
        glue.backfill_options(arguments)
    assert says in str(caught.value)


def test_a_glue_argument_without_its_value_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="job argument --OUT has no value"):
        glue.parse_arguments(["--SOURCE", "s3://e/", "--OUT"])


def test_the_glue_script_prints_the_error_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert glue.main(["--JOB_NAME", "x", "--OUT", "s3://o/"]) == 1
    assert "fhirpipes backfill: missing job argument --SOURCE" in capsys.readouterr().err


@pytest.mark.slow
def test_spark_submit_runs_the_glue_script_as_glue_would(
    export: Path, local: tuple[dict[str, Any], dict[str, bytes]], tmp_path: Path
) -> None:
    """The script itself, by path, under spark-submit: the master comes from spark-submit."""
    manifest, files = local
    environ = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    command = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        "local[1]",  # one Python worker: one start of fhirpipes (the test's cost)
        *("--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1"),
        *("--conf", "spark.ui.enabled=false", "--conf", "spark.ui.showConsoleProgress=false"),
        glue.__file__,
        *("--JOB_NAME", "test", "--job-bookmark-option", "job-bookmark-disable"),
        *("--SOURCE", str(export), "--OUT", str(tmp_path / "glue"), "--KEYS", "id"),
    ]
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["counts"] == manifest["counts"] and summary["complete"] is True
    assert tree(tmp_path / "glue") == files
