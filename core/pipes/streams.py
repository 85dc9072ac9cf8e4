"""Reading a table's DynamoDB stream as a Pipe does: shards in lineage order, records as Pipes sends them.

`StreamReader` lists the stream's shards (DescribeStream, paginated), reads each with
GetShardIterator and GetRecords, and follows shard lineage the way DynamoDB requires: a child
shard is read only once its parent is closed and read to its end, so the changes of one item
stay in order. Where a shard starts:

* a shard with a checkpoint: ``AFTER_SEQUENCE_NUMBER`` the checkpoint (a restart resumes there);
* a child of a shard in the stream's listing: ``TRIM_HORIZON`` (its parent was read first);
* otherwise the Pipe's starting position: ``TRIM_HORIZON``, or ``LATEST`` (a closed shard is
  then skipped: nothing new can arrive in it).

Every stream API call is retried after a transient failure (a dropped connection, a timeout,
throttling, a 5xx: `fhirpipes.pipes.retry`); reads are idempotent, so retrying is always safe.

`normalise_record` bridges what GetRecords returns (through boto3) to what a Pipe sends the
enrichment: boto3 gives binary values as bytes and ``ApproximateCreationDateTime`` as a
datetime, and GetRecords records carry no ``eventSourceARN``; a Pipe sends base64 text, epoch
seconds, and the stream ARN as ``eventSourceARN``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fhirpipes.errors import ConfigurationError
from fhirpipes.logs import logger
from fhirpipes.mapper import STARTING_POSITIONS
from fhirpipes.mapper import StartingPosition as StartingPosition
from fhirpipes.pipes.retry import retrying

GET_RECORDS_LIMIT = 1000  # the API's maximum
REFRESH_SECONDS = 10.0  # how often to look for new shards while reading open ones

# The order of a record's keys in the batch a Pipe sends.
_RECORD_KEYS = ("eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb")


def stream_arn_of(dynamodb_client: Any, table: str) -> str:
    """The table's latest stream ARN; `ConfigurationError` if the table is missing or has no stream."""
    try:
        description = dynamodb_client.describe_table(TableName=table)["Table"]
    except dynamodb_client.exceptions.ResourceNotFoundException as exc:
        raise ConfigurationError(f"table {table!r} not found at this endpoint and region") from exc
    arn = description.get("LatestStreamArn")
    enabled = description.get("StreamSpecification", {}).get("StreamEnabled", bool(arn))
    if not arn or not enabled:
        raise ConfigurationError(
            f"table {table!r} has no stream: enable one (NEW_AND_OLD_IMAGES) for the Pipe to read"
        )
    return str(arn)


