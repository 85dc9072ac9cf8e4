"""The source-version rule: which of two states of a resource came later from its source.

A resource the enrichment made says where it came from in ``meta`` (`fhirpipes.resource.stamp_lineage`):

- From the table's stream, ``meta.source`` is ``<stream ARN>#<sequence number>``. A DynamoDB
  stream ARN ends in its label, the ISO time the stream was enabled
  (``.../table/T/stream/2026-01-01T00:00:00.000``), and an item's changes reach one shard lineage
  in order, with growing sequence numbers. So for one table, *(stream label, sequence number)*
  orders an item's states, across a stream disabled and enabled again too.
- From a snapshot of the table (``fhirpipes backfill``), ``meta.source`` is
  ``<export ARN>#<export time>`` (``.../table/T/export/<id>#2026-12-01T00:00:00.000Z``) or, for a
  parallel Scan, ``<table ARN>/scan#<scan start time>``: the item as it was at that time (UTC).
- A version the mapper declares (an item attribute such as ``version`` or ``updatedAt``), when the
  enrichment stamps it as the ``meta.extension`` `VERSION_EXTENSION` (``valueInteger``,
  ``valueDecimal``, ``valueString``, ``valueDateTime`` or ``valueInstant``), comes first: it also
  orders states that reach the store through two streams, or from another table.

Snapshot states are ordered by the hand-over rule of a backfill: the live Pipe's stream coverage
begins at or before the snapshot's time (the Pipe was created before the export or scan began, or
created with ``TRIM_HORIZON`` within the stream's 24 hours' retention after it). Every change made
after the snapshot then reaches the store through the stream, so, for one table (and unless two
different declared versions decide):

- a snapshot state is `OLDER` than any state the stream wrote: a backfill never replaces it;
- a stream state is `NEWER` than any snapshot state: the live Pipe replaces what a backfill wrote
  (even a state from before the snapshot, replayed: the stream then brings the later ones, in order);
- of two snapshot states, the later snapshot time is `NEWER`; the same time is the `SAME` (a
  rerun of the backfill: skipped).

The rule orders states, not deletes: when the stream's delete of an item reaches the store before
the backfill's state of it, the store may keep nothing to compare with (a 404, no history), and
the backfill's state is written again.

A ``meta.source`` that is neither shape (no ``#``, no sequence number, a time not in that form,
``/export/`` without an id) carries no position. Two states that can't be compared (no declared
version on both, and no position of one table on both: states of different tables never compare)
are `UNKNOWN`: the sink writes the newer delivery, as a store without the guard would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from fhirpipes.mapper import VERSION_EXTENSION  # one home: the enrichment stamps it

NEWER, SAME, OLDER, UNKNOWN = "newer", "same", "older", "unknown"
_VALUE_KEYS = ("valueInteger", "valueDecimal", "valueString", "valueDateTime", "valueInstant")
# The snapshot's ARN: the table's, then /export/<id> or /scan (a table name has no "/" or "#").
_SNAPSHOT_ARN = re.compile(
    r"(arn:[^:/#]+:dynamodb:[^:/#]*:[^:/#]*:table/[A-Za-z0-9_.-]+)/(?:export/[^/#]+|scan)"
)
_SNAPSHOT_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z")


class SourceVersion(NamedTuple):
    """Where in its source's history a state of a resource stands (each part may be unknown)."""

    declared: tuple[str, Any] | None  # ("number", Decimal) or ("text", str)
    table: str | None  # the table's ARN: what makes stream positions and snapshots comparable
    label: str | None
    sequence: int | None
    snapshot: datetime | None = None  # a backfilled state: the export's or scan's time (UTC)


NO_VERSION = SourceVersion(None, None, None, None)


def version_of(resource: Mapping[str, Any] | None) -> SourceVersion:
    """The source version a resource's ``meta`` carries (`NO_VERSION` if it carries none)."""
    meta = resource.get("meta") if isinstance(resource, Mapping) else None
    if not isinstance(meta, Mapping):
        return NO_VERSION
    return SourceVersion(_declared(meta), *_position(meta.get("source")))


def compare(incoming: SourceVersion, current: SourceVersion) -> str:
    """Whether ``incoming`` is `NEWER`, the `SAME`, `OLDER` than ``current``, or `UNKNOWN`."""
    if incoming.declared is not None and current.declared is not None:
        (kind_a, a), (kind_b, b) = incoming.declared, current.declared
        if kind_a == kind_b and a != b:
            return NEWER if a > b else OLDER
        # equal declared versions: the position (if any) tells a replay from a re-save
    if incoming.table is not None and incoming.table == current.table:
        if incoming.sequence is not None and current.sequence is not None:
            a_pos, b_pos = (incoming.label or "", incoming.sequence), (current.label or "", current.sequence)
            return NEWER if a_pos > b_pos else OLDER if a_pos < b_pos else SAME
        if incoming.snapshot is not None and current.snapshot is not None:
            a_time, b_time = incoming.snapshot, current.snapshot
            return NEWER if a_time > b_time else OLDER if a_time < b_time else SAME
        # The hand-over rule: the stream carries every change made after the snapshot.
        if incoming.snapshot is not None and current.sequence is not None:
            return OLDER
        if incoming.sequence is not None and current.snapshot is not None:
            return NEWER
    if incoming.declared is not None and incoming.declared == current.declared:
        return SAME
    return UNKNOWN


def _declared(meta: Mapping[str, Any]) -> tuple[str, Any] | None:
    for extension in meta.get("extension") or ():
        if not isinstance(extension, Mapping) or extension.get("url") != VERSION_EXTENSION:
            continue
        for key in _VALUE_KEYS:
            value = extension.get(key)
            if value is None:
                continue
            if key in ("valueInteger", "valueDecimal"):
                try:
                    return ("number", Decimal(str(value)))
                except InvalidOperation:
                    return None
            return ("text", str(value))
    return None


def _position(source: Any) -> tuple[str | None, str | None, int | None, datetime | None]:
    """(table, stream label, sequence number, snapshot time) of a ``meta.source``; Nones if it has none."""
    if not isinstance(source, str) or "#" not in source:
        return None, None, None, None
    arn, _, after = source.rpartition("#")
    table, marker, label = arn.partition("/stream/")
    if marker:
        if not after.isdigit():
            return None, None, None, None
        return table, label, int(after), None
    snapshot = _SNAPSHOT_ARN.fullmatch(arn)
    if snapshot is None or not _SNAPSHOT_TIME.fullmatch(after):
        return None, None, None, None
    try:
        time = datetime.fromisoformat(after)  # the pattern lets 2026-13-45 through
    except ValueError:
        return None, None, None, None
    return snapshot.group(1), None, None, time
