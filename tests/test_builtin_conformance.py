"""The built-in Patient and Practitioner mappers, run through the conformance kit like any plugin."""

from __future__ import annotations

from fhirpipes.testing import MapperConformanceTests
from fhirpipes_patient import PATIENT
from fhirpipes_practitioner import PRACTITIONER


class TestPatient(MapperConformanceTests):
    plugin = "patient"
    mapper = PATIENT


class TestPractitioner(MapperConformanceTests):
    plugin = "practitioner"
    mapper = PRACTITIONER
