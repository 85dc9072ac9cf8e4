"""A DynamoDB export to S3 (``ExportFormat`` ``DYNAMODB_JSON``), in S3 or copied to a local folder.

The layout AWS writes under ``<prefix>/AWSDynamoDB/<export-id>/``: ``manifest-summary.json`` (the
export's ARN, time, table, item count, format), ``manifest-files.json`` (one JSON line per data
file: its key, relative to the bucket, and item count), and ``data/*.json.gz``, gzip files of
``{"Item": {...AttributeValues...}}`` lines, at least one per table partition (possibly empty).

moto (5.2) writes one ``data/<uuid>.gz`` and no manifests, in a folder whose name is not the
export ARN's last part: without manifests the data files are listed (sorted by name), the table
comes from the caller, and the time is the newest data file's; `start_export` finds the new
folder by listing.
"""

from __future__ import annotations

import datetime
import gzip
import time
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

from fhirpipes.backfill.job import Partition, Snapshot, SourceSpec
from fhirpipes.backfill.locations import Folder, S3Folder, folder, open_file, split_s3
from fhirpipes.backfill.sources import BadLine, SourceError, aws_client, error_code

EXPORTS = "AWSDynamoDB"
SUMMARY = "manifest-summary.json"
FILES = "manifest-files.json"
DATA = "data"
DEFAULT_PREFIX = "fhirpipes-backfill"
FORMAT = "DYNAMODB_JSON"
_GZIP_FAULTS = (EOFError, zlib.error, gzip.BadGzipFile)


def describe(spec: SourceSpec) -> tuple[Snapshot, list[Partition]]:
    """The export's snapshot and data files (see `fhirpipes.backfill.sources.describe`)."""
    if not spec.location:
        raise SourceError("an export source needs the export's folder")
    found = locate(folder(spec.aws, spec.location))
    summary = found.read(SUMMARY)
    partitions, newest = _partitions(found)
    if summary is not None:
        snapshot = _from_summary(spec, found, summary)
    else:
        snapshot = _without_summary(spec, found, newest)
    return snapshot, partitions


def locate(given: Folder) -> Folder:
    """The export folder: ``given`` itself, or the one export under ``given/AWSDynamoDB/`` (or under
    ``given`` when it is the ``AWSDynamoDB`` folder)."""
    folders, files = given.entries()
    if SUMMARY in files or DATA in folders:
        return given
    if EXPORTS in folders or given.name == EXPORTS:
        exports = given.child(EXPORTS) if EXPORTS in folders else given
        ids = exports.entries()[0]
        if len(ids) == 1:
            return locate_export(exports.child(ids[0]))
        raise SourceError(
            f"{exports.uri} holds {len(ids)} exports: give the one to read ({exports.uri}/<export-id>)"
        )
    raise SourceError(f"{given.uri}: no DynamoDB export there (no {SUMMARY}, no {DATA}/, no {EXPORTS}/)")


def locate_export(candidate: Folder) -> Folder:
    folders, files = candidate.entries()
    if SUMMARY in files or DATA in folders:
        return candidate
    raise SourceError(f"{candidate.uri}: not a DynamoDB export (no {SUMMARY}, no {DATA}/)")


def _partitions(found: Folder) -> tuple[list[Partition], datetime.datetime | None]:
    """The data files, in the manifest's order (else by name), and the newest one's time."""
    data = found.child(DATA)
    stamps = data.entries()[1]
    newest = max(stamps.values(), default=None)
    manifest = found.read(FILES)
    if manifest is not None:
        entries = list(_manifest_entries(found, manifest))
    else:
        entries = [(name, None) for name in sorted(stamps) if name.endswith(".gz")]
        if not entries:
            raise SourceError(f"{found.uri}: no {FILES} and no data files in {DATA}/")
    partitions = [
        Partition(index=index, name=f"{DATA}/{name}", location=data.location(name), item_count=count)
        for index, (name, count) in enumerate(entries)
    ]
    return partitions, newest


