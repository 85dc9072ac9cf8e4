"""Jinja filters for the usual domain -> FHIR conversions.

Each filter passes ``None`` (and a missing value made explicit with ``default(none)``) through
unchanged, so an optional attribute renders ``null`` and is then pruned. A value a filter can't
convert raises `ConversionError`, which the renderer turns into a record error naming the
template line; the message names the filter and the expected form, never the value.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NAMESPACE = uuid.UUID("6f0c1b8e-4c1e-5a57-9a55-2f9d8f6b7a10")
"""The UUIDv5 namespace of fhirpipes' deterministic resource ids (never change it: ids would move)."""


class ConversionError(ValueError):
    """A filter couldn't convert a record value; the message says which filter and what it expects."""


def fhir_date(value: Any, source_format: str = "%Y-%m-%d") -> str | None:
    """A date stored as ``source_format`` (strptime codes, e.g. ``"%m-%d-%Y"`` for ``07-13-1991``)
    as a FHIR ``date`` (``1991-07-13``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConversionError(f"fhir_date expects a string in the form {source_format}")
    try:
        return datetime.datetime.strptime(value.strip(), source_format).date().isoformat()
    except ValueError as exc:
        raise ConversionError(f"fhir_date: the value is not a date in the form {source_format}") from exc


def fhir_datetime(value: Any, source_format: str | None = None, tz: str = "UTC") -> str | None:
    """A date-time as a FHIR ``dateTime`` with a time zone.

    Accepts ISO 8601 text (default) or text in ``source_format``, and epoch seconds (numbers).
    A value without a zone is taken to be in ``tz`` (an IANA name), as FHIR requires a zone
    whenever a time is given.
    """
    if value is None:
        return None
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConversionError(f"fhir_datetime: unknown time zone {tz!r}") from exc
    if isinstance(value, int | Decimal | float) and not isinstance(value, bool):
        moment = datetime.datetime.fromtimestamp(float(value), tz=datetime.UTC)
    elif isinstance(value, str):
        try:
            if source_format is None:
                moment = datetime.datetime.fromisoformat(value.strip())
            else:
                moment = datetime.datetime.strptime(value.strip(), source_format)
        except ValueError as exc:
            expected = source_format or "ISO 8601"
            raise ConversionError(
                f"fhir_datetime: the value is not a date-time in the form {expected}"
            ) from exc
    else:
        raise ConversionError("fhir_datetime expects a string or epoch seconds")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()


def code_map(value: Any, mapping: Mapping[str, Any], default: Any = ..., *, name: str = "code_map") -> Any:
    """Look ``value`` up in ``mapping``, ignoring case and surrounding blanks.

    Without a ``default``, a value not in the map is an error (required FHIR value sets must not
    receive guesses).
    """
    if value is None:
        return None
    key = str(value).strip().casefold()
    for candidate, code in mapping.items():
        if str(candidate).casefold() == key:
            return code
    if default is not ...:
        return default
    known = ", ".join(sorted({str(candidate) for candidate in mapping if str(candidate).strip()})[:20])
    raise ConversionError(f"{name}: the value is not in the code map (known: {known})")


GENDER_CODES = {
    "m": "male", "male": "male", "man": "male",
    "f": "female", "female": "female", "woman": "female",
    "o": "other", "other": "other", "x": "other", "nonbinary": "other", "non-binary": "other",
    "u": "unknown", "unknown": "unknown", "unk": "unknown", "": "unknown",
}  # fmt: skip
"""How people store gender, mapped to FHIR's required administrative-gender codes."""


def fhir_gender(value: Any) -> str | None:
    """M/F/male/female/O/X/U/unknown (any case) -> FHIR administrative gender."""
    return code_map(value, GENDER_CODES, name="fhir_gender")  # type: ignore[no-any-return]


def uuid5(*parts: Any) -> str:
    """A deterministic UUID (v5, fhirpipes namespace) of the parts, as text."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(str(part) for part in parts)))


FILTERS = {
    "fhir_date": fhir_date,
    "fhir_datetime": fhir_datetime,
    "fhir_gender": fhir_gender,
    "code_map": code_map,
    "uuid5": uuid5,
}
