"""The built-in Patient mapper: golden files (input batch -> expected output) and its settings.

Regenerate the expected files only on purpose, then review the diff:
``FHIRPIPES_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_patient.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fhirpipes.dispatch import Dispatcher
from fhirpipes.plugins import load_registry
from fhirpipes.settings import Settings
from fhirpipes.testing import golden

CASES = golden.cases(Path(__file__).parent / "golden" / "patient")


@pytest.fixture(scope="module")
def dispatcher() -> Dispatcher:
    return Dispatcher(load_registry(only=["patient"]), Settings())


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
