"""The hand-over from a backfill to the live Pipe: nothing between the snapshot and the Pipe's
first record lost, nothing the Pipe wrote rolled back.

A DynamoDB stream keeps each change 24 hours; a Pipe created with ``StartingPosition``
``TRIM_HORIZON`` begins at the oldest change the stream still holds. So the rule is:

1. The table's stream is enabled (with new images) at or before the snapshot's time.
2. The Pipe exists before the snapshot, or is created with ``TRIM_HORIZON`` less than 24 hours
   after it (`hand_over`'s ``startPipeBy``; leave margin: the stream trims "up to" 24 h).

Then every change after the snapshot reaches the FHIR store through the Pipe, and what reaches it
twice is harmless: a resource's id is a function of its item (the same from the backfill and the
stream), a PUT of the same state is idempotent, and the sink's guard (`fhirpipes.sink.version`)
never lets a snapshot state replace a state the stream wrote, nor an older stream state a newer one.
"""

from __future__ import annotations

import datetime
from typing import Any

from fhirpipes.backfill.job import Snapshot

STREAM_RETENTION = datetime.timedelta(hours=24)


def hand_over(snapshot: Snapshot) -> dict[str, Any]:
    """When the table's stream and Pipe must be in place for ``snapshot`` to hand over without a gap."""
    taken = datetime.datetime.fromisoformat(snapshot.time)
    start_by = (taken + STREAM_RETENTION).astimezone(datetime.UTC)
    return {
        "snapshotTime": snapshot.time,
        "streamEnabledBy": snapshot.time,
        "startPipeBy": start_by.strftime("%Y-%m-%dT%H:%M:%S.") + f"{start_by.microsecond // 1000:03d}Z",
        "startingPosition": "TRIM_HORIZON",
    }


def plan_text(snapshot: Snapshot, partitions: int, keys: tuple[str, ...], destination: str) -> str:
    """What ``fhirpipes backfill --plan`` prints: what would be read and written, and the hand-over."""
    timing = hand_over(snapshot)
    what = f"export {snapshot.export_id}" if snapshot.kind == "export" else "a parallel scan"
    count = f"{snapshot.item_count:,} items" if snapshot.item_count is not None else "items not counted yet"
    return "\n".join(
        [
            f"Backfill of table {snapshot.table} from {what} as of {snapshot.time}",
            f"  {partitions} partitions, {count}, keys {', '.join(keys)}",
            f"  into {destination}",
            "",
            "Hand-over to the live Pipe (nothing lost, nothing rolled back):",
            f"  1. The table's stream must have been enabled (NEW_IMAGE or NEW_AND_OLD_IMAGES) by {snapshot.time}.",
            "  2. If the table's Pipe already runs since before then, nothing to do.",
            f"     Otherwise create or start it with StartingPosition TRIM_HORIZON before {timing['startPipeBy']}",
            "     (the stream keeps changes 24 hours; leave a margin).",
            "  3. Replays are harmless: the same item gives the same resource id, a PUT is idempotent, and the",
            "     sink's guard never lets this snapshot replace a state the stream wrote.",
            "  4. Deletes: a store that answers 404 for a deleted resource keeps nothing to compare with; to be",
            "     exact with any store (and for a HealthLake import), back-fill first, then create the Pipe.",
        ]
    )
