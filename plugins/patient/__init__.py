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
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fhirpipes import Mapper, SampleFile, hookimpl
from fhirpipes.conversions import ConversionError
from fhirpipes.engine import Missing

if TYPE_CHECKING:
    from fhirpipes.records import StreamRecord

MRN_SYSTEM = os.environ.get("FHIRPIPES_PATIENT_MRN_SYSTEM", "urn:fhirpipes:mrn")
BIRTH_DATE_FORMAT = os.environ.get("FHIRPIPES_PATIENT_BIRTH_DATE_FORMAT", "%m-%d-%Y")


_KINDS = {str: "a string", bool: "a boolean", list: "a list", set: "a set", bytes: "binary"}


def kind_of(value: Any) -> str:
    """What a DynamoDB value is, in words, for error messages (a type, never the value)."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return "a number"
    return next((words for kind, words in _KINDS.items() if isinstance(value, kind)), "another type")


def as_map(value: Any, attribute: str) -> Mapping[str, Any]:
    """``value`` if it is a map; ``{}`` if it is NULL, empty or whitespace (no value).

    Anything else (a string, a number, a list, ...) raises `ConversionError` naming ``attribute``
    (template text, never record data): an address stored as one string is not silently dropped.
    """
    if isinstance(value, Missing):
        value.fail()
    if isinstance(value, Mapping):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    raise ConversionError(f"{attribute} must be a map (DynamoDB M), not {kind_of(value)}")


def patient_context(record: StreamRecord) -> Mapping[str, Any]:
    """The plugin's settings and its one helper, as template variables."""
    return {"mrn_system": MRN_SYSTEM, "birth_date_format": BIRTH_DATE_FORMAT, "as_map": as_map}


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
