"""The built-in Practitioner mapper: golden files, the NPI check, and its item shape.

Regenerate the expected files only on purpose, then review the diff:
``FHIRPIPES_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_practitioner.py``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirpipes.dispatch import Dispatcher
from fhirpipes.plugins import load_registry
from fhirpipes.settings import Settings
from fhirpipes.testing import golden
from fhirpipes_practitioner import PRACTITIONER, luhn_valid, npi

CASES = golden.cases(Path(__file__).parent / "golden" / "practitioner")


@pytest.fixture(scope="module")
def dispatcher() -> Dispatcher:
    return Dispatcher(load_registry(only=["practitioner"]), Settings())


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
    for name in ("error-npi-check-digit", "error-npi-not-ten-digits", "error-npi-missing"):
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
    from fhirpipes.conversions import ConversionError

    with pytest.raises(ConversionError) as info:
        npi(value)
    assert str(value) not in str(info.value)


def test_npi_passes_none_through() -> None:
    assert npi(None) is None


@given(st.text("0123456789", min_size=9, max_size=9))
def test_exactly_one_check_digit_is_right(body: str) -> None:
    right = [digit for digit in "0123456789" if luhn_valid("80840" + body + digit)]
    assert len(right) == 1
