"""The built-in Patient mapper: the ``Patients`` table (partition key ``id``) to FHIR R4B Patient.

It registers through the ``fhirpipes`` entry point ``patient``, exactly as a third-party plugin
would. Settings (read once at import, i.e. cold start):

``FHIRPIPES_PATIENT_MRN_SYSTEM``        identifier system of the MRN (default ``urn:fhirpipes:mrn``:
                                        set your organisation's).
``FHIRPIPES_PATIENT_BIRTH_DATE_FORMAT`` strptime format of ``birthDate`` (default ``%m-%d-%Y``,
                                        as the original implementation stores ``07-13-1991``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fhirpipes import Mapper, SampleFile, hookimpl

if TYPE_CHECKING:
    from fhirpipes import StreamRecord

MRN_SYSTEM = os.environ.get("FHIRPIPES_PATIENT_MRN_SYSTEM", "urn:fhirpipes:mrn")
BIRTH_DATE_FORMAT = os.environ.get("FHIRPIPES_PATIENT_BIRTH_DATE_FORMAT", "%m-%d-%Y")


def patient_context(record: StreamRecord) -> Mapping[str, Any]:
    """The plugin's settings, as template variables."""
    return {"mrn_system": MRN_SYSTEM, "birth_date_format": BIRTH_DATE_FORMAT}


PATIENT = Mapper(
    table="Patients",
    resource_type="Patient",
    template="patient.json.j2",
    context=patient_context,
    samples=SampleFile(__name__),
)


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    """Register the Patients mapper."""
    register(PATIENT)
