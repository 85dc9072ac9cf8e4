"""Arbitrary JSON at the Lambda handler: per-record outcomes, JSON-encodable output, no value leaks.

The handler is imported as the Lambda imports it, with the default ``FHIRPIPES_ON_ERROR=emit``
and the built-in mappers. Whatever the batch holds, the handler raises nothing but `BatchError`
(and that only for something that isn't a batch), returns a list `json.dumps` can encode, gives
each record at most one event, in input order, each event one of the documented envelopes, and
no error message, path or log line carries a record value.
"""

from __future__ import annotations

import importlib
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from record_shapes import (
    PATIENT_ATTRIBUTES,
    assert_nothing_quotes,
    deep_json,
    json_values,
    lambda_stack,
    nested,
    record_shaped,
)

from fhirpipes.dispatch import Dispatcher
from fhirpipes.errors import BatchError, RecordError
from fhirpipes.plugins import load_registry
from fhirpipes.records import identify
from fhirpipes.settings import Settings
from fhirpipes.testing.stream import make_record

MARK = "Zq"  # every generated string value carries it; no message, path or log line may
ENVELOPE_KEYS = {"version", "source", "eventType", "correlationId", "eventID", "details"}
ERROR_KEYS = {"code", "message", "path", "template", "line"}


@pytest.fixture(scope="module")
def handler() -> Any:
    module = importlib.import_module("fhirpipes.handler")
    assert module.dispatcher.settings.on_error == "emit", "the test needs FHIRPIPES_ON_ERROR unset"
    return module.handler


# --- inputs ---------------------------------------------------------------------------------

_marked_text = st.text(max_size=10).map(lambda text: f"{MARK}{text}")
_plain_scalars = st.one_of(
    _marked_text,
    st.integers(-(10**20), 10**20),
    st.decimals(-(10**9), 10**9, places=3),
    st.floats(-1e9, 1e9).map(lambda number: round(number, 3)),
    st.booleans(),
    st.none(),
    st.sampled_from(["M", "F", "u", "", " ", "07-13-1991", "1991-07-13", "1234567893", "MD", "\t"]),
)
_nested_names = st.sampled_from(
    ["address1", "address2", "city", "state", "postalCode", "code", "start", "end"]
)
_plain_values = st.recursive(
    _plain_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(_nested_names | _marked_text, children, max_size=4)
    ),
    max_leaves=12,
)
_items = st.dictionaries(
    st.sampled_from([*PATIENT_ATTRIBUTES, "fax", "practiceAddress"]), _plain_values, max_size=10
)


@st.composite
def _item_records(draw: st.DrawFn) -> dict[str, Any]:
    """Records as a stream sends them, from items with arbitrary values in every attribute."""
    table = draw(st.sampled_from(["Patients", "Practitioners", "Other"]))
    event_name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    new = draw(_items) if event_name != "REMOVE" else None
    old = draw(st.none() | _items) if event_name != "INSERT" else None
    key = draw(_marked_text | st.sampled_from(["abc", "pr-0001"]) | st.integers(0, 99))
    return make_record(table, new, old, keys={"id": key}, event_name=event_name)


# Item records three times out of five: they reach the mappers' templates and the resource model.
_records = st.one_of(_item_records(), _item_records(), _item_records(), record_shaped, json_values)
_batches = st.one_of(
    st.lists(_records, max_size=6),
    st.lists(_records, max_size=6).map(lambda records: {"Records": records}),
    _item_records(),
)
_not_batches = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),
    st.floats(allow_nan=False),
    st.lists(_records).map(tuple),
) | st.dictionaries(st.just("Records"), json_values.filter(lambda v: not isinstance(v, list)), min_size=1)


# --- checks ---------------------------------------------------------------------------------


def records_in(batch: Any) -> list[Any]:
    if isinstance(batch, list):
        return batch
    return batch["Records"] if "Records" in batch and "dynamodb" not in batch else [batch]


def check_envelope(event: Any) -> None:
    assert isinstance(event, dict) and event.keys() == ENVELOPE_KEYS, event
    assert event["version"] == "1.0"
    assert event["correlationId"] == event["eventID"]
    assert isinstance(event["source"], str) and isinstance(event["eventType"], str)
    details = event["details"]
    command = details["command"]
    if command == "ERROR":
        assert details.keys() == {"command", "error", "record"}
        assert event["eventType"].endswith("MappingFailed")
        error = details["error"]
        assert error.keys() == ERROR_KEYS
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
        assert error["path"] is None or isinstance(error["path"], str)
        return
    assert command in ("PUT", "DELETE"), command
    assert details.keys() == {"command", "entity"}
    assert isinstance(event["eventID"], str)
    entity = details["entity"]
    assert event["eventType"] == f"{entity['resourceType']}Change"
    if command == "DELETE":
        assert entity.keys() == {"resourceType", "id", "meta"}  # meta: its lineage, as a PUT's


