"""Where a backfill's items come from: a DynamoDB export (local folder or S3), or a parallel Scan.

(Interface only: filled in by the sources work.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from fhirpipes.backfill.job import Partition, Snapshot, SourceSpec
from fhirpipes.errors import ConfigurationError


class SourceError(ConfigurationError):
    """The source can't be read (no export there, no manifest and no data files, access denied, ...)."""


class BadLine(NamedTuple):
    """A line of a data file that is not an item (not JSON, not ``{"Item": {...}}``): why, never what."""


def describe(spec: SourceSpec) -> tuple[Snapshot, list[Partition]]:
    """The snapshot and its partitions, in a stable order (an export's data files, a scan's segments)."""
    raise NotImplementedError


def key_names(spec: SourceSpec, snapshot: Snapshot, given: Sequence[str] | None) -> tuple[str, ...]:
    """The table's key attribute names (partition key first): ``given``, else from DescribeTable."""
    raise NotImplementedError


def read_items(spec: SourceSpec, partition: Partition) -> Iterator[tuple[int, Any]]:
    """``(line, item)`` for each item of ``partition`` in order (line from 1): the item's AttributeValue
    map, or a `BadLine` for a line that isn't one. A fault of the whole file raises `SourceError`."""
    raise NotImplementedError


def start_export(spec: SourceSpec, table: str, s3_uri: str) -> str:
    """Start ``ExportTableToPointInTime`` of ``table`` into ``s3_uri``, wait, and return the export folder."""
    raise NotImplementedError
