"""Where a backfill's items come from: exports (local, S3, moto's own) and the parallel Scan."""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from backfill_export import every_type_item, patient_items, upload_export, write_export

from fhirpipes.attributes import decode_image
from fhirpipes.backfill.job import Partition, SourceSpec
from fhirpipes.backfill.sources import BadLine, SourceError, describe, key_names, read_items, start_export
from fhirpipes.pipes.aws import AwsConfig

EXPORT_ID = "01764547200000-1a2b3c4d"
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Patients"
# A value that must never show in a message (stands for PHI).
SECRET = "Zebediah-Quux-1234"


def export_spec(location: Path | str, **fields: Any) -> SourceSpec:
    return SourceSpec(kind="export", location=str(location), **fields)


def read_all(spec: SourceSpec, partitions: list[Partition]) -> list[tuple[str, int, Any]]:
    return [
        (partition.name, line, item) for partition in partitions for line, item in read_items(spec, partition)
    ]


def item_ids(read: list[tuple[str, int, Any]]) -> list[str]:
    return [item["id"]["S"] for _, _, item in read if not isinstance(item, BadLine)]


# -- the fixture itself -----------------------------------------------------------------------------


def test_write_export_lays_out_what_aws_writes(tmp_path: Path) -> None:
    items = patient_items(2)
    folder = write_export(tmp_path, items, files=3)
    assert folder == tmp_path / "exports" / "AWSDynamoDB" / EXPORT_ID
    names = sorted(path.name for path in folder.iterdir())
    assert names == [
        "_started",
        "data",
        "manifest-files.checksum",
        "manifest-files.json",
        "manifest-summary.checksum",
        "manifest-summary.json",
    ]
    for name in ("manifest-files", "manifest-summary"):
        content = (folder / f"{name}.json").read_bytes()
        assert (folder / f"{name}.checksum").read_text() == hashlib.md5(content).hexdigest()
    entries = [json.loads(line) for line in (folder / "manifest-files.json").read_text().splitlines()]
    assert [entry["itemCount"] for entry in entries] == [1, 1, 0]  # an empty partition's file too
    for entry in entries:
        assert entry["dataFileS3Key"].startswith(f"exports/AWSDynamoDB/{EXPORT_ID}/data/")
        content = (tmp_path / entry["dataFileS3Key"]).read_bytes()
        assert entry["etag"] == hashlib.md5(content).hexdigest()
    summary = json.loads((folder / "manifest-summary.json").read_text())
    assert summary["itemCount"] == 2 and summary["outputFormat"] == "DYNAMODB_JSON"
    assert summary["exportArn"] == f"{TABLE_ARN}/export/{EXPORT_ID}"


def test_patient_items_are_distinct_deterministic_and_map_cleanly() -> None:
    from fhirpipes.dispatch import Dispatcher
    from fhirpipes.plugins import load_registry
    from fhirpipes.settings import Settings
    from fhirpipes.testing.stream import make_batch

    items = patient_items(60, seed=3)
    assert items == patient_items(60, seed=3) and items != patient_items(60, seed=4)
    assert len({item["id"]["S"] for item in items}) == 60
    assert {len(item) for item in items} != {2}  # lean and rich
    plain = [decode_image(item) for item in [*items, every_type_item()]]
    events = Dispatcher(load_registry(only=["patient"]), Settings()).map_batch(make_batch("Patients", plain))
    assert [event["details"]["command"] for event in events] == ["PUT"] * 61


# -- local exports -----------------------------------------------------------------------------------


def test_an_export_is_described_from_its_manifests_in_their_order(tmp_path: Path) -> None:
    items = patient_items(10)
    folder = write_export(tmp_path, items, files=4, export_time="2026-12-01T01:02:03Z")
    snapshot, partitions = describe(export_spec(folder))
    assert snapshot.kind == "export" and snapshot.table == "Patients"
    assert snapshot.table_arn == TABLE_ARN
    assert snapshot.source_arn == f"{TABLE_ARN}/export/{EXPORT_ID}"
    assert snapshot.time == "2026-12-01T01:02:03.000Z"  # normalised to milliseconds
    assert snapshot.export_id == EXPORT_ID and snapshot.item_count == 10
    manifest = [json.loads(line) for line in (folder / "manifest-files.json").read_text().splitlines()]
    names = [f"data/{entry['dataFileS3Key'].rsplit('/', 1)[-1]}" for entry in manifest]
    assert [partition.name for partition in partitions] == names
    assert names != sorted(names)  # so the manifest's order, not the names', is what was used
    assert [partition.index for partition in partitions] == [0, 1, 2, 3]
    assert [partition.item_count for partition in partitions] == [3, 3, 2, 2]
    for partition in partitions:
        assert partition.location == str(folder / partition.name)
        assert len(list(read_items(export_spec(folder), partition))) == partition.item_count
    assert sorted(item_ids(read_all(export_spec(folder), partitions))) == sorted(i["id"]["S"] for i in items)


