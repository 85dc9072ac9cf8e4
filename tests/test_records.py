"""Stream records: any shape of input is a `MalformedRecordError` or a record, never another exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from record_shapes import assert_nothing_quotes, json_values, nested, record_shaped

from fhirpipes.errors import BatchError, MalformedRecordError
from fhirpipes.records import identify, parse_record, records_of
from fhirpipes.testing.stream import make_record


def patient(**changes: Any) -> dict[str, Any]:
    record = make_record("Patients", {"id": "abc", "lastName": "Smith"})
    record.update(changes)
    return record


def with_dynamodb(**changes: Any) -> dict[str, Any]:
    record = patient()
    record["dynamodb"] = {**record["dynamodb"], **changes}
    return record


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ([], None),
        ("INSERT", None),
        (None, None),
        (patient(eventID=["e"]), "eventID"),
        (patient(eventID={"S": "e"}), "eventID"),
        ({"eventID": "e", "eventName": []}, "eventName"),  # unhashable: TypeError before
        (patient(eventName={"INSERT": 1}), "eventName"),
        (patient(eventName=["INSERT"]), "eventName"),
        (patient(eventName=1.5), "eventName"),
        (patient(eventSourceARN=["arn"]), "eventSourceARN"),
        (patient(eventSourceARN={}), "eventSourceARN"),
        (patient(eventSourceARN="arn:aws:dynamodb:us-east-1:1:table/"), "eventSourceARN"),
        (patient(dynamodb=[]), "dynamodb"),
        (patient(dynamodb="x"), "dynamodb"),
        (with_dynamodb(Keys=[]), "dynamodb.Keys"),
        (with_dynamodb(Keys={"id": ["S", "abc"]}), "dynamodb.Keys.id"),
        (with_dynamodb(NewImage=None), "dynamodb.NewImage"),
        (with_dynamodb(NewImage={"lastName": {"S": ["Smith"]}}), "dynamodb.NewImage.lastName"),
        (with_dynamodb(NewImage={"lastName": {"S": {"Smith": 1}}}), "dynamodb.NewImage.lastName"),
        (with_dynamodb(OldImage={"x": {"M": {"y": {"NULL": [True]}}}}), "dynamodb.OldImage.x.<key 0>"),
        (with_dynamodb(OldImage={"x": nested(40)}), "dynamodb.OldImage.x" + ".<key 0>" * 31),
    ],
)
def test_every_wrong_shape_is_a_malformed_record(raw: Any, path: str | None) -> None:
    with pytest.raises(MalformedRecordError) as caught:
        parse_record(raw)
    assert caught.value.path == path
    assert caught.value.code == "malformed-record"


def test_a_malformed_record_still_says_which_record_it_was() -> None:
    raw = with_dynamodb(NewImage={"lastName": {"X": "1"}})
    with pytest.raises(MalformedRecordError) as caught:
        parse_record(raw)
    assert (caught.value.event_id, caught.value.table) == (raw["eventID"], "Patients")
    assert caught.value.sequence_number == raw["dynamodb"]["SequenceNumber"]


def test_images_at_dynamodbs_own_depth_parse() -> None:
    record = parse_record(with_dynamodb(NewImage={"id": {"S": "abc"}, "deep": nested(32, "L")}))
    assert record.new is not None and record.new["id"] == "abc"


@pytest.mark.parametrize(
    ("raw", "secrets"),
    [
        (with_dynamodb(NewImage={"lastName": {"MRN12345678": "x"}}), ["MRN1"]),
        (with_dynamodb(NewImage={"allergies": {"M": {"MRN-0042-x": {"N": "NaN"}}}}), ["MRN-0042"]),
        (with_dynamodb(NewImage={"mrn": {"N": "MRN-SECRET-9"}}), ["SECRET"]),
        (with_dynamodb(NewImage={"photo": {"B": "PHI-Zq-not-base64"}}), ["Zq"]),
        (with_dynamodb(NewImage={"n": {"N": "123456789" * 5}}), ["12345"]),
        (with_dynamodb(Keys={"id": {"Q-PHI-Zq": "x"}}), ["Zq"]),
        (patient(eventName="PHI-Zq-INSERT"), ["Zq"]),
        (patient(eventSourceARN="arn:aws:sqs:PHI-Zq"), ["Zq"]),
    ],
)
def test_no_value_in_message_path_or_chain(raw: dict[str, Any], secrets: list[str]) -> None:
    with pytest.raises(MalformedRecordError) as caught:
        parse_record(raw)
    assert_nothing_quotes(caught.value, *secrets)
    error_event_fields = json.dumps(caught.value.to_dict())
    assert not any(secret in error_event_fields for secret in secrets)


def test_records_of_accepts_the_three_shapes_and_refuses_the_rest() -> None:
    one = patient()
    assert records_of([one, 1]) == [one, 1]
    assert records_of({"Records": [one]}) == [one]
    assert records_of(one) == [one]
    for not_a_batch in ("x", 1, None, 1.5, True, {"Records": {"a": 1}}, {"Records": None}):
        with pytest.raises(BatchError):
            records_of(not_a_batch)


# --- arbitrary input: parse_record raises MalformedRecordError or nothing -------------------


@settings(max_examples=400, deadline=None, database=None)
@given(st.one_of(json_values, record_shaped))
@pytest.mark.slow  # hypothesis: 400 inputs
def test_any_input_is_a_record_or_a_malformed_record(raw: Any) -> None:
    assert len(identify(raw)) == 3
    try:
        assert isinstance(records_of(raw), list)
    except BatchError:  # only for what is not a batch: neither a list nor an object, or bad Records
        if isinstance(raw, dict):
            assert "Records" in raw and "dynamodb" not in raw and not isinstance(raw["Records"], list)
        else:
            assert not isinstance(raw, list)
    try:
        record = parse_record(raw)
    except MalformedRecordError as exc:
        assert exc.code == "malformed-record"
        return
    assert record.event_name in {"INSERT", "MODIFY", "REMOVE"}
    assert isinstance(record.keys, dict)
