"""The conversion filters templates use: dates, date-times with a zone, code maps, deterministic ids."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from fhirpipes.conversions import ConversionError, code_map, fhir_date, fhir_datetime, fhir_gender, uuid5


@pytest.mark.parametrize(
    ("value", "source_format", "expected"),
    [
        ("07-13-1991", "%m-%d-%Y", "1991-07-13"),
        ("13/07/1991", "%d/%m/%Y", "1991-07-13"),
        ("1991-07-13", "%Y-%m-%d", "1991-07-13"),
        (" 02-29-1984 ", "%m-%d-%Y", "1984-02-29"),
        (None, "%m-%d-%Y", None),
    ],
)
def test_fhir_date(value: Any, source_format: str, expected: str | None) -> None:
    assert fhir_date(value, source_format) == expected


@pytest.mark.parametrize("value", ["02-30-1984", "1991-07-13", "", 19910713])
def test_fhir_date_refuses_without_quoting(value: Any) -> None:
    with pytest.raises(ConversionError) as caught:
        fhir_date(value, "%m-%d-%Y")
    assert str(value) not in str(caught.value) or value == ""


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        ("2024-05-01T12:30:00Z", {}, "2024-05-01T12:30:00+00:00"),
        ("2024-05-01T12:30:00", {"tz": "America/New_York"}, "2024-05-01T12:30:00-04:00"),
        (
            "05/01/2024 12:30",
            {"source_format": "%m/%d/%Y %H:%M", "tz": "Europe/Paris"},
            "2024-05-01T12:30:00+02:00",
        ),
        (Decimal("1700000000"), {}, "2023-11-14T22:13:20+00:00"),
        (None, {}, None),
    ],
)
def test_fhir_datetime_always_has_a_zone(value: Any, kwargs: dict[str, Any], expected: str | None) -> None:
    assert fhir_datetime(value, **kwargs) == expected


@pytest.mark.parametrize(
    ("value", "kwargs"), [("yesterday", {}), ("2024-05-01", {"tz": "Mars/Olympus"}), (True, {})]
)
def test_fhir_datetime_refuses(value: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConversionError):
        fhir_datetime(value, **kwargs)


def test_code_map_ignores_case_and_blanks_and_refuses_unknown_codes() -> None:
    mapping = {"S": "single", "M": "married"}
    assert code_map(" m ", mapping) == "married"
    assert code_map("x", mapping, "unknown") == "unknown"
    assert code_map(None, mapping) is None
    with pytest.raises(ConversionError, match="not in the code map"):
        code_map("x", mapping)


@pytest.mark.parametrize(
    ("value", "expected"), [("M", "male"), ("woman", "female"), ("X", "other"), ("", "unknown")]
)
def test_gender_codes(value: str, expected: str) -> None:
    assert fhir_gender(value) == expected


def test_uuid5_is_deterministic() -> None:
    assert uuid5("Patients", "abc") == uuid5("Patients", "abc") != uuid5("Patients", "abd")
    assert uuid.UUID(uuid5("x")).version == 5