@pytest.mark.parametrize("form", ["folder", "folder/", "containing", "containing/", "AWSDynamoDB"])
def test_the_export_folder_is_found_from_each_form(tmp_path: Path, form: str) -> None:
    folder = write_export(tmp_path, patient_items(3))
    location = str(
        {"folder": folder, "containing": tmp_path / "exports", "AWSDynamoDB": folder.parent}[form.rstrip("/")]
    )
    snapshot, partitions = describe(export_spec(location + ("/" if form.endswith("/") else "")))
    assert snapshot.export_id == EXPORT_ID and len(partitions) == 3


def test_a_folder_of_two_exports_or_of_none_is_refused(tmp_path: Path) -> None:
    write_export(tmp_path, patient_items(3))
    write_export(tmp_path, patient_items(3), export_id="01764547300000-5e6f7a8b")
    with pytest.raises(SourceError, match="holds 2 exports"):
        describe(export_spec(tmp_path / "exports"))
    with pytest.raises(SourceError, match="no DynamoDB export there"):
        describe(export_spec(tmp_path))
    with pytest.raises(SourceError, match="no DynamoDB export there"):
        describe(export_spec(tmp_path / "missing"))


def test_every_attribute_value_type_reads_and_decodes(tmp_path: Path) -> None:
    folder = write_export(tmp_path, [every_type_item()], files=1)
    _, partitions = describe(export_spec(folder))
    [(_, line, item)] = read_all(export_spec(folder), partitions)
    assert line == 1 and item == every_type_item()
    decoded = decode_image(item)
    assert decoded["xNumber"] == Decimal("12.50")
    assert decoded["xBinary"] == b"\x00\x01\xfe\xff"
    assert decoded["xBool"] is True and decoded["xNull"] is None
    assert decoded["xMap"] == {"inner": "value", "depth": {"n": 1}}
    assert decoded["xList"] == ["a", 1, False, None, b"\x02"]
    assert decoded["xStringSet"] == {"a", "b"}
    assert decoded["xNumberSet"] == {1, Decimal("2.5")}
    assert decoded["xBinarySet"] == {b"\x00", b"\x01"}


def test_lines_that_are_not_items_are_bad_lines_that_quote_nothing(tmp_path: Path) -> None:
    poison = [
        f"{{not json {SECRET}",
        f'["{SECRET}"]',
        f'{{"Item": "{SECRET}"}}',
        "",
        f'{{"Keys": {{"id": {{"S": "{SECRET}"}}}}}}',
        "\u00ff\u00fe garbage",
    ]
    folder = write_export(tmp_path, patient_items(2), files=1, poison=poison)
    _, [partition] = describe(export_spec(folder))
    read = list(read_items(export_spec(folder), partition))
    # Physical line numbers: the empty line (5) is skipped but counted.
    assert [line for line, _ in read] == [1, 2, 3, 4, 6, 7, 8]
    bad = [item for _, item in read if isinstance(item, BadLine)]
    assert [b.reason for b in bad] == [
        "not JSON",
        "not a JSON object",
        'no "Item" object',
        'no "Item" object',
        "not JSON",
    ]
    assert not any(SECRET in b.reason or "garbage" in b.reason for b in bad)
    assert [item["id"]["S"] for _, item in read if not isinstance(item, BadLine)] == [
        "p-0-000000",
        "p-0-000001",
    ]


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "not gzip"])
def test_a_damaged_gzip_is_a_source_error_naming_the_file_only(tmp_path: Path, damage: str) -> None:
    items = [{"id": {"S": f"p-{n}"}, "lastName": {"S": SECRET}} for n in range(200)]
    folder = write_export(tmp_path, items, files=1)
    _, [partition] = describe(export_spec(folder))
    path = Path(partition.location)
    content = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "corrupt":
        middle = len(content) // 2
        path.write_bytes(
            content[:middle] + bytes(b ^ 0xFF for b in content[middle : middle + 64]) + content[middle + 64 :]
        )
    else:
        path.write_bytes(f'{{"Item": {{"id": {{"S": "{SECRET}"}}}}}}\n'.encode())
    with pytest.raises(SourceError) as raised:
        list(read_items(export_spec(folder), partition))
    message = str(raised.value)
    assert partition.name in message and "gzip" in message
    assert SECRET not in message and "p-1" not in message


