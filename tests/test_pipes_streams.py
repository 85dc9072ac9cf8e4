"""The stream reader (shard lineage, starting positions, iterators) and record normalisation."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pipes_fakes import STREAM_ARN, FakeStreams

from fhirpipes.errors import ConfigurationError
from fhirpipes.pipes.checkpoint import Checkpoints
from fhirpipes.pipes.streams import ShardState, StreamReader, lineage_order, normalise_record

NEW = {"id": {"S": "a"}, "photo": {"B": b"\x00\xffpng"}, "tags": {"BS": [b"x", b"y"]}, "n": {"N": "1"}}


def drain(reader: StreamReader, rounds: int = 20) -> list[str]:
    """Item ids in the order the reader hands them out, until caught up."""
    seen: list[str] = []
    for _ in range(rounds):
        for shard in reader.readable():
            seen.extend(r["dynamodb"]["Keys"]["id"]["S"] for r in reader.read(shard))
        if reader.caught_up:
            break
    return seen


# --- normalisation -----------------------------------------------------------------------------


def test_normalise_gives_what_a_pipe_sends() -> None:
    fake = FakeStreams()
    fake.add_shard("s1")
    fake.put("s1", "INSERT", "a", new=NEW)
    raw = fake.shards["s1"]["records"][0]
    record = normalise_record(raw, STREAM_ARN)
    assert record["eventSourceARN"] == STREAM_ARN
    assert record["dynamodb"]["ApproximateCreationDateTime"] == int(
        dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC).timestamp()
    )
    image = record["dynamodb"]["NewImage"]
    assert image["photo"] == {"B": "AP9wbmc="}
    assert image["tags"] == {"BS": ["eA==", "eQ=="]}
    assert image["n"] == {"N": "1"}
    assert list(record)[:7] == [
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    ]
    json.dumps(record)  # plain JSON, as the Lambda receives it
    assert isinstance(raw["dynamodb"]["NewImage"]["photo"]["B"], bytes)  # the input is left alone


def test_normalise_keeps_an_existing_event_source_arn_and_adds_the_region() -> None:
    record = normalise_record({"eventID": "e", "eventSourceARN": "arn:x", "dynamodb": {}}, STREAM_ARN)
    assert record["eventSourceARN"] == "arn:x"
    assert record["awsRegion"] == "us-east-1"


def test_normalised_records_parse_in_the_core() -> None:
    from fhirpipes.records import parse_record

    fake = FakeStreams()
    fake.add_shard("s1")
    fake.put("s1", "INSERT", "a", new=NEW)
    parsed = parse_record(normalise_record(fake.shards["s1"]["records"][0], STREAM_ARN))
    assert parsed.table == "Patients"
    assert parsed.new is not None and parsed.new["photo"] == b"\x00\xffpng"


# --- lineage -----------------------------------------------------------------------------------


def test_lineage_order_puts_parents_first() -> None:
    shards = [
        ShardState("grandchild", "child", closed=False),
        ShardState("child", "root", closed=True),
        ShardState("other", None, closed=False),
        ShardState("root", "trimmed-away", closed=True),
    ]
    assert [s.shard_id for s in lineage_order(shards)] == ["other", "root", "child", "grandchild"]


def test_children_are_read_only_after_their_parent_is_read_to_its_end() -> None:
    fake = FakeStreams()
    fake.add_shard("parent", closed=True)
    fake.add_shard("child", parent="parent")
    fake.put("parent", "INSERT", "p1", new={"id": {"S": "p1"}})
    fake.put("child", "MODIFY", "c1", new={"id": {"S": "c1"}})
    fake.put("parent", "MODIFY", "p2", new={"id": {"S": "p2"}})
    reader = StreamReader(fake, STREAM_ARN)
    assert [s.shard_id for s in reader.readable()] == ["parent"]
    assert drain(reader) == ["p1", "p2", "c1"]
    assert reader.shards["parent"].finished
    child_iterators = [c for c in fake.calls if c[0] == "get_shard_iterator" and c[1]["ShardId"] == "child"]
    assert child_iterators == [
        ("get_shard_iterator", {"ShardId": "child", "Type": "TRIM_HORIZON", "Seq": None})
    ]


def test_a_child_that_appears_later_is_found_and_read_from_its_start() -> None:
    fake = FakeStreams()
    fake.add_shard("parent")
    fake.put("parent", "INSERT", "p1", new={"id": {"S": "p1"}})
    now = [0.0]
    reader = StreamReader(fake, STREAM_ARN, starting_position="LATEST", clock=lambda: now[0])
    assert drain(reader) == []  # LATEST: p1 predates the reader
    fake.put("parent", "INSERT", "p2", new={"id": {"S": "p2"}})
    fake.close("parent")
    fake.add_shard("child", parent="parent")
    fake.put("child", "INSERT", "c1", new={"id": {"S": "c1"}})
    assert drain(reader) == ["p2", "c1"]


def test_describe_stream_is_paginated() -> None:
    fake = FakeStreams(page_size=2)
    for n in range(5):
        fake.add_shard(f"s{n}")
        fake.put(f"s{n}", "INSERT", f"i{n}", new={"id": {"S": f"i{n}"}})
    reader = StreamReader(fake, STREAM_ARN)
    assert sorted(drain(reader)) == ["i0", "i1", "i2", "i3", "i4"]


# --- starting positions and checkpoints --------------------------------------------------------


def test_latest_skips_closed_shards_and_starts_open_ones_at_the_tip() -> None:
    fake = FakeStreams()
    fake.add_shard("old", closed=True)
    fake.put("old", "INSERT", "o1", new={"id": {"S": "o1"}})
    fake.add_shard("open")
    fake.put("open", "INSERT", "x1", new={"id": {"S": "x1"}})
    reader = StreamReader(fake, STREAM_ARN, starting_position="LATEST")
    assert drain(reader) == []
    fake.put("open", "INSERT", "x2", new={"id": {"S": "x2"}})
    assert drain(reader) == ["x2"]


def test_a_checkpoint_resumes_after_its_sequence_number() -> None:
    fake = FakeStreams()
    fake.add_shard("s1")
    first = fake.put("s1", "INSERT", "a", new={"id": {"S": "a"}})
    fake.put("s1", "INSERT", "b", new={"id": {"S": "b"}})
    reader = StreamReader(fake, STREAM_ARN, positions={"s1": first})
    assert drain(reader) == ["b"]


def test_an_expired_iterator_is_replaced_where_it_was() -> None:
    fake = FakeStreams()
    fake.add_shard("s1")
    fake.put("s1", "INSERT", "a", new={"id": {"S": "a"}})
    reader = StreamReader(fake, STREAM_ARN)
    assert drain(reader) == ["a"]
    fake.put("s1", "INSERT", "b", new={"id": {"S": "b"}})
    fake.expire_next = 1
    assert drain(reader) == ["b"]
    assert (
        "get_shard_iterator",
        {"ShardId": "s1", "Type": "AFTER_SEQUENCE_NUMBER", "Seq": "101"},
    ) in fake.calls


def test_the_starting_position_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        StreamReader(FakeStreams(), STREAM_ARN, starting_position="AT_TIMESTAMP")  # type: ignore[arg-type]


# --- checkpoint file ---------------------------------------------------------------------------


def test_checkpoints_persist_atomically_and_never_go_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "checkpoints.json"
    checkpoints = Checkpoints(path)
    checkpoints.advance("pipe", STREAM_ARN, "s1", "120")
    checkpoints.advance("pipe", STREAM_ARN, "s1", "99")  # older: ignored
    checkpoints.advance("pipe", STREAM_ARN, "s2", "7")
    again = Checkpoints(path)
    assert again.shards("pipe", STREAM_ARN) == {"s1": "120", "s2": "7"}
    assert again.get("other", STREAM_ARN, "s1") is None
    assert json.loads(path.read_text())["version"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["checkpoints.json"]  # no temporary left


def test_memory_only_checkpoints_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    checkpoints = Checkpoints(None)
    checkpoints.advance("pipe", STREAM_ARN, "s1", "1")
    assert checkpoints.get("pipe", STREAM_ARN, "s1") == "1"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"version": 3, "pipes": {}}',
        '{"version": 2, "pipes": {}, "outputs": []}',
        '{"version": 1, "pipes": {"p": 3}}',
    ],
)
def test_a_foreign_checkpoint_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "checkpoints.json"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match="checkpoint file"):
        Checkpoints(path)


def test_a_version_1_checkpoint_file_is_read_and_outputs_are_saved_with_the_shard(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.json"
    path.write_text(json.dumps({"version": 1, "pipes": {"pipe": {STREAM_ARN: {"s1": "5"}}}}))
    checkpoints = Checkpoints(path)
    assert checkpoints.get("pipe", STREAM_ARN, "s1") == "5"
    checkpoints.advance("pipe", STREAM_ARN, "s1", "9", {"file:/x": {"offset": 10, "tail": "ab"}})
    again = Checkpoints(path)
    assert again.get("pipe", STREAM_ARN, "s1") == "9"
    assert again.output("file:/x") == {"offset": 10, "tail": "ab"}
    # The shard did not move but the output did (a batch of filtered records can't do that, but
    # the write must not be skipped if it ever happens).
    again.advance("pipe", STREAM_ARN, "s1", "9", {"file:/x": {"offset": 20, "tail": "cd"}})
    assert Checkpoints(path).output("file:/x") == {"offset": 20, "tail": "cd"}


def test_stream_reads_are_retried_after_a_dropped_connection() -> None:
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

    class Flaky(FakeStreams):
        failures = [
            ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
            ReadTimeoutError(endpoint_url="x"),
        ]

        def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
            if self.failures:
                raise self.failures.pop(0)
            return super().get_records(ShardIterator, Limit)

    fake = Flaky()
    fake.add_shard("s1")
    fake.put("s1", "INSERT", "a")
    sleeps: list[float] = []
    reader = StreamReader(fake, STREAM_ARN, sleep=sleeps.append)
    [shard] = reader.readable()
    assert [r["eventID"] for r in reader.read(shard)] == ["evt-101"]
    assert len(sleeps) == 2


def test_a_starting_position_pipes_has_not_is_refused_naming_those_it_has() -> None:
    from fhirpipes.mapper import STARTING_POSITIONS

    assert STARTING_POSITIONS == ("TRIM_HORIZON", "LATEST")
    with pytest.raises(ConfigurationError, match=r"must be one of TRIM_HORIZON, LATEST$"):
        StreamReader(FakeStreams(), STREAM_ARN, starting_position="AT_TIMESTAMP")  # type: ignore[arg-type]