def _manifest_entries(found: Folder, manifest: bytes) -> Iterator[tuple[str, int | None]]:
    """``(file name, item count)`` per line of manifest-files.json.

    The key is relative to the bucket the export was written to; the file is looked for in this
    folder's ``data/`` by its name, so an export copied elsewhere (another prefix, a local disk)
    reads the same.
    """
    seen = set()
    for number, line in enumerate(manifest.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{found.uri}/{FILES} line {number}"
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise SourceError(f"{where}: not JSON") from None
        key = entry.get("dataFileS3Key") if isinstance(entry, dict) else None
        if not isinstance(key, str) or not key.strip("/"):
            raise SourceError(f"{where}: no dataFileS3Key")
        name = key.rstrip("/").rsplit("/", 1)[-1]
        if name in seen:
            raise SourceError(f"{where}: data file listed twice")
        seen.add(name)
        count = entry.get("itemCount")
        yield name, count if isinstance(count, int) and not isinstance(count, bool) else None


def _from_summary(spec: SourceSpec, found: Folder, raw: bytes) -> Snapshot:
    where = f"{found.uri}/{SUMMARY}"
    try:
        summary = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SourceError(f"{where}: not JSON") from None
    if not isinstance(summary, dict):
        raise SourceError(f"{where}: not a JSON object")
    output_format = summary.get("outputFormat", FORMAT)
    if output_format != FORMAT:
        raise SourceError(
            f"{where}: the export's format is {output_format}; only {FORMAT} exports can be read "
            f"(export again with ExportFormat {FORMAT})"
        )
    if summary.get("exportType") == "INCREMENTAL_EXPORT" or "exportFromTime" in summary:
        raise SourceError(f"{where}: an incremental export holds changes, not items: use a full export")
    export_arn, table_arn = summary.get("exportArn"), summary.get("tableArn")
    if not isinstance(export_arn, str) or not isinstance(table_arn, str):
        raise SourceError(f"{where}: no exportArn or tableArn")
    table = table_name(table_arn, where)
    if spec.table and spec.table not in (table, table_arn):
        raise SourceError(f"{where}: the export is of table {table!r}, not {spec.table!r}")
    count = summary.get("itemCount")
    return Snapshot(
        kind="export",
        table=table,
        table_arn=table_arn,
        source_arn=export_arn,
        time=iso_time(summary.get("exportTime"), f"{where}: exportTime"),
        export_id=export_arn.rsplit("/", 1)[-1],
        item_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
    )


def _without_summary(spec: SourceSpec, found: Folder, newest: datetime.datetime | None) -> Snapshot:
    """moto's exports: the table from the caller, the export id from the folder, the time from the files."""
    if not spec.table:
        raise SourceError(f"{found.uri} has no {SUMMARY}: say which table it is an export of (--table)")
    if spec.table.startswith("arn:"):
        table_arn = spec.table
        table = table_name(table_arn, "the table's ARN")
    else:
        from fhirpipes.backfill.scan import describe_table

        table = spec.table
        try:
            table_arn = str(describe_table(spec.aws, table)["TableArn"])
        except SourceError as exc:
            raise SourceError(f"{found.uri} has no {SUMMARY} and {exc}: give the table's ARN") from exc
    export_id = found.name
    export_arn = f"{table_arn}/export/{export_id}"
    described = _described_export(spec, found, table_arn, export_id)
    if described.get("ExportFormat", FORMAT) != FORMAT:
        raise SourceError(f"{found.uri}: the export's format is {described['ExportFormat']}; only {FORMAT}")
    if described.get("ExportType") == "INCREMENTAL_EXPORT":
        raise SourceError(f"{found.uri}: an incremental export holds changes, not items: use a full export")
    stamp = described.get("ExportTime") or newest
    if stamp is None:
        raise SourceError(f"{found.uri}: no {SUMMARY} and no data file to date the export by")
    count = described.get("ItemCount")
    return Snapshot(
        kind="export",
        table=table,
        table_arn=table_arn,
        source_arn=export_arn,
        time=iso_time(stamp, f"{found.uri}: the export's time"),
        export_id=export_id,
        item_count=count if isinstance(count, int) else None,
    )


def _described_export(spec: SourceSpec, found: Folder, table_arn: str, export_id: str) -> dict[str, Any]:
    """DescribeExport's answer for the export in ``found``, when ListExports knows it; else ``{}``.

    Only for S3 (a local copy may come from anywhere). moto's export ARNs don't end in the
    folder's id, so this finds nothing there, and the caller falls back on the files.
    """
    if not isinstance(found, S3Folder):
        return {}
    try:
        client = aws_client(spec.aws, "dynamodb")
        for page in client.get_paginator("list_exports").paginate(TableArn=table_arn):
            for summary in page.get("ExportSummaries", ()):
                if summary.get("ExportArn", "").endswith(f"/export/{export_id}"):
                    answer = client.describe_export(ExportArn=summary["ExportArn"])
                    return dict(answer["ExportDescription"])
    except Exception:  # best effort: the files still date the export
        return {}
    return {}


def table_name(table_arn: str, where: str) -> str:
    """``arn:aws:dynamodb:<region>:<account>:table/<name>[/...]`` -> ``name``."""
    _, found, rest = table_arn.partition(":table/")
    name = rest.split("/", 1)[0]
    if not found or not name or not table_arn.startswith("arn:"):
        raise SourceError(f"{where}: not a DynamoDB table ARN")
    return name


def iso_time(value: Any, where: str) -> str:
    """A time (ISO 8601 text, a datetime, or epoch seconds) as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC."""
    try:
        if isinstance(value, datetime.datetime):
            stamp = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            stamp = datetime.datetime.fromtimestamp(value, datetime.UTC)
        elif isinstance(value, str):
            stamp = datetime.datetime.fromisoformat(value)
        else:
            raise ValueError("no time")
    except (ValueError, OverflowError, OSError):
        raise SourceError(f"{where}: not an ISO 8601 time") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)  # AWS's times are UTC
    stamp = stamp.astimezone(datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def read_items(spec: SourceSpec, partition: Partition) -> Iterator[tuple[int, Any]]:
    """``(line, item or BadLine)`` for each non-empty line of the partition's gzip data file."""
    line = 0
    with open_file(spec.aws, partition.location) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as data:
        try:
            for text in data:
                line += 1
                if text.strip():
                    yield line, parse_line(text)
        except _GZIP_FAULTS as exc:
            raise SourceError(
                f"{partition.name}: not a readable gzip file (corrupt or truncated, after line {line})"
            ) from exc
        except OSError as exc:
            raise SourceError(
                f"{partition.name}: reading failed after line {line} ({type(exc).__name__})"
            ) from exc
        except Exception as exc:  # an S3 body's read timeout, a dropped connection, ...
            raise SourceError(
                f"{partition.name}: reading failed after line {line} ({error_code(exc)})"
            ) from exc


def parse_line(text: bytes) -> dict[str, Any] | BadLine:
    """One data file line's item (its ``Item`` AttributeValue map), or why it isn't one.

    orjson, not json: the same values (AttributeValue numbers are strings, so no float
    question arises) in about 40% of the time (1.7 against 4.3 us for a 590-byte Patient line).
    """
    try:
        line = orjson.loads(text)
    except orjson.JSONDecodeError:
        return BadLine("not JSON")
    if not isinstance(line, dict):
        return BadLine("not a JSON object")
    item = line.get("Item")
    if not isinstance(item, dict):
        return BadLine('no "Item" object')
    return item


def start_export(spec: SourceSpec, table: str, s3_uri: str, *, poll_seconds: float = 20.0) -> str:
    """Export ``table`` to ``s3_uri`` and wait (see `fhirpipes.backfill.sources.start_export`).

    Polls DescribeExport, first after a quarter second, then twice as long each time up to
    ``poll_seconds`` (an export of a real table takes minutes; moto's, milliseconds).
    """
    from fhirpipes.backfill.scan import describe_table

    bucket, prefix = split_s3(s3_uri)
    prefix = prefix or DEFAULT_PREFIX
    table_arn = str(describe_table(spec.aws, table)["TableArn"])
    exports = S3Folder(spec.aws, bucket, f"{prefix}/{EXPORTS}")
    before = set(exports.entries()[0])
    client = aws_client(spec.aws, "dynamodb")
    try:
        started = client.export_table_to_point_in_time(
            TableArn=table_arn, S3Bucket=bucket, S3Prefix=prefix, ExportFormat=FORMAT
        )
    except Exception as exc:
        code = error_code(exc)
        if code == "PointInTimeRecoveryUnavailableException":
            raise SourceError(
                f"table {table!r} has no point-in-time recovery, which an export needs: enable it "
                "(aws dynamodb update-continuous-backups --point-in-time-recovery-specification "
                "PointInTimeRecoveryEnabled=true) or read the table with a scan"
            ) from exc
        raise SourceError(f"can't export table {table!r} ({code})") from exc
    export_arn = started["ExportDescription"]["ExportArn"]
    _wait(client, table, export_arn, poll_seconds)
    export_id = export_arn.rsplit("/", 1)[-1]
    named = exports.child(export_id)
    if any(named.entries()):  # any subfolder or file
        return named.uri + "/"
    new = sorted(set(exports.entries()[0]) - before)
    if len(new) == 1:  # moto: the folder is not named after the export's ARN
        return exports.child(new[0]).uri + "/"
    raise SourceError(f"the export of {table!r} completed, but {exports.uri} has {len(new)} new exports")


def _wait(client: Any, table: str, export_arn: str, poll_seconds: float) -> None:
    delay = 0.25
    while True:
        try:
            described = client.describe_export(ExportArn=export_arn)["ExportDescription"]
        except Exception as exc:
            raise SourceError(f"can't follow the export of {table!r} ({error_code(exc)})") from exc
        status = described.get("ExportStatus")
        if status == "COMPLETED":
            return
        if status == "FAILED":
            # FailureMessage is AWS's own text about the export (a bucket, a permission), not data.
            raise SourceError(
                f"the export of {table!r} failed: {described.get('FailureCode') or 'no code'}: "
                f"{described.get('FailureMessage') or 'no message'}"
            )
        time.sleep(delay)
        delay = min(delay * 2, poll_seconds)