def test_an_empty_data_file_reads_as_no_items(tmp_path: Path) -> None:
    folder = write_export(tmp_path, patient_items(1), files=2)
    _, partitions = describe(export_spec(folder))
    Path(partitions[1].location).write_bytes(b"")  # zero bytes, not even a gzip header
    assert list(read_items(export_spec(folder), partitions[1])) == []


def test_without_manifests_the_data_files_are_listed(tmp_path: Path) -> None:
    items = patient_items(7)
    folder = write_export(tmp_path, items, files=3, manifests=False)
    with pytest.raises(SourceError, match=r"no manifest-summary\.json.*--table"):
        describe(export_spec(folder))
    stamp = datetime.datetime(2026, 11, 30, 12, 0, 0, 250000, tzinfo=datetime.UTC).timestamp()
    for n, path in enumerate(sorted((folder / "data").iterdir())):
        os.utime(path, (stamp - n * 60, stamp - n * 60))
    spec = export_spec(folder, table=TABLE_ARN)
    snapshot, partitions = describe(spec)
    assert snapshot.table == "Patients" and snapshot.table_arn == TABLE_ARN
    assert snapshot.source_arn == f"{TABLE_ARN}/export/{EXPORT_ID}"
    assert snapshot.time == "2026-11-30T12:00:00.250Z"  # the newest data file's
    assert snapshot.item_count is None
    names = [partition.name for partition in partitions]
    assert names == sorted(names) and all(partition.item_count is None for partition in partitions)
    assert sorted(item_ids(read_all(spec, partitions))) == sorted(item["id"]["S"] for item in items)


def rewrite_summary(folder: Path, **changes: Any) -> None:
    path = folder / "manifest-summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_an_ion_or_incremental_export_or_another_tables_is_refused(tmp_path: Path) -> None:
    folder = write_export(tmp_path, patient_items(1))
    with pytest.raises(SourceError, match="of table 'Patients', not 'Practitioners'"):
        describe(export_spec(folder, table="Practitioners"))
    assert describe(export_spec(folder, table="Patients"))[0].table == "Patients"
    rewrite_summary(folder, outputFormat="ION")
    with pytest.raises(SourceError, match="format is ION; only DYNAMODB_JSON"):
        describe(export_spec(folder))
    rewrite_summary(folder, outputFormat="DYNAMODB_JSON", exportType="INCREMENTAL_EXPORT")
    with pytest.raises(SourceError, match="incremental export holds changes"):
        describe(export_spec(folder))
    rewrite_summary(folder, exportType="FULL_EXPORT", exportTime="yesterday")
    with pytest.raises(SourceError, match="exportTime: not an ISO 8601 time"):
        describe(export_spec(folder))


def test_given_keys_are_checked() -> None:
    spec, snapshot = SourceSpec(kind="scan", table="Patients"), None
    assert key_names(spec, snapshot, ["id"]) == ("id",)  # type: ignore[arg-type]
    assert key_names(spec, snapshot, ("pk", "sk")) == ("pk", "sk")  # type: ignore[arg-type]
    assert key_names(spec, snapshot, "id") == ("id",)  # type: ignore[arg-type]
    for bad in ([], ["a", "b", "c"], [""], ["id", " "]):
        with pytest.raises(SourceError, match="one or two non-empty"):
            key_names(spec, snapshot, bad)  # type: ignore[arg-type]


def test_keys_without_aws_say_to_pass_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    folder = write_export(tmp_path, patient_items(1))
    spec = export_spec(folder)
    snapshot, _ = describe(spec)
    with pytest.raises(SourceError, match=r"can't describe table 'Patients'.*--keys"):
        key_names(spec, snapshot, None)


def test_scan_segments_are_checked_before_any_call() -> None:
    for segments in (0, 1_000_001):
        with pytest.raises(SourceError, match="segments: from 1 to 1,000,000"):
            describe(SourceSpec(kind="scan", table="Patients", segments=segments))
    with pytest.raises(SourceError, match="needs the table"):
        describe(SourceSpec(kind="scan"))


def test_gzip_written_by_aws_style_tools_is_multi_member_safe(tmp_path: Path) -> None:
    # Some writers append gzip members; the reader must go on through all of them.
    folder = write_export(tmp_path, patient_items(2), files=1)
    _, [partition] = describe(export_spec(folder))
    path = Path(partition.location)
    extra = json.dumps({"Item": patient_items(3)[2]}) + "\n"
    path.write_bytes(path.read_bytes() + gzip.compress(extra.encode()))
    assert item_ids(read_all(export_spec(folder), [partition])) == ["p-0-000000", "p-0-000001", "p-0-000002"]


