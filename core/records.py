"""DynamoDB stream records as a Pipe delivers them, and the batch shapes the handler accepts.

A Pipe always sends a bare JSON array of records, even with a batch size of 1. For reuse and
tests the handler also takes ``{"Records": [...]}`` (the Lambda event-source-mapping shape) and
one bare record. `parse_record` turns one raw record into a `StreamRecord`, or raises
`MalformedRecordError` naming what is wrong and where, never what the record holds; it raises
nothing else, whatever the input (wrong types anywhere, unhashable values, any nesting), and
`identify` raises nothing at all, so one record's faults never fail its batch.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

from fhirpipes.attributes import AttributeValueError, decode_image
from fhirpipes.errors import BatchError, MalformedRecordError

EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})


# A NamedTuple, not a dataclass: a frozen dataclass costs a Lambda's cold start ~2 ms to define
# and ~4x as much per instance; this one is made per record.
class StreamRecord(NamedTuple):
    """One change, decoded: what a template and a mapper's hooks see.

    ``keys``, ``new`` and ``old`` are decoded images (``new``/``old`` are ``None`` when the
    stream view type doesn't carry them); ``raw`` is the record exactly as the Pipe sent it.
    """

    event_id: str
    event_name: str
    table: str
    source_arn: str
    sequence_number: str | None
    keys: dict[str, Any]
    new: dict[str, Any] | None
    old: dict[str, Any] | None
    approximate_creation_time: Any
    raw: Mapping[str, Any]

    @property
    def is_ttl_delete(self) -> bool:
        """A REMOVE made by DynamoDB's time-to-live, not by a person."""
        identity = self.raw.get("userIdentity")
        return isinstance(identity, Mapping) and identity.get("principalId") == "dynamodb.amazonaws.com"


def records_of(event: Any) -> list[Any]:
    """The list of raw records in any accepted batch shape; the elements are not checked yet."""
    if isinstance(event, list):
        return event
    if isinstance(event, Mapping):
        if "Records" in event and "dynamodb" not in event:
            records = event["Records"]
            if not isinstance(records, list):
                raise BatchError('the event\'s "Records" must be a list of DynamoDB stream records')
            return records
        return [event]
    raise BatchError(
        'the event must be a list of DynamoDB stream records, an object with "Records", or one record'
    )


def identify(raw: Any) -> tuple[str | None, str | None, str | None]:
    """Best-effort (eventID, table, sequence number) of a raw record, for error reports."""
    if not isinstance(raw, Mapping):
        return None, None, None
    event_id = raw.get("eventID") if isinstance(raw.get("eventID"), str) else None
    arn = raw.get("eventSourceARN")
    table = table_from_arn(arn) if isinstance(arn, str) else None
    dynamodb = raw.get("dynamodb")
    sequence = dynamodb.get("SequenceNumber") if isinstance(dynamodb, Mapping) else None
    return event_id, table, sequence if isinstance(sequence, str) else None


@functools.lru_cache(maxsize=256)  # a batch comes from one stream: the same ARN, record after record
def table_from_arn(arn: str) -> str | None:
    """``arn:aws:dynamodb:<region>:<account>:table/<Table>/stream/<label>`` -> ``<Table>``."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "dynamodb":
        return None
    resource = parts[5].split("/")
    if len(resource) < 2 or resource[0] != "table" or not resource[1]:
        return None
    return resource[1]


def parse_record(raw: Any) -> StreamRecord:
    """Check and decode one raw stream record."""
    event_id, table, sequence = identify(raw)

    def malformed(message: str, path: str | None = None) -> MalformedRecordError:
        return MalformedRecordError(
            message, event_id=event_id, table=table, sequence_number=sequence, path=path
        )

    if not isinstance(raw, Mapping):
        raise malformed("a record must be a JSON object")
    if event_id is None:
        raise malformed("the record has no eventID string", "eventID")
    event_name = raw.get("eventName")
    # Checked as a string first: `in` on a frozenset hashes, and a list or object can't be hashed.
    if not isinstance(event_name, str) or event_name not in EVENT_NAMES:
        raise malformed("eventName must be INSERT, MODIFY or REMOVE", "eventName")
    arn = raw.get("eventSourceARN")
    if not isinstance(arn, str):
        raise malformed("the record has no eventSourceARN", "eventSourceARN")
    if table is None:
        raise malformed("eventSourceARN names no DynamoDB table", "eventSourceARN")
    dynamodb = raw.get("dynamodb")
    if not isinstance(dynamodb, Mapping):
        raise malformed("the record has no dynamodb object", "dynamodb")
    try:
        keys = decode_image(dynamodb.get("Keys", {}), "dynamodb.Keys")
        new = decode_image(dynamodb["NewImage"], "dynamodb.NewImage") if "NewImage" in dynamodb else None
        old = decode_image(dynamodb["OldImage"], "dynamodb.OldImage") if "OldImage" in dynamodb else None
    except AttributeValueError as exc:
        raise malformed(f"bad AttributeValue JSON: {exc.reason}", exc.path) from exc
    return StreamRecord(
        event_id=event_id,
        event_name=event_name,
        table=table,
        source_arn=arn,
        sequence_number=sequence,
        keys=keys,
        new=new,
        old=old,
        approximate_creation_time=dynamodb.get("ApproximateCreationDateTime"),
        raw=raw,
    )
