"""The built-in Practitioner mapper: ``Practitioners`` (partition key ``id``) to FHIR R4B Practitioner.

It registers through the ``fhirpipes`` entry point ``practitioner``, exactly as a third-party
plugin would, and changes nothing in the core: its one rule the shared filters don't know (the
NPI check digit) is a function its ``context`` hook hands to the template. The item shape is
documented in this folder's README.md; ``samples.json`` beside it feeds the conformance kit.

Settings (read once at import, i.e. cold start):

``FHIRPIPES_PRACTITIONER_DATE_FORMAT``  strptime format of qualification ``start``/``end``
                                        (default ``%Y-%m-%d``).
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

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
QUALIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0360"
"""HL7 v2 table 0360 (degree/license/certificate): MD, DO, RN, NP, PA, ..."""
DATE_FORMAT = os.environ.get("FHIRPIPES_PRACTITIONER_DATE_FORMAT", "%Y-%m-%d")

_NPI_PREFIX = "80840"
"""ISO 7812 prefix of US health identifiers: an NPI's check digit is the Luhn digit of 80840 + 9 digits."""


def luhn_valid(digits: str) -> bool:
    """Whether the last digit of ``digits`` is the Luhn check digit of the others."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def npi(value: Any) -> str | None:
    """A National Provider Identifier, checked: 10 digits whose last is the Luhn check digit.

    Takes the NPI as a string or a DynamoDB number; ``None`` passes through. A wrong NPI raises
    `ConversionError`, which the renderer turns into a record error naming the template line
    (and never the value).
    """
    if isinstance(value, Missing):
        value.fail()  # a missing-value error: "the template uses 'npi', which ... lacks"
    if value is None:
        return None
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = str(int(value))
    if not isinstance(value, str):
        raise ConversionError("npi expects 10 digits, as a string or a number")
    text = value.strip()
    if len(text) != 10 or not text.isascii() or not text.isdigit():
        raise ConversionError("npi: the value is not 10 digits")
    if not luhn_valid(_NPI_PREFIX + text):
        raise ConversionError("npi: the check digit is wrong (Luhn over the prefix 80840)")
    return text


def practitioner_context(record: StreamRecord) -> Mapping[str, Any]:
    """The NPI check and the plugin's settings, as template variables."""
    return {
        "npi": npi,
        "npi_system": NPI_SYSTEM,
        "qualification_system": QUALIFICATION_SYSTEM,
        "date_format": DATE_FORMAT,
    }


PRACTITIONER = Mapper(
    table="Practitioners",
    resource_type="Practitioner",
    template="practitioner.json.j2",
    context=practitioner_context,
    samples=SampleFile(__name__),
)


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    """Register the Practitioners mapper."""
    register(PRACTITIONER)