# -- against the embedded AWS (moto's server: DynamoDB and S3) ----------------------------------------


@pytest.fixture(scope="module")
def aws() -> Iterator[AwsConfig]:
    from fhirpipes.pipes.embedded import EmbeddedAws

    with EmbeddedAws() as server:
        yield server.config


def create_table(aws: AwsConfig, name: str, keys: tuple[str, ...] = ("id",), pitr: bool = False) -> str:
    client = aws.client("dynamodb")
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": key, "KeyType": kind}
            for key, kind in zip(keys, ("HASH", "RANGE"), strict=False)
        ],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key in keys],
        BillingMode="PAY_PER_REQUEST",
    )
    if pitr:
        client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    return str(client.describe_table(TableName=name)["Table"]["TableArn"])


def seed(aws: AwsConfig, table: str, items: list[dict[str, Any]]) -> None:
    """Put AttributeValue items, 25 a request (BatchWriteItem's limit); botocore wants bytes for B/BS."""
    client = aws.client("dynamodb")
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": as_botocore(item)}} for item in items[start : start + 25]]
        client.batch_write_item(RequestItems={table: requests})


def as_botocore(item: dict[str, Any]) -> dict[str, Any]:
    def value(v: dict[str, Any]) -> dict[str, Any]:
        if "B" in v:
            return {"B": base64.b64decode(v["B"])}
        if "BS" in v:
            return {"BS": [base64.b64decode(b) for b in v["BS"]]}
        if "M" in v:
            return {"M": as_botocore(v["M"])}
        if "L" in v:
            return {"L": [value(member) for member in v["L"]]}
        return v

    return {name: value(v) for name, v in item.items()}


@pytest.mark.slow
def test_an_export_in_s3_reads_as_the_local_one(aws: AwsConfig, tmp_path: Path) -> None:
    items = [*patient_items(20), every_type_item()]
    folder = write_export(tmp_path, items, files=3, poison=["{bad"])
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="fhirpipes-exports")
    upload_export(s3, "fhirpipes-exports", folder, tmp_path)
    local_snapshot, local_partitions = describe(export_spec(folder))
    local = [
        (p.name, line, item) for p in local_partitions for line, item in read_items(export_spec(folder), p)
    ]
    base = f"s3://fhirpipes-exports/exports/AWSDynamoDB/{EXPORT_ID}"
    for location in (base, base + "/", "s3://fhirpipes-exports/exports", "s3://fhirpipes-exports/exports/"):
        spec = export_spec(location, aws=aws)
        snapshot, partitions = describe(spec)
        assert snapshot == local_snapshot
        assert [p.name for p in partitions] == [p.name for p in local_partitions]
        assert [p.location for p in partitions] == [f"{base}/{p.name}" for p in partitions]
    assert read_all(spec, partitions) == local
    with pytest.raises(SourceError, match="no DynamoDB export there"):
        describe(export_spec("s3://fhirpipes-exports/elsewhere", aws=aws))
    missing = Partition(index=9, name="data/missing.json.gz", location=f"{base}/data/missing.json.gz")
    with pytest.raises(SourceError, match=r"missing\.json\.gz: can't read it \(NoSuchKey\)"):
        list(read_items(export_spec(base, aws=aws), missing))


def read_partition(spec: SourceSpec, partition: Partition) -> list[str]:
    """A pool worker's share: only the spec and the partition travel (pickled)."""
    return [item["id"]["S"] for _, item in read_items(spec, partition)]


@pytest.mark.slow
def test_workers_reopen_an_s3_export_from_the_spec_alone(aws: AwsConfig, tmp_path: Path) -> None:
    import concurrent.futures
    import multiprocessing

    items = patient_items(40, seed=5)
    folder = write_export(tmp_path, items, files=4, prefix="pooled")
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="pooled-exports")
    upload_export(s3, "pooled-exports", folder, tmp_path)
    spec = export_spec("s3://pooled-exports/pooled", aws=aws)
    _, partitions = describe(spec)  # this process's clients exist now; forked workers must not share them
    for context in ("fork", "spawn"):
        with concurrent.futures.ProcessPoolExecutor(
            2, mp_context=multiprocessing.get_context(context)
        ) as pool:
            shares = list(pool.map(read_partition, [spec] * len(partitions), partitions))
        assert shares == [read_partition(spec, partition) for partition in partitions]
        assert sorted(i for share in shares for i in share) == sorted(item["id"]["S"] for item in items)


