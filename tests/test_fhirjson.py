"""`fhirjson.to_json_value` gives exactly what fhir.resources serialises, and checks required value sets."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirpipes.fhirjson import ValueSetError, to_json_value
from fhirpipes.resource import model_class

CONTROLS = "".join(chr(code) for code in range(32) if chr(code) not in "\t\r\n") + (
    "\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)  # and the Unicode spaces FHIR strings refuse (fhirpipes.primitives.CONTROL)

RESOURCES: list[tuple[str, str, dict[str, Any]]] = [
    ("R4B", "Patient", {
        "id": "p1", "active": "yes", "gender": "female", "birthDate": "1984-02",
        "deceasedDateTime": "2020-01-01T10:00:00Z",
        "_birthDate": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
        "multipleBirthInteger": "2",
        "name": [{"family": "Garcia", "given": ["Maria", "Luisa"], "_given": [None, {"id": "g2"}]}],
        "telecom": [{"system": "phone", "value": "1", "use": "mobile", "rank": 1}],
        "address": [{"line": ["1"], "period": {"start": "2020-01-01T00:00:00+01:00"}}],
        "photo": [{"contentType": "image/png", "data": "AAEC"}],
    }),
    ("R4B", "Observation", {
        "status": "final", "code": {"text": "t"}, "effectiveInstant": "2024-05-01T12:00:00.123Z",
        "valueQuantity": {"value": Decimal("98.60"), "unit": "F"},
        "component": [
            {"code": {"text": "c"}, "valueInteger": 7},
            {"code": {"text": "d"}, "valueTime": "10:30:00"},
        ],
    }),
    ("R5", "Patient", {"id": "p2", "gender": "other", "name": [{"text": "X"}], "birthDate": "2000-01-01"}),
    ("R4B", "Practitioner", {
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
        "qualification": [{"code": {"text": "MD"}, "period": {"start": "2010-06-01", "end": "2030"}}],
    }),
]  # fmt: skip


@pytest.mark.parametrize(
    ("version", "resource_type", "data"), RESOURCES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_same_json_value_as_fhir_resources(version: str, resource_type: str, data: dict[str, Any]) -> None:
    model = model_class(resource_type, version).model_validate(data)
    assert to_json_value(model) == json.loads(model.model_dump_json())


# Any text but the control characters FHIR refuses (tests/test_primitives.py has those).
fhir_text = st.text(
    st.characters(blacklist_characters=CONTROLS, blacklist_categories=("Cs",)), min_size=1
).filter(str.strip)


@settings(max_examples=150, deadline=None, database=None)
@given(
    family=fhir_text,
    given_names=st.lists(fhir_text, max_size=3),
    gender=st.sampled_from(["male", "female", "other", "unknown"]),
    active=st.sampled_from([True, False, "true", "false", 1, 0]),
    value=st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**9), max_value=10**9),
)
def test_same_json_value_on_generated_resources(
    family: str, given_names: list[str], gender: str, active: Any, value: Decimal
) -> None:
    patient = model_class("Patient", "R4B").model_validate(
        {"name": [{"family": family, "given": given_names}], "gender": gender, "active": active}
    )
    assert to_json_value(patient) == json.loads(patient.model_dump_json())
    observation = model_class("Observation", "R4B").model_validate(
        {"status": "final", "code": {"text": family}, "valueQuantity": {"value": value}}
    )
    assert to_json_value(observation) == json.loads(observation.model_dump_json())


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"gender": "banana"}, "gender"),
        ({"name": [{"use": "nick"}]}, "name[0].use"),
        (
            {"telecom": [{"system": "phone", "value": "1"}, {"system": "pigeon", "value": "1"}]},
            "telecom[1].system",
        ),
        ({"telecom": [{"use": "cell", "value": "1"}]}, "telecom[0].use"),
        ({"address": [{"use": "holiday"}]}, "address[0].use"),
        ({"address": [{"type": "virtual"}]}, "address[0].type"),
        ({"identifier": [{"use": "primary", "value": "1"}]}, "identifier[0].use"),
        ({"contact": [{"gender": "banana"}]}, "contact[0].gender"),
    ],
)
def test_required_value_sets_are_enforced(data: dict[str, Any], path: str) -> None:
    model = model_class("Patient", "R4B").model_validate(data)  # fhir.resources itself accepts these
    with pytest.raises(ValueSetError) as caught:
        to_json_value(model)
    assert caught.value.path == path
