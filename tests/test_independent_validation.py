"""Outputs checked by two validators that share no code with fhir.resources (nor each other): HL7's FHIR
JSON Schema (R4) and Medplum's ``validateResource`` (R4 4.0.1 StructureDefinitions, run by node).

The golden outputs, the built-in plugins' samples and hypothesis-generated Patients and Practitioners,
mapped through the Lambda handler, must all pass both: `fhirpipes.testing.schema` (HL7's fhir.schema.json
read by `jsonschema`, its patterns with ECMA-262 semantics) and `medplum.MedplumValidator`.

R4 against R4B: the mappers write R4B, the schema is R4 (the one in the registries, and HealthLake's
version). The official R4 4.0.1 and R4B 4.3.0 StructureDefinitions of Patient, Practitioner and every
datatype they use (HumanName, Address, ContactPoint, Identifier, Period, CodeableConcept, Coding, Meta)
have the same elements, cardinalities, types and bindings, so for these two the R4 schema is exact.

Rejections issue 9 listed ("Rejected by the validators") are cases below: ids over 64 characters, systems
that are not URIs and control characters are now refused as record errors (FHIR's own primitive rules,
`fhirpipes.primitives`), and so are Unicode spaces (U+00A0, U+2028, U+3000, U+FEFF ...): FHIR's string
regex is an XML Schema one (there ``\\s`` is only space, tab, CR and LF, so they would be content), but
the HL7 JSON Schema reads it as JavaScript or Python do and refuses them, so fhirpipes refuses them too
(``| fhir_clean`` turns them into spaces).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from medplum import MedplumValidator

from fhirpipes.handler import handler
from fhirpipes.testing.schema import schema_errors, unavailable_reason
from fhirpipes.testing.stream import make_batch, make_record
from fhirpipes_patient import PATIENT
from fhirpipes_practitioner import PRACTITIONER

GOLDEN = Path(__file__).parent / "golden"

pytestmark = pytest.mark.skipif(unavailable_reason("R4B") is not None, reason=str(unavailable_reason("R4B")))


def golden_entities() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(GOLDEN.glob("*/*.expected.json")):
        for index, event in enumerate(json.loads(path.read_text(encoding="utf-8"))):
            entity = (event.get("details") or {}).get("entity")
            if entity:
                yield f"{path.parent.name}/{path.name.split('.')[0]}[{index}]", entity


GOLDEN_ENTITIES = list(golden_entities())


@pytest.fixture(scope="module")
def medplum() -> Iterator[MedplumValidator]:
    validator = MedplumValidator()
    yield validator
    validator.close()


def assert_valid(entity: dict[str, Any], medplum: MedplumValidator) -> None:
    """Both validators accept ``entity``."""
    assert schema_errors(entity) == []
    assert medplum.errors(entity) == []


def test_the_golden_files_carry_resources() -> None:
    kinds = {entity["resourceType"] for _, entity in GOLDEN_ENTITIES}
    assert kinds == {"Patient", "Practitioner"} and len(GOLDEN_ENTITIES) >= 10


@pytest.mark.parametrize(("where", "entity"), GOLDEN_ENTITIES, ids=[where for where, _ in GOLDEN_ENTITIES])
def test_golden_outputs_pass_both_validators(
    where: str, entity: dict[str, Any], medplum: MedplumValidator
) -> None:
    assert_valid(entity, medplum)


def test_the_medplum_validator_is_not_a_rubber_stamp(medplum: MedplumValidator) -> None:
    _, entity = GOLDEN_ENTITIES[0]
    errors = medplum.errors({**entity, "birthDate": "1991-7", "nickname": "x", "name": [{"family": " "}]})
    assert errors and all(":" in error for error in errors)


def test_the_validator_is_not_a_rubber_stamp() -> None:
    _, entity = GOLDEN_ENTITIES[0]
    broken = {**entity, "gender": "banana", "birthDate": "1991-7", "id": "x" * 65, "nickname": "x"}
    errors = schema_errors(broken)
    assert [error.split(":")[0] for error in errors] == ["(resource)", "birthDate", "gender", "id"]
    assert not any("banana" in error for error in errors)  # rules and paths, not values


@pytest.mark.parametrize(
    ("family", "ok"),
    [
        ("Ann Lee", True),
        ("tab\tand\r\nnewlines", True),
        ("next line \x85 and unit separator \x1f", True),  # Python's \s has them, ECMA-262's hasn't
        ("no-break\u00a0space", False),
        ("zero width no-break\ufeff", False),  # ECMA-262's \s has it, Python's hasn't
        ("ideographic\u3000space", False),
    ],
)
def test_patterns_are_read_as_ecma_262(family: str, ok: bool) -> None:
    errors = schema_errors({"resourceType": "Patient", "name": [{"family": family}]})
    string = r"^[ \r\n\t\S]+$"  # the schema's string pattern
    assert errors == ([] if ok else [f"name[0].family: does not match {string!r}"])
    # $ is the end of the text, not "before a final newline": a code can't end with one.
    assert schema_errors({"resourceType": "Patient", "gender": "male\n"}) != []


def mapped(table: str, items: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """The entity each item maps to through the Lambda handler (None for an error event)."""
    events = handler(make_batch(table, items))
    assert len(events) == len(items)
    return [event["details"].get("entity") for event in events]


@pytest.mark.parametrize("mapper", [PATIENT, PRACTITIONER], ids=["patient", "practitioner"])
def test_plugin_samples_pass_both_validators(mapper: Any, medplum: MedplumValidator) -> None:
    entities = mapped(mapper.table, [dict(item) for item in mapper.samples])
    assert entities and all(entities), "every sample maps"
    for index, entity in enumerate(entities):
        assert entity is not None
        assert schema_errors(entity) == [], f"sample {index}"
        assert medplum.errors(entity) == [], f"sample {index}"


# ------------------------------------------------------------------ generated items

ODD = [" ", "   ", "\t", "\n", "a\tb", "  lead", "trail ", "ctrl\u0001char", "\u0000", "a\x1fb", "a\x7fb",
       "x" * 70, "é", "\U0001f600", "a\x85b", "{{ 7 * 7 }}", "quote \" end", "O'Brien", "Ana\u00a0Maria",
       "\u2028", "\ufeffBOM"]  # fmt: skip
text = st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(ODD))
optional_text = st.one_of(st.none(), st.just(""), text)
ids = st.from_regex(r"[A-Za-z0-9\-\.]{1,70}", fullmatch=True)  # over 64: refused, not output
dates = st.sampled_from(["07-13-1991", "02-29-1984", "12-31-1999", "01-01-2000"])
genders = st.sampled_from(["M", "F", "male", "female", "other", "unknown", "U"])
address = st.fixed_dictionaries(
    {},
    optional={
        key: optional_text for key in ("address1", "address2", "city", "state", "postalCode", "country")
    },
)
PEOPLE = {
    key: optional_text
    for key in ("firstName", "middleName", "lastName", "prefix", "suffix", "phone", "email")
}
patients = st.fixed_dictionaries(
    {"id": ids},
    optional={
        **PEOPLE, "gender": genders, "active": st.booleans(), "birthDate": dates, "mobilePhone": optional_text,
        "mrn": optional_text, "address": address,
    },
)  # fmt: skip
qualifications = st.fixed_dictionaries(
    {"code": st.sampled_from(["MD", "DO", "NP", "RN", "BS", "PharmD"])},
    optional={
        "display": optional_text, "issuer": optional_text, "start": dates, "end": dates,
        "system": st.sampled_from(["http://example.org/quals", "urn:oid:2.16.840.1.113883.18.220"]),
    },
)  # fmt: skip
practitioners = st.fixed_dictionaries(
    {"id": ids, "npi": st.sampled_from(["1234567893", "1456789027", "1987654328"])},
    optional={
        **PEOPLE, "gender": genders, "active": st.booleans(), "fax": optional_text, "practiceAddress": address,
        "qualifications": st.lists(qualifications, max_size=3),
    },
)  # fmt: skip

GENERATED = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)


@GENERATED
@given(item=patients)
@pytest.mark.slow  # hypothesis: generated items, each through two validators
def test_generated_patients_pass_both_validators(item: dict[str, Any], medplum: MedplumValidator) -> None:
    (entity,) = mapped("Patients", [item])
    assume(entity is not None)  # refused values are the engine's tests' business; outputs are ours
    assert entity is not None
    assert_valid(entity, medplum)


@GENERATED
@given(item=practitioners)
@pytest.mark.slow  # hypothesis: generated items, each through two validators
def test_generated_practitioners_pass_both_validators(
    item: dict[str, Any], medplum: MedplumValidator
) -> None:
    (entity,) = mapped("Practitioners", [item])
    assume(entity is not None)
    assert entity is not None
    assert_valid(entity, medplum)


# ------------------------------------------------------------------ known rejections (issue 9)

ISSUE = "issue 9, 'Rejected by the validators': "
KNOWN = [
    pytest.param("Patients", {"id": "p" * 65}, "Patient.id", id="id-over-64"),
    pytest.param("Practitioners", {"id": "q1", "npi": "1234567893", "qualifications": [
                     {"code": "MD", "system": "my code system"}]},
                 "Practitioner.qualification[0].code.coding[0].system", id="system-not-a-uri"),
    pytest.param("Patients", {"id": "p1", "lastName": "ctrl\x0bchar"}, "Patient.name[0].family", id="vertical-tab"),
    pytest.param("Practitioners", {"id": "q1", "npi": "1234567893", "phone": "\x0c813"},
                 "Practitioner.telecom[0].value", id="form-feed"),
]  # fmt: skip


@pytest.mark.parametrize(("table", "item", "path"), KNOWN)
def test_known_rejections_are_refused(table: str, item: dict[str, Any], path: str) -> None:
    """What the validators rejected is now a record error naming the FHIR path (never the value)."""
    (event,) = handler(make_batch(table, [item]))
    error = event["details"]["error"]
    assert event["details"]["command"] == "ERROR" and error["path"] == path
    assert not any(str(value)[1:] in json.dumps(error) for value in item.values() if isinstance(value, str))


@pytest.mark.parametrize(
    ("table", "item", "path"),
    [
        ("Patients", {"id": "p1", "firstName": "Ana\u00a0Maria"}, "Patient.name[0].given[0]"),
        ("Patients", {"id": "p1", "address": {"city": "Tampa\u2028FL"}}, "Patient.address[0].city"),
    ],
    ids=["no-break-space", "line-separator"],
)
def test_unicode_spaces_are_refused_as_the_json_schema_refuses_them(
    table: str, item: dict[str, Any], path: str
) -> None:
    """FHIR's string regex ``[ \\r\\n\\t\\S]+`` as the HL7 JSON Schema reads it (JavaScript's or Python's
    ``\\s``) refuses U+00A0 and U+2028: a record error naming the path (``| fhir_clean`` makes them spaces)."""
    events = handler([make_record(table, item)])
    error = events[0]["details"]["error"]
    assert (error["code"], error["path"]) == ("control-character", path)
    assert "Maria" not in json.dumps(error) and "Tampa" not in json.dumps(error)
