"""Where a backfill's items come from: a DynamoDB export (local folder or S3), or a parallel Scan.

The four functions take the `SourceSpec` and build their AWS clients themselves (one per process,
service and settings: see `aws_client`), so a worker given only the spec and a `Partition` can read
it. The export's layout is `fhirpipes.backfill.export`'s business, the Scan's
`fhirpipes.backfill.scan`'s; both are imported when first needed, so reading a local export never
imports boto3.

Nothing here puts a record value into a message: errors name the file or segment, the line and
why, and `BadLine` carries a fixed reason, never the line's text.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from fhirpipes.backfill.job import Partition, Snapshot, SourceSpec
from fhirpipes.errors import ConfigurationError
from fhirpipes.pipes.aws import AwsConfig


class SourceError(ConfigurationError):
    """The source can't be read (no export there, no manifest and no data files, access denied, ...)."""


class BadLine(NamedTuple):
    """A line of a data file that is not an item (not JSON, not ``{"Item": {...}}``): why, never what."""

    reason: str


def describe(spec: SourceSpec) -> tuple[Snapshot, list[Partition]]:
    """The snapshot and its partitions, in a stable order (an export's data files, a scan's segments).

    An export's ``location`` is its folder (``.../AWSDynamoDB/<export-id>``, local or ``s3://``,
    with or without the trailing slash) or the folder holding ``AWSDynamoDB/`` when that holds
    exactly one export. Without ``manifest-summary.json`` (moto writes none), ``spec.table`` must
    name the table (or be its ARN), and the snapshot's time is the newest data file's.
    """
    if spec.kind == "export":
        from fhirpipes.backfill import export

        return export.describe(spec)
    if spec.kind == "scan":
        from fhirpipes.backfill import scan

        return scan.describe(spec)
    raise SourceError(f"unknown source kind {spec.kind!r}: export or scan")


def key_names(spec: SourceSpec, snapshot: Snapshot, given: Sequence[str] | None) -> tuple[str, ...]:
    """The table's key attribute names (partition key first): ``given``, else from DescribeTable."""
    if given is not None:
        names = (given,) if isinstance(given, str) else tuple(given)  # a str is a Sequence too
        if not 1 <= len(names) <= 2 or not all(isinstance(name, str) and name.strip() for name in names):
            raise SourceError("keys: one or two non-empty attribute names (the partition key first)")
        return names
    from fhirpipes.backfill import scan

    try:
        table = scan.describe_table(spec.aws, snapshot.table)
    except SourceError as exc:
        raise SourceError(
            f"the table's key attributes are not known ({exc}); give them with --keys (e.g. --keys id, "
            "or --keys pk,sk)"
        ) from exc
    schema = {entry["KeyType"]: entry["AttributeName"] for entry in table.get("KeySchema", ())}
    if "HASH" not in schema:
        raise SourceError(f"table {snapshot.table!r} has no partition key: pass --keys")
    return (schema["HASH"], schema["RANGE"]) if "RANGE" in schema else (schema["HASH"],)


def read_items(spec: SourceSpec, partition: Partition) -> Iterator[tuple[int, Any]]:
    """``(line, item)`` for each item of ``partition`` in order (line from 1): the item's AttributeValue
    map, or a `BadLine` for a line that isn't one. A fault of the whole file raises `SourceError`.

    Export lines are numbered as they are in the file (an empty line is skipped but counted);
    a scan's items are numbered as they come.
    """
    if spec.kind == "export":
        from fhirpipes.backfill import export

        return export.read_items(spec, partition)
    if spec.kind == "scan":
        from fhirpipes.backfill import scan

        return scan.read_items(spec, partition)
    raise SourceError(f"unknown source kind {spec.kind!r}: export or scan")


def start_export(spec: SourceSpec, table: str, s3_uri: str) -> str:
    """Start ``ExportTableToPointInTime`` of ``table`` into ``s3_uri``, wait, and return the export folder.

    The folder is ``s3://bucket/<prefix>/AWSDynamoDB/<export-id>/`` (prefix ``fhirpipes-backfill``
    when ``s3_uri`` gives none); the table needs point-in-time recovery.
    """
    from fhirpipes.backfill import export

    return export.start_export(spec, table, s3_uri)


_clients: dict[tuple[int, AwsConfig, str], Any] = {}
_clients_lock = threading.Lock()


def aws_client(aws: AwsConfig, service: str) -> Any:
    """A boto3 client for ``service``, built once per process (and settings).

    Keyed on the process id too: a client inherited through ``fork`` shares its connections with
    the parent's, so a pool's worker builds its own.
    """
    key = (os.getpid(), aws, service)
    with _clients_lock:  # building a boto3 session is not thread-safe
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = aws.client(service)
        return client


def error_code(exc: BaseException) -> str:
    """What went wrong with an AWS call, for a message: the service's error code, else the class name.

    Never the service's message (a ConditionalCheckFailed or a validation message can quote values).
    """
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