def check_one_event_per_record(records: list[Any], events: list[dict[str, Any]]) -> None:
    """Each event belongs to a later record than the one before it (greedy, in input order)."""
    position = 0
    for event in events:
        details = event["details"]
        while position < len(records):
            raw = records[position]
            position += 1
            if details["command"] == "ERROR" and details["record"] is raw:
                break
            if details["command"] != "ERROR" and identify(raw)[0] == event["eventID"]:
                break
        else:
            pytest.fail(f"more events than records, or out of order: {len(events)} for {len(records)}")


def check_no_value_told(events: list[dict[str, Any]], logged: str) -> None:
    told = json.dumps([event["details"]["error"] for event in events if "error" in event["details"]])
    assert MARK not in told, told
    assert MARK not in logged


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(_batches)
@pytest.mark.slow  # hypothesis: 300 batches
def test_any_batch_gives_one_documented_outcome_per_record(
    handler: Any, log_lines: io.StringIO, batch: Any
) -> None:
    log_lines.seek(0)
    log_lines.truncate()
    with lambda_stack():
        try:
            json.loads(json.dumps(batch))
        except RecursionError:
            reject()  # nested too deep for the runtime's JSON parser: no Lambda receives it
        events = handler(batch)
    assert isinstance(events, list)
    json.dumps(events, allow_nan=False)
    for event in events:
        check_envelope(event)
    check_one_event_per_record(records_in(batch), events)
    check_no_value_told(events, log_lines.getvalue())


@settings(max_examples=100, deadline=None, database=None)
@given(_not_batches)
@pytest.mark.slow  # hypothesis: 100 events
def test_only_what_is_not_a_batch_raises_and_only_batch_error(handler: Any, event: Any) -> None:
    with pytest.raises(BatchError):
        handler(event)


def test_the_examples_the_issues_name(handler: Any, log_lines: io.StringIO) -> None:
    good = make_record("Patients", {"id": "abc", "lastName": "Smith"})
    unhashable = {"eventID": "e", "eventName": []}
    deep = [make_record("Patients", {"id": "abc"}) for _ in range(2)]
    deep[0]["dynamodb"]["NewImage"]["notes"] = nested(331, "L")
    deep[1]["dynamodb"]["NewImage"]["notes"] = {"M": {"MRN-Zq": nested(449, "M")}}
    unknown_type = make_record("Patients", {"id": "abc"})
    unknown_type["dynamodb"]["NewImage"]["lastName"] = {
        "ZqMRN12345678": "x"
    }  # the old message quoted 8 characters
    nested_key = make_record("Patients", {"id": "abc", "allergies": {"MRN-0042-Zq": Decimal(1)}})
    nested_key["dynamodb"]["NewImage"]["allergies"]["M"]["MRN-0042-Zq"] = {"N": "NaN"}
    with lambda_stack():
        events = handler([unhashable, *deep, unknown_type, nested_key, good])
    assert [event["details"]["command"] for event in events] == ["ERROR"] * 5 + ["PUT"]
    assert {event["details"]["error"]["code"] for event in events[:5]} == {"malformed-record"}
    assert events[4]["details"]["error"]["path"] == "dynamodb.NewImage.allergies.<key 0>"
    check_no_value_told(events, log_lines.getvalue())
    json.dumps(events)


def test_a_record_as_deep_as_the_parser_reads_is_still_an_error_event(handler: Any) -> None:
    with lambda_stack():
        for levels in range(1000, 900, -1):  # the deepest record the JSON parser reads here
            try:
                batch = json.loads(json.dumps([{"eventID": "e", "x": deep_json(levels)}]))
            except RecursionError:
                continue
            break
        events = handler(batch)
    assert [event["details"]["command"] for event in events] == ["ERROR"]


@pytest.fixture(scope="module")
def raising() -> Dispatcher:
    return Dispatcher(load_registry(), Settings(on_error="raise"))


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(_records, min_size=1, max_size=3))
@pytest.mark.slow  # hypothesis: 200 batches
def test_with_on_error_raise_the_exception_chain_holds_no_value(raising: Dispatcher, batch: Any) -> None:
    try:
        with lambda_stack():
            try:
                json.loads(json.dumps(batch))
            except RecursionError:
                reject()  # nested too deep for the runtime's JSON parser: no Lambda receives it
            raising.map_batch(batch)
    except RecordError as exc:
        assert_nothing_quotes(exc, MARK)
