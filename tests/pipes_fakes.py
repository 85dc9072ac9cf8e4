"""A fake ``dynamodbstreams`` client for unit tests of the stream reader and the runner.

Shards hold boto3-shaped records (datetime ``ApproximateCreationDateTime``, bytes for ``B``);
a shard can be closed (then GetRecords at its end returns no ``NextShardIterator``) and have a
parent. Iterators are ``<shard>|<index of the next record>``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Patients/stream/2024-01-01T00:00:00.000"


class _Exceptions:
    class ExpiredIteratorException(Exception):
        pass

    class TrimmedDataAccessException(Exception):
        pass

    class ResourceNotFoundException(Exception):
        pass


class FakeStreams:
    exceptions = _Exceptions

    def __init__(self, page_size: int = 100) -> None:
        self.shards: dict[str, dict[str, Any]] = {}
        self.page_size = page_size
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.expire_next = 0  # GetRecords calls to fail with ExpiredIteratorException
        self._sequence = 100

    def add_shard(self, shard_id: str, parent: str | None = None, *, closed: bool = False) -> None:
        self.shards[shard_id] = {"parent": parent, "closed": closed, "records": []}

    def close(self, shard_id: str) -> None:
        self.shards[shard_id]["closed"] = True

    def put(
        self,
        shard_id: str,
        event_name: str,
        item_id: str,
        new: dict[str, Any] | None = None,
        old: dict[str, Any] | None = None,
    ) -> str:
        self._sequence += 1
        sequence = str(self._sequence)
        dynamodb: dict[str, Any] = {
            "ApproximateCreationDateTime": dt.datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=dt.UTC),
            "Keys": {"id": {"S": item_id}},
            "SequenceNumber": sequence,
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if new is not None:
            dynamodb["NewImage"] = new
        if old is not None:
            dynamodb["OldImage"] = old
        self.shards[shard_id]["records"].append(
            {
                "eventID": f"evt-{sequence}",
                "eventName": event_name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": dynamodb,
            }
        )
        return sequence

    # --- the client API ---

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> dict[str, Any]:
        self.calls.append(("describe_stream", {"ExclusiveStartShardId": ExclusiveStartShardId}))
        ids = list(self.shards)
        start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        page = ids[start : start + self.page_size]
        shards = []
        for shard_id in page:
            shard = self.shards[shard_id]
            records = shard["records"]
            sequence_range = {
                "StartingSequenceNumber": records[0]["dynamodb"]["SequenceNumber"] if records else "1"
            }
            if shard["closed"]:
                sequence_range["EndingSequenceNumber"] = (
                    records[-1]["dynamodb"]["SequenceNumber"] if records else "1"
                )
            entry: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": sequence_range}
            if shard["parent"]:
                entry["ParentShardId"] = shard["parent"]
            shards.append(entry)
        description: dict[str, Any] = {"StreamArn": StreamArn, "Shards": shards}
        if start + self.page_size < len(ids):
            description["LastEvaluatedShardId"] = page[-1]
        return {"StreamDescription": description}

    def get_shard_iterator(
        self, StreamArn: str, ShardId: str, ShardIteratorType: str, SequenceNumber: str | None = None
    ) -> dict[str, str]:
        self.calls.append(
            ("get_shard_iterator", {"ShardId": ShardId, "Type": ShardIteratorType, "Seq": SequenceNumber})
        )
        records = self.shards[ShardId]["records"]
        if ShardIteratorType == "TRIM_HORIZON":
            index = 0
        elif ShardIteratorType == "LATEST":
            index = len(records)
        else:
            sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
            index = sequences.index(SequenceNumber) + (
                1 if ShardIteratorType == "AFTER_SEQUENCE_NUMBER" else 0
            )
        return {"ShardIterator": f"{ShardId}|{index}"}

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        self.calls.append(("get_records", {"ShardIterator": ShardIterator}))
        if self.expire_next:
            self.expire_next -= 1
            raise self.exceptions.ExpiredIteratorException()
        shard_id, index_text = ShardIterator.split("|")
        index = int(index_text)
        shard = self.shards[shard_id]
        records = shard["records"][index : index + Limit]
        end = index + len(records)
        response: dict[str, Any] = {"Records": records}
        if not (shard["closed"] and end >= len(shard["records"])):
            response["NextShardIterator"] = f"{shard_id}|{end}"
        return response
