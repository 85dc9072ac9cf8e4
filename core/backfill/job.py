"""What a backfill is asked to do, and what one partition of it gave: plain, picklable values.

A `Job` travels to every worker (a process of the pool, a Spark executor); nothing in it is a
client or an open file, so each worker builds its own from it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from fhirpipes.pipes.aws import AwsConfig

SourceKind = Literal["export", "scan"]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What was read, and as of when.

    ``source_arn`` is the export's ARN (``arn:aws:dynamodb:<region>:<account>:table/<T>/export/<id>``),
    or for a scan ``<table ARN>/scan``; ``time`` is the export time, or when the scan began (ISO 8601,
    UTC, milliseconds, ``Z``). Together they are each resource's lineage: ``meta.source`` is
    ``<source_arn>#<time>``.
    """

    kind: SourceKind
    table: str
    table_arn: str
    source_arn: str
    time: str
    export_id: str | None = None
    item_count: int | None = None


@dataclasses.dataclass(frozen=True)
class Partition:
    """One unit of work: an export data file or a scan segment.

    ``name`` is stable and unique within the backfill (``data/<file>.json.gz`` or ``segment-0003``):
    state and output files are named after ``index``, errors point at ``name`` and a line.
    ``location`` is the data file (a local path or ``s3://bucket/key``), or the segment number.
    """

    index: int
    name: str
    location: str
    item_count: int | None = None


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """Where the items come from, in a form any worker can reopen.

    ``export``: ``location`` is the export folder (``.../AWSDynamoDB/<export-id>/``, local or
    ``s3://``). ``scan``: ``table`` is scanned in ``segments`` parallel segments.
    """

    kind: SourceKind
    location: str | None = None
    table: str | None = None
    segments: int = 1
    aws: AwsConfig = dataclasses.field(default_factory=AwsConfig)


@dataclasses.dataclass(frozen=True)
class Job:
    """A whole backfill: the source, how items become records, and where resources go.

    ``keys`` are the table's key attribute names (partition key first): an INSERT's ``Keys``.
    ``state`` is the state folder (`fhirpipes.backfill.state`); ``out`` the output folder (local, or
    ``s3://``), or ``target`` a ``fhir:URL`` instead. ``environ``: the ``FHIRPIPES_*`` settings the
    workers map with (a Spark executor doesn't inherit the driver's environment).
    """

    source: SourceSpec
    snapshot: Snapshot
    keys: tuple[str, ...]
    state: str = ""
    out: str | None = None
    target: str | None = None
    fhir_auth: str | None = None
    max_file_bytes: int = 50 * 1024 * 1024
    errors: Literal["events", "locations"] = "events"
    environ: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass
class PartitionResult:
    """What one partition gave; the manifest adds these up (``read == written + skipped + errors``)."""

    index: int
    name: str
    read: int = 0
    written: int = 0
    skipped: int = 0
    errors: int = 0
    files: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """One ``{"type", "url", "count", "bytes"}`` per NDJSON file written, in order."""
    error_file: dict[str, Any] | None = None
    """``{"url", "count", "bytes"}`` of this partition's error lines, when it had any."""