def normalise_record(raw: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record (as boto3 parses it) in the shape a Pipe sends the enrichment."""
    wire = {key: _wire(value) for key, value in raw.items()}
    dynamodb = wire.get("dynamodb")
    if isinstance(dynamodb, dict):
        created = raw.get("dynamodb", {}).get("ApproximateCreationDateTime")
        if isinstance(created, dt.datetime):
            # DynamoDB sends whole epoch seconds; some emulators send milliseconds as well.
            dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
        elif isinstance(created, int | float):
            dynamodb["ApproximateCreationDateTime"] = int(created)
    if "awsRegion" not in wire:
        parts = stream_arn.split(":")
        if len(parts) > 3:
            wire["awsRegion"] = parts[3]
    record = {key: wire[key] for key in _RECORD_KEYS if key in wire}
    record["eventSourceARN"] = wire.get("eventSourceARN") or stream_arn
    record.update((key, value) for key, value in wire.items() if key not in record)
    return record


def _wire(value: Any) -> Any:
    """boto3's parsed values back to their JSON wire form."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    if isinstance(value, Mapping):
        return {key: _wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(item) for item in value]
    return value


@dataclasses.dataclass
class ShardState:
    """What the reader knows about one shard."""

    shard_id: str
    parent_id: str | None
    closed: bool
    ending_sequence: str | None = None
    iterator: str | None = None
    finished: bool = False
    last_read: str | None = None
    caught_up: bool = False  # the last GetRecords returned nothing


class StreamReader:
    """Reads one stream's shards in lineage order.

    Args:
        client: a boto3 ``dynamodbstreams`` client.
        stream_arn: the stream.
        starting_position: ``TRIM_HORIZON`` or ``LATEST``, for shards with no checkpoint and no
            parent in the listing.
        positions: shard id -> last delivered sequence number (the checkpoints).
    """

    def __init__(
        self,
        client: Any,
        stream_arn: str,
        *,
        starting_position: StartingPosition = "TRIM_HORIZON",
        positions: Mapping[str, str] | None = None,
        limit: int = GET_RECORDS_LIMIT,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 5,
        backoff: float = 0.5,
    ) -> None:
        if starting_position not in STARTING_POSITIONS:
            raise ConfigurationError(f"the starting position must be one of {', '.join(STARTING_POSITIONS)}")
        self.client = client
        self.stream_arn = stream_arn
        self.starting_position = starting_position
        self.positions = dict(positions or {})
        self.limit = limit
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._sleep = sleep
        self.attempts = attempts
        self.backoff = backoff
        self.shards: dict[str, ShardState] = {}
        self._refreshed_at: float | None = None
        self._initial: set[str] | None = None
        self._shard_finished = False  # look for its children at once

    # --- shards -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """List the stream's shards (all pages) and add the new ones."""
        listed: list[Mapping[str, Any]] = []
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            description = self._call("DescribeStream", self.client.describe_stream, **kwargs)[
                "StreamDescription"
            ]
            listed.extend(description.get("Shards", []))
            start = description.get("LastEvaluatedShardId")
            if not start:
                break
        for shard in listed:
            shard_id = shard["ShardId"]
            ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            known = self.shards.get(shard_id)
            if known is not None:
                known.closed = known.closed or ending is not None
                known.ending_sequence = known.ending_sequence or ending
                continue
            self.shards[shard_id] = ShardState(
                shard_id=shard_id,
                parent_id=shard.get("ParentShardId"),
                closed=ending is not None,
                ending_sequence=ending,
            )
        if self._initial is None:
            self._initial = set(self.shards)
        self._refreshed_at = self._clock()
        self._shard_finished = False

    def readable(self) -> list[ShardState]:
        """The shards to read now, parents before children: not finished, parent (if listed) finished."""
        due = self._refreshed_at is None or self._clock() - self._refreshed_at >= self.refresh_seconds
        if due or self._shard_finished:
            self.refresh()
        return [
            shard
            for shard in lineage_order(self.shards.values())
            if not shard.finished and self._parent_done(shard)
        ]

    def _parent_done(self, shard: ShardState) -> bool:
        parent = self.shards.get(shard.parent_id) if shard.parent_id else None
        return parent is None or parent.finished

    @property
    def caught_up(self) -> bool:
        """Every shard is read to its end or returned nothing on its last read."""
        if self._refreshed_at is None or self._shard_finished:
            return False  # not listed yet, or a shard just ended: its children are still to be found
        return all(shard.finished or shard.caught_up for shard in self.shards.values())

    # --- records ------------------------------------------------------------------------------

    def read(self, shard: ShardState) -> list[dict[str, Any]]:
        """One GetRecords on ``shard``: its next records, normalised (may be empty)."""
        if shard.iterator is None:
            shard.iterator = self._first_iterator(shard)
            if shard.iterator is None:
                shard.finished = True
                return []
        errors = self.client.exceptions
        try:
            response = self._call(
                "GetRecords", self.client.get_records, ShardIterator=shard.iterator, Limit=self.limit
            )
        except errors.ExpiredIteratorException:
            # Iterators live 15 minutes: take a new one where this one was.
            shard.iterator = self._resume_iterator(shard)
            response = self._call(
                "GetRecords", self.client.get_records, ShardIterator=shard.iterator, Limit=self.limit
            )
        except errors.TrimmedDataAccessException:
            logger.warning(
                "stream records older than the stream's 24-hour retention were trimmed before they were "
                "read; resuming at the oldest record left",
                extra={"fhirpipes": {"streamArn": self.stream_arn, "shardId": shard.shard_id}},
            )
            shard.iterator = self._iterator(shard, "TRIM_HORIZON")
            return []
        except errors.ResourceNotFoundException:
            logger.warning(
                "a shard disappeared from the stream (trimmed); moving on to its children",
                extra={"fhirpipes": {"streamArn": self.stream_arn, "shardId": shard.shard_id}},
            )
            shard.finished = True
            return []
        records = [normalise_record(raw, self.stream_arn) for raw in response.get("Records", [])]
        if records:
            shard.last_read = records[-1]["dynamodb"]["SequenceNumber"]
        shard.caught_up = not records
        shard.iterator = response.get("NextShardIterator")
        if shard.iterator is None:
            shard.finished = True  # a closed shard read to its end
            self._shard_finished = True
        return records

    def _first_iterator(self, shard: ShardState) -> str | None:
        position = self.positions.get(shard.shard_id)
        if position is not None:
            return self._iterator(shard, "AFTER_SEQUENCE_NUMBER", position)
        if shard.parent_id in self.shards or shard.shard_id not in (self._initial or set()):
            return self._iterator(shard, "TRIM_HORIZON")
        if self.starting_position == "LATEST":
            if shard.closed:
                return None  # nothing new can arrive in a closed shard
            return self._iterator(shard, "LATEST")
        return self._iterator(shard, "TRIM_HORIZON")

    def _resume_iterator(self, shard: ShardState) -> str:
        if shard.last_read is not None:
            return self._iterator(shard, "AFTER_SEQUENCE_NUMBER", shard.last_read)
        iterator = self._first_iterator(shard)
        if iterator is None:
            raise ConfigurationError("no iterator for a closed shard")  # pragma: no cover
        return iterator

    def _iterator(self, shard: ShardState, kind: str, sequence: str | None = None) -> str:
        kwargs: dict[str, Any] = {
            "StreamArn": self.stream_arn,
            "ShardId": shard.shard_id,
            "ShardIteratorType": kind,
        }
        if sequence is not None:
            kwargs["SequenceNumber"] = sequence
        return str(self._call("GetShardIterator", self.client.get_shard_iterator, **kwargs)["ShardIterator"])

    def _call(self, operation: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        """A stream API call, retried after a dropped connection, a timeout, throttling or a 5xx."""
        return retrying(
            lambda: method(**kwargs),
            what=f"{operation} on the stream",
            attempts=self.attempts,
            backoff=self.backoff,
            sleep=self._sleep,
        )


def lineage_order(shards: Iterable[ShardState]) -> list[ShardState]:
    """Shards with every parent before its children (roots in listing order)."""
    by_id = {shard.shard_id: shard for shard in shards}
    children: dict[str | None, list[ShardState]] = {}
    for shard in by_id.values():
        parent = shard.parent_id if shard.parent_id in by_id else None
        children.setdefault(parent, []).append(shard)
    ordered: list[ShardState] = []
    pending = list(children.get(None, []))
    while pending:
        shard = pending.pop(0)
        ordered.append(shard)
        pending.extend(children.get(shard.shard_id, []))
    return ordered
