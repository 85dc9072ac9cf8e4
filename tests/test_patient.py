"""The built-in Patient mapper: the conformance kit, golden files (input batch -> expected output), its settings.

Regenerate the expected files only on purpose, then review the diff:
``FHIRPIPES_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_patient.py``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from fhirpipes.dispatch import Dispatcher
from fhirpipes.testing import MapperConformanceTests, golden
from fhirpipes_patient import PATIENT

CASES = golden.cases(Path(__file__).parent / "golden" / "patient")


class TestPatient(MapperConformanceTests):
    """The kit's checks, run on the built-in mapper like on any plugin."""

    plugin = "patient"
    mapper = PATIENT


def test_golden_cases_cover_every_kind_of_change() -> None:
    names = {case.name for case in CASES}
    assert {
        "insert-original",
        "insert-full",
        "insert-minimal",
        "modify",
        "modify-unchanged",
        "remove",
    } <= names
    assert sum(name.startswith("error-") for name in names) >= 5


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_golden(case: golden.GoldenCase, dispatcher: Dispatcher) -> None:
    golden.check(case, dispatcher.map_batch(case.load_input()))


def test_the_mrn_system_is_configurable(monkeypatch: pytest.MonkeyPatch, dispatcher: Dispatcher) -> None:
    import subprocess
    import sys

    import fhirpipes_patient
    from fhirpipes.testing.stream import make_record

    system = "urn:oid:2.16.840.1.113883.19.5"
    read = subprocess.run(
        [sys.executable, "-c", "import fhirpipes_patient; print(fhirpipes_patient.MRN_SYSTEM)"],
        env={**__import__("os").environ, "FHIRPIPES_PATIENT_MRN_SYSTEM": system},
        capture_output=True,
        text=True,
        check=True,
    )
    assert read.stdout.strip() == system  # read from the environment at cold start
    monkeypatch.setattr(fhirpipes_patient, "MRN_SYSTEM", system)
    [event] = dispatcher.map_batch([make_record("Patients", {"id": "1", "mrn": "M-1"})])
    [identifier] = event["details"]["entity"]["identifier"]
    assert identifier["system"] == system
    assert identifier["value"] == "M-1"
    assert identifier["type"]["coding"][0]["code"] == "MR"


@pytest.mark.parametrize(
    ("stored", "gender"),
    [
        ("M", "male"),
        ("f", "female"),
        ("Female", "female"),
        (" male ", "male"),
        ("X", "other"),
        ("U", "unknown"),
    ],
)
def test_gender_as_people_store_it(stored: str, gender: str, dispatcher: Dispatcher) -> None:
    from fhirpipes.testing.stream import make_record

    [event] = dispatcher.map_batch([make_record("Patients", {"id": "1", "gender": stored})])
    assert event["details"]["entity"]["gender"] == gender


# ---------------------------------------------------------------- nothing invented

EMPTY = ["", None, "   ", "\t"]


def entity_of(dispatcher: Dispatcher, item: dict[str, object]) -> dict[str, object]:
    from fhirpipes.testing.stream import make_record

    [event] = dispatcher.map_batch([make_record("Patients", item)])
    assert event["details"]["command"] == "PUT", event["details"].get("error")
    entity: dict[str, object] = event["details"]["entity"]
    return entity


@pytest.mark.parametrize(("stored", "written"), [(True, True), (False, False)])
def test_active_comes_from_the_item(stored: bool, written: bool, dispatcher: Dispatcher) -> None:
    assert entity_of(dispatcher, {"id": "1", "active": stored})["active"] is written


@pytest.mark.parametrize("item", [{"id": "1"}, {"id": "1", "active": None}], ids=["absent", "NULL"])
def test_no_active_without_one_in_the_item(item: dict[str, object], dispatcher: Dispatcher) -> None:
    # FHIR reads an absent active as true; writing true would assert what nobody recorded.
    assert "active" not in entity_of(dispatcher, item)


@pytest.mark.parametrize("empty", EMPTY)
def test_an_empty_mrn_gives_no_identifier(empty: object, dispatcher: Dispatcher) -> None:
    assert "identifier" not in entity_of(dispatcher, {"id": "1", "lastName": "Smith", "mrn": empty})


@pytest.mark.parametrize("empty", EMPTY)
@pytest.mark.parametrize("attribute", ["phone", "mobilePhone", "email"])
def test_an_empty_phone_or_email_gives_no_telecom(
    attribute: str, empty: object, dispatcher: Dispatcher
) -> None:
    assert "telecom" not in entity_of(dispatcher, {"id": "1", attribute: empty})
    # Beside one that has a value, only that one.
    other, kept = ("phone", {"system": "phone", "value": "+1 555", "use": "home"})
    if attribute == "phone":
        other, kept = ("email", {"system": "email", "value": "+1 555"})
    assert entity_of(dispatcher, {"id": "1", attribute: empty, other: "+1 555"})["telecom"] == [kept]


@pytest.mark.parametrize(
    "address",
    [{}, {"zip": "33612", "street": "Main"}, {"city": " ", "address1": "", "state": None, "country": "\t"}],
    ids=["empty", "unknown-keys", "blank-parts"],
)
def test_an_address_without_a_known_part_gives_no_address(
    address: dict[str, object], dispatcher: Dispatcher
) -> None:
    assert "address" not in entity_of(dispatcher, {"id": "1", "address": address})


@pytest.mark.parametrize("empty", EMPTY)
def test_an_empty_address_gives_no_address(empty: object, dispatcher: Dispatcher) -> None:
    assert "address" not in entity_of(dispatcher, {"id": "1", "address": empty})


def test_one_part_makes_an_address_and_blank_parts_stay_out(dispatcher: Dispatcher) -> None:
    entity = entity_of(dispatcher, {"id": "1", "address": {"address1": " ", "address2": "Apt 4", "city": ""}})
    assert entity["address"] == [{"use": "home", "line": ["Apt 4"]}]


@pytest.mark.parametrize(
    ("address", "kind"),
    [("453 Ralph Road, Tampa", "a string"), (Decimal(33612), "a number"), (["453 Ralph Road"], "a list"),
     (True, "a boolean")],
)  # fmt: skip
def test_an_address_that_is_not_a_map_is_a_record_error_naming_it(
    address: object, kind: str, dispatcher: Dispatcher
) -> None:
    from fhirpipes.testing.stream import make_record

    [event] = dispatcher.map_batch([make_record("Patients", {"id": "1", "address": address})])
    error = event["details"]["error"]
    assert event["details"]["command"] == "ERROR"
    assert error["code"] == "conversion-failed"
    assert error["message"] == f"address must be a map (DynamoDB M), not {kind}"
    assert error["template"] == "patient.json.j2" and error["line"] is not None
    assert "Ralph" not in json.dumps(error) and "33612" not in json.dumps(error)


@pytest.mark.parametrize("empty", EMPTY)
def test_every_attribute_empty_gives_only_the_id(empty: object, dispatcher: Dispatcher) -> None:
    attributes = ["mrn", "prefix", "firstName", "middleName", "lastName", "suffix", "gender", "birthDate",
                  "active", "phone", "mobilePhone", "email", "address"]  # fmt: skip
    entity = entity_of(dispatcher, {"id": "1", **dict.fromkeys(attributes, empty)})
    assert set(entity) == {"resourceType", "id", "meta"}
