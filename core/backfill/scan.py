"""The other source: a parallel Scan of the table itself (for tables without point-in-time recovery).

Each segment (``Segment`` of ``TotalSegments``) is one partition, read with strongly consistent
reads. Unlike an export, a scan is not a snapshot: an item written while it runs may or may not
be read; the snapshot's time is when the scan was described (the backfill began).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator
from typing import Any

from fhirpipes.backfill.job import Partition, Snapshot, SourceSpec
from fhirpipes.backfill.sources import SourceError, aws_client, error_code
from fhirpipes.errors import ConfigurationError
from fhirpipes.pipes.aws import AwsConfig

MAX_SEGMENTS = 1_000_000  # DynamoDB's limit on TotalSegments


def describe_table(aws: AwsConfig, table: str) -> dict[str, Any]:
    """DescribeTable's ``Table``; any failure (no credentials, no region, no table) is a `SourceError`."""
    try:
        answer = aws_client(aws, "dynamodb").describe_table(TableName=table)
    except ConfigurationError as exc:
        raise SourceError(f"can't describe table {table!r}: {exc}") from exc
    except Exception as exc:  # botocore's ClientError, NoCredentialsError, EndpointConnectionError, ...
        raise SourceError(f"can't describe table {table!r} ({error_code(exc)})") from exc
    return dict(answer["Table"])


def describe(spec: SourceSpec) -> tuple[Snapshot, list[Partition]]:
    """The scan's snapshot (``<table ARN>/scan``, now) and one partition per segment."""
    if not spec.table:
        raise SourceError("a scan needs the table's name")
    if not 1 <= spec.segments <= MAX_SEGMENTS:
        raise SourceError(f"segments: from 1 to {MAX_SEGMENTS:,} (DynamoDB's limit)")
    table_arn = str(describe_table(spec.aws, spec.table)["TableArn"])
    now = datetime.datetime.now(datetime.UTC)
    snapshot = Snapshot(
        kind="scan",
        table=spec.table,
        table_arn=table_arn,
        source_arn=f"{table_arn}/scan",
        time=now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
    )
    width = max(4, len(str(spec.segments - 1)))
    partitions = [
        Partition(index=segment, name=f"segment-{segment:0{width}d}", location=str(segment))
        for segment in range(spec.segments)
    ]
    return snapshot, partitions


def read_items(spec: SourceSpec, partition: Partition) -> Iterator[tuple[int, Any]]:
    """``(n, item)`` for each item of the partition's segment, ``n`` counting from 1."""
    if not spec.table:
        raise SourceError("a scan needs the table's name")
    segment = int(partition.location)
    line = 0
    try:
        pages = aws_client(spec.aws, "dynamodb").get_paginator("scan")
        for page in pages.paginate(
            TableName=spec.table, Segment=segment, TotalSegments=spec.segments, ConsistentRead=True
        ):
            for item in page.get("Items", ()):
                line += 1
                yield line, _as_json(item)
    except Exception as exc:  # botocore's errors, or no region (ConfigurationError)
        raise SourceError(
            f"{partition.name}: the scan of {spec.table!r} failed after {line} item{'' if line == 1 else 's'} ({error_code(exc)})"
        ) from exc


def _as_json(item: dict[str, Any]) -> dict[str, Any]:
    """An item as botocore parses it, in the form an export (and a stream record) holds it.

    botocore decodes binaries (``B``, ``BS``) from base64 into bytes; the records the mappers
    read carry them as base64 text, so they go back. Everything else is JSON already.
    """
    return {name: _value(value) for name, value in item.items()}


def _value(value: dict[str, Any]) -> dict[str, Any]:
    if "B" in value:
        return {"B": _base64(value["B"])}
    if "BS" in value:
        return {"BS": [_base64(member) for member in value["BS"]]}
    if "M" in value:
        return {"M": _as_json(value["M"])}
    if "L" in value:
        return {"L": [_value(member) for member in value["L"]]}
    return value


def _base64(data: Any) -> Any:
    return base64.b64encode(data).decode("ascii") if isinstance(data, bytes | bytearray) else data
