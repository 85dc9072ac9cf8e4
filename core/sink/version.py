"""The source-version rule: which of two states of a resource came later from its source.

A resource the enrichment made says where it came from in ``meta`` (`fhirpipes.resource.stamp_lineage`):

- ``meta.source`` is ``<stream ARN>#<sequence number>``. A DynamoDB stream ARN ends in its label,
  the ISO time the stream was enabled (``.../table/T/stream/2026-01-01T00:00:00.000``), and an
  item's changes reach one shard lineage in order, with growing sequence numbers. So for one
  table, *(stream label, sequence number)* orders an item's states, across a stream disabled and
  enabled again too. States from different tables are not compared.
- A version the mapper declares (an item attribute such as ``version`` or ``updatedAt``), when the
  enrichment stamps it as the ``meta.extension`` `VERSION_EXTENSION` (``valueInteger``,
  ``valueDecimal``, ``valueString``, ``valueDateTime`` or ``valueInstant``), comes first: it also
  orders states that reach the store without a stream (a backfill) or through two streams.

Two states that can't be compared (one has no version, or they come from different tables) are
`UNKNOWN`: the sink writes the newer delivery, as a store without the guard would.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from fhirpipes.mapper import VERSION_EXTENSION  # one home: the enrichment stamps it

NEWER, SAME, OLDER, UNKNOWN = "newer", "same", "older", "unknown"
_VALUE_KEYS = ("valueInteger", "valueDecimal", "valueString", "valueDateTime", "valueInstant")


class SourceVersion(NamedTuple):
    """Where in its source's history a state of a resource stands (each part may be unknown)."""

    declared: tuple[str, Any] | None  # ("number", Decimal) or ("text", str)
    table: str | None  # the stream ARN up to "/stream/": what makes sequence numbers comparable
    label: str | None
    sequence: int | None


NO_VERSION = SourceVersion(None, None, None, None)


def version_of(resource: Mapping[str, Any] | None) -> SourceVersion:
    """The source version a resource's ``meta`` carries (`NO_VERSION` if it carries none)."""
    meta = resource.get("meta") if isinstance(resource, Mapping) else None
    if not isinstance(meta, Mapping):
        return NO_VERSION
    return SourceVersion(_declared(meta), *_stream_position(meta.get("source")))


def compare(incoming: SourceVersion, current: SourceVersion) -> str:
    """Whether ``incoming`` is `NEWER`, the `SAME`, `OLDER` than ``current``, or `UNKNOWN`."""
    if incoming.declared is not None and current.declared is not None:
        (kind_a, a), (kind_b, b) = incoming.declared, current.declared
        if kind_a == kind_b and a != b:
            return NEWER if a > b else OLDER
        # equal declared versions: the stream position (if any) tells a replay from a re-save
    if (
        incoming.sequence is not None
        and current.sequence is not None
        and incoming.table is not None
        and incoming.table == current.table
    ):
        a_pos, b_pos = (incoming.label or "", incoming.sequence), (current.label or "", current.sequence)
        return NEWER if a_pos > b_pos else OLDER if a_pos < b_pos else SAME
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


def _stream_position(source: Any) -> tuple[str | None, str | None, int | None]:
    if not isinstance(source, str) or "#" not in source:
        return None, None, None
    arn, _, sequence = source.rpartition("#")
    table, marker, label = arn.partition("/stream/")
    if not marker or not sequence.isdigit():
        return None, None, None
    return table, label, int(sequence)
