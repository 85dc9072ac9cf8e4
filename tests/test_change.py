"""``skip_unchanged`` decided from what the template reads, checked against building both resources."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirpipes import engine
from fhirpipes.change import reads_agree
from fhirpipes.dispatch import Dispatcher
from fhirpipes.errors import RecordError
from fhirpipes.plugins import load_registry
from fhirpipes.records import parse_record
from fhirpipes.resource import base_context, finish, resource_value
from fhirpipes.testing.stream import make_record

DISPATCHER = Dispatcher(load_registry())

ABSENT: Any = object()
TEXT = st.sampled_from(["Smith", "Smyth", "smith", "", " ", "Ünïcødé", "O'Brien"])
ODD = st.sampled_from([None, True, False, Decimal("1"), Decimal("1.0"), Decimal("0"), "true", "1"])
VALUES = {
    "lastName": TEXT | ODD,
    "firstName": TEXT | ODD,
    "middleName": TEXT,
    "gender": st.sampled_from(["M", "male", "F", "f", "x", "unknown", "banana", "", None]),
    "active": st.sampled_from([True, False, "true", "false", Decimal("1"), None]),
    "birthDate": st.sampled_from(["07-13-1991", "7-13-1991", "13-07-1991", "1991-07-13", "", None]),
    "mrn": st.sampled_from(["MRN1", "MRN2", "", Decimal("12")]),
    "phone": st.sampled_from(["555-0100", "555-0101", None]),
    "email": st.sampled_from(["a@example.org", "b@example.org"]),
    "address": st.sampled_from(
        [{}, {"city": "Tampa"}, {"city": "tampa"}, {"city": "Tampa", "state": "FL"}, "a string", None]
    ),
    "note": st.sampled_from(["x" * 470, "y" * 470]),  # not mapped
    "visits": st.sampled_from([Decimal("3"), Decimal("4")]),  # not mapped
    "qualifications": st.sampled_from(
        [[], [{"code": "MD"}], [{"code": "MD", "start": "01-02-2003"}], [{"code": "DO"}], [{"code": None}]]
    ),
    "npi": st.sampled_from(["1234567893", "1234567890", Decimal("1234567893")]),
}


@st.composite
def image_pairs(draw: st.DrawFn, attributes: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    old: dict[str, Any] = {"id": "k-1"}
    for name in attributes:
        value = draw(st.just(ABSENT) | VALUES[name])
        if value is not ABSENT:
            old[name] = value
    new = dict(old)
    for name in draw(st.lists(st.sampled_from(attributes), max_size=3)):
        value = draw(st.just(ABSENT) | VALUES[name])
        if value is ABSENT:
            new.pop(name, None)
        else:
            new[name] = value
    return new, old


def reference(table: str, new: dict[str, Any], old: dict[str, Any]) -> tuple[str, Any]:
    """Today's documented meaning, the slow way: build both resources and compare them."""
    record = parse_record(make_record(table, new, old))
    mapper = DISPATCHER.registry.mapper_for(record)
    context = base_context(mapper, record, DISPATCHER._pipe_variables(record, None))
    try:
        entity = finish(mapper, record, resource_value(mapper, context, record.new))
    except RecordError:
        return "error", None
    try:
        before = finish(mapper, record, resource_value(mapper, context, record.old))
    except RecordError:
        return "put", entity
    return ("skip", None) if before == entity else ("put", entity)


PATIENT = ("lastName", "firstName", "middleName", "gender", "active", "birthDate", "mrn", "phone", "email",
           "address", "note", "visits")  # fmt: skip
PRACTITIONER = ("lastName", "firstName", "gender", "active", "phone", "qualifications", "npi", "note")


@pytest.mark.parametrize(("table", "attributes"), [("Patients", PATIENT), ("Practitioners", PRACTITIONER)])
@settings(max_examples=400, deadline=None, database=None)
@given(data=st.data())
@pytest.mark.slow  # hypothesis: 400 pairs of items, each mapped twice
def test_skipping_a_modify_means_what_building_both_resources_means(
    table: str, attributes: tuple[str, ...], data: st.DataObject
) -> None:
    new, old = data.draw(image_pairs(attributes))
    expected, entity = reference(table, new, old)
    outcome = DISPATCHER.map_record(make_record(table, new, old))
    if expected == "put":
        assert outcome.status == "mapped"
        assert outcome.event is not None and outcome.event["details"]["entity"] == entity
    elif expected == "skip":
        assert outcome.status == "skipped"
    else:
        # An item that doesn't map: reported, unless the MODIFY touched nothing the template reads.
        mapper = DISPATCHER.registry.mapper_for(parse_record(make_record(table, new, old)))
        reads = engine.load(mapper.template_package, mapper.template).reads
        assert reads is not None
        assert outcome.status == ("skipped" if reads_agree(reads, new, old) else "failed")


def test_a_modify_of_unmapped_attributes_renders_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("rendered")

    monkeypatch.setattr("fhirpipes.dispatch.resource_value", refuse)
    old = {"id": "k-1", "lastName": "Smith", "note": "a"}
    assert DISPATCHER.map_record(make_record("Patients", {**old, "note": "b"}, old)).status == "skipped"
