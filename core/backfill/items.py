"""An item of a snapshot as the INSERT the Lambda would get for it.

The backfill maps no item any other way: each one becomes the stream record an INSERT of it
would carry (``Keys`` from the table's key attributes, ``NewImage`` the item, view type
``NEW_IMAGE``), so the dispatcher, the template and the mapper's hooks see exactly what they see
on the stream, and give the same resource id and content. Only the record's coordinates differ:
``eventSourceARN`` is the snapshot's ARN (the export's, or ``<table ARN>/scan``) and
``SequenceNumber`` the snapshot's time, so the lineage `fhirpipes.resource.stamp_lineage` writes is
``meta.source = "<snapshot ARN>#<time>"``, which the sink's guard orders against stream states
(`fhirpipes.sink.version`); ``eventID`` is where the item was read (``<partition>:<line>``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from fhirpipes.backfill.job import Partition, Snapshot
from fhirpipes.errors import MalformedRecordError


def event_id(partition: Partition, line: int) -> str:
    """Where an item was read: ``<partition name>:<line>`` (``data/abc.json.gz:17``, ``segment-0003:5``)."""
    return f"{partition.name}:{line}"


def insert_record(
    item: Mapping[str, Any], snapshot: Snapshot, keys: Sequence[str], where: str
) -> dict[str, Any]:
    """The raw INSERT stream record of ``item`` (an AttributeValue map), read at ``where``.

    Raises `MalformedRecordError` (naming the attribute, never its value) when the item lacks a
    key attribute: such an item can't be in the table, so its line is damaged.
    """
    missing = [name for name in keys if name not in item]
    if missing:
        raise MalformedRecordError(
            f"the item has no key attribute {missing[0]!r}",
            event_id=where,
            table=snapshot.table,
            path=f"Item.{missing[0]}",
        )
    return {
        "eventID": where,
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": _region(snapshot.table_arn),
        "eventSourceARN": snapshot.source_arn,
        "dynamodb": {
            "ApproximateCreationDateTime": _epoch_seconds(snapshot.time),
            "Keys": {name: item[name] for name in keys},
            "NewImage": item,
            "SequenceNumber": snapshot.time,
            "StreamViewType": "NEW_IMAGE",
        },
    }


def _region(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def _epoch_seconds(time: str) -> int:
    # ISO 8601 with "Z" (Snapshot.time); Python 3.11's fromisoformat reads the "Z".
    return int(datetime.datetime.fromisoformat(time).timestamp())