@pytest.mark.slow
def test_motos_own_export_is_started_described_and_read(aws: AwsConfig) -> None:
    items = [*patient_items(30, seed=7), every_type_item()]
    table_arn = create_table(aws, "ExportedPatients", pitr=True)
    seed(aws, "ExportedPatients", items)
    aws.client("s3").create_bucket(Bucket="moto-exports")
    folder = start_export(SourceSpec(kind="export", aws=aws), "ExportedPatients", "s3://moto-exports")
    assert folder.startswith("s3://moto-exports/fhirpipes-backfill/AWSDynamoDB/") and folder.endswith("/")
    spec = export_spec(folder, table="ExportedPatients", aws=aws)
    snapshot, partitions = describe(spec)
    export_id = folder.rstrip("/").rsplit("/", 1)[-1]
    assert snapshot.table_arn == table_arn and snapshot.export_id == export_id
    assert snapshot.source_arn == f"{table_arn}/export/{export_id}"
    assert snapshot.time.endswith("Z") and len(snapshot.time) == len("2026-12-01T00:00:00.000Z")
    read = read_all(spec, partitions)
    assert sorted(item_ids(read)) == sorted(item["id"]["S"] for item in items)
    [every] = [item for _, _, item in read if item["id"]["S"] == "p-every-type"]
    assert decode_image(every) == decode_image(every_type_item())


@pytest.mark.slow
def test_an_export_needs_point_in_time_recovery(aws: AwsConfig) -> None:
    create_table(aws, "NoRecovery")
    aws.client("s3").create_bucket(Bucket="no-recovery")
    with pytest.raises(SourceError, match=r"no point-in-time recovery.*or read the table with a scan"):
        start_export(SourceSpec(kind="export", aws=aws), "NoRecovery", "s3://no-recovery/some/prefix")


@pytest.mark.slow
def test_a_parallel_scan_reads_every_item_exactly_once(aws: AwsConfig) -> None:
    items = [*patient_items(600, seed=11), every_type_item()]
    table_arn = create_table(aws, "ScannedPatients")
    seed(aws, "ScannedPatients", items)
    spec = SourceSpec(kind="scan", table="ScannedPatients", segments=4, aws=aws)
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    snapshot, partitions = describe(spec)
    assert snapshot.kind == "scan" and snapshot.table_arn == table_arn
    assert snapshot.source_arn == f"{table_arn}/scan"
    assert datetime.datetime.fromisoformat(snapshot.time) >= before
    assert [(p.index, p.name, p.location) for p in partitions] == [
        (n, f"segment-{n:04d}", str(n)) for n in range(4)
    ]
    per_segment = [[item for _, item in read_items(spec, partition)] for partition in partitions]
    assert all(segment for segment in per_segment)  # the items are spread, not all in one
    ids = [item["id"]["S"] for segment in per_segment for item in segment]
    assert len(ids) == len(set(ids)) == len(items)
    assert set(ids) == {item["id"]["S"] for item in items}
    lines = [line for line, _ in read_items(spec, partitions[0])]
    assert lines == list(range(1, len(per_segment[0]) + 1))
    # Binaries come back as the base64 text an export (and a stream record) holds.
    [every] = [item for segment in per_segment for item in segment if item["id"]["S"] == "p-every-type"]
    assert every == every_type_item()


@pytest.mark.slow
def test_key_names_come_from_describe_table(aws: AwsConfig) -> None:
    create_table(aws, "HashOnly", ("pk",))
    create_table(aws, "HashAndRange", ("tenant", "patient"))
    for table, keys in (("HashOnly", ("pk",)), ("HashAndRange", ("tenant", "patient"))):
        spec = SourceSpec(kind="scan", table=table, aws=aws)
        snapshot, _ = describe(spec)
        assert key_names(spec, snapshot, None) == keys
        assert key_names(spec, snapshot, ["given"]) == ("given",)
    spec = SourceSpec(kind="scan", table="NoSuchTable", aws=aws)
    with pytest.raises(
        SourceError, match="can't describe table 'NoSuchTable' \\(ResourceNotFoundException\\)"
    ):
        describe(spec)
    folder_snapshot = describe(SourceSpec(kind="scan", table="HashOnly", aws=aws))[0]
    missing = type(folder_snapshot)(**{**folder_snapshot.__dict__, "table": "NoSuchTable"})
    with pytest.raises(SourceError, match=r"NoSuchTable.*give them with --keys"):
        key_names(spec, missing, None)
