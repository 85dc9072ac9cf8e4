"""Jinja filters for the usual domain -> FHIR conversions.

Each filter passes ``None`` (and a missing value made explicit with ``default(none)``) through
unchanged, so an optional attribute renders ``null`` and is then pruned. A value a filter can't
convert raises `ConversionError`, which the renderer turns into a record error naming the
template line; the message names the filter and the expected form, never the value.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import re
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhirpipes.errors import FhirpipesError

NAMESPACE = uuid.UUID("6f0c1b8e-4c1e-5a57-9a55-2f9d8f6b7a10")
"""The UUIDv5 namespace of fhirpipes' deterministic resource ids (never change it: ids would move)."""


class ConversionError(FhirpipesError, ValueError):
    """A filter couldn't convert a record value; the message says which filter and what it expects.

    Raise it from a function your ``context`` hook hands to the template, too: the renderer turns
    it into a record error (code ``conversion-failed``) naming the template line. A `FhirpipesError`
    like every error fhirpipes raises on purpose, and a `ValueError`, as it always was.
    """


def fhir_date(value: Any, source_format: str = "%Y-%m-%d") -> str | None:
    """A date stored as ``source_format`` (strptime codes, e.g. ``"%m-%d-%Y"`` for ``07-13-1991``)
    as a FHIR ``date``, with the precision the format records: ``1991-07-13``, or ``1991-07`` for
    a format without a day (``%Y-%m``), or ``1991`` for a year alone (``%Y``).

    Surrounding whitespace is ignored, and an empty or whitespace-only value is absent (``None``),
    like ``None`` itself. A format without a year is refused: a FHIR date always has one.
    """
    if value is None:
        return None
    if not isinstance(source_format, str):
        raise ConversionError("fhir_date: the format must be text made of strptime codes")
    if not isinstance(value, str):
        raise ConversionError(f"fhir_date expects a string in the form {source_format}")
    text = value.strip()
    if not text:
        return None
    date = _date_parser(source_format)(text)
    # Raised here, outside any handler, so no exception that quoted the value is in its chain.
    if date is None:
        raise ConversionError(f"fhir_date: the value is not a date in the form {source_format}")
    return date


# --- fhir_date's parsers --------------------------------------------------------------------
# strptime costs 3 to 7 us a call (a lock, a locale check, a dict of every field), where a date
# needs a regex match and three ints (0.6 to 1 us, measured with fhir_date's own overhead). So a format made only of %Y, %m, %d (each once) and other
# characters gets a compiled parser built the way strptime builds its regex (the same patterns,
# escaping and flags), so it accepts exactly what strptime accepts, quirks included: single-digit
# months and days, " 5" for a day, any Unicode decimal digit in a year, a run of whitespace in the
# format matching any run of whitespace, letters matching in either case. Other formats go
# through strptime. A hypothesis test keeps the two equal.

# CPython's _strptime.TimeRE patterns for the three codes.
_FAST_CODES = {
    "Y": r"(?P<Y>\d\d\d\d)",
    "m": r"(?P<m>1[0-2]|0[1-9]|[1-9])",
    "d": r"(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])",
}
_REGEX_CHARS = re.compile(r"([\\.^$*+?\(\){}\[\]|])")  # what strptime escapes in a format
_WHITESPACE = re.compile(r"\s+")
_STRPTIME_CODES = frozenset("aAbBcdfGHIjmMpSUuVwWxXyYzZ%")
_YEAR_CODES = frozenset("YyGcx")
_MONTH_CODES = frozenset("mbB")


def _directives(source_format: str) -> list[str]:
    """The strptime codes of a format, in order (``%%`` included); a format strptime can't read raises."""
    codes = []
    index = source_format.find("%")
    while index != -1:
        code = source_format[index + 1 : index + 2]
        if code not in _STRPTIME_CODES:  # also a % at the end: code is ""
            raise ConversionError(f"fhir_date: {source_format} is not a strptime format")
        codes.append(code)
        index = source_format.find("%", index + 2)
    return codes


def _precision(source_format: str, codes: set[str]) -> str:
    """``day``, ``month`` or ``year``: the finest part of a date the format records."""
    if not codes & _YEAR_CODES:
        raise ConversionError(f"fhir_date: the format {source_format} has no year (a FHIR date needs one)")
    if codes & {"c", "x", "j"} or ("d" in codes and codes & _MONTH_CODES):
        return "day"
    if codes & {"U", "W", "V"} and codes & {"a", "A", "w", "u"}:  # week and weekday
        return "day"
    if "d" in codes:
        raise ConversionError(f"fhir_date: the format {source_format} has a day but no month")
    return "month" if codes & _MONTH_CODES else "year"


def _iso(year: int, month: int, day: int, precision: str) -> str:
    if precision == "day":
        return f"{year:04d}-{month:02d}-{day:02d}"
    return f"{year:04d}-{month:02d}" if precision == "month" else f"{year:04d}"


@functools.lru_cache(maxsize=64)  # a template passes one format, record after record
def _date_parser(source_format: str) -> Callable[[str], str | None]:
    """The parser of a format: text (already stripped) -> FHIR date, or ``None`` if it doesn't fit."""
    codes = _directives(source_format)
    precision = _precision(source_format, set(codes))
    if set(codes) <= _FAST_CODES.keys() and len(codes) == len(set(codes)):
        return _compiled_parser(source_format, precision)
    return _strptime_parser(source_format, precision)


def _compiled_parser(source_format: str, precision: str) -> Callable[[str], str | None]:
    pattern = []
    for index, chunk in enumerate(re.split(r"%([Ymd])", source_format)):
        if index % 2:
            pattern.append(_FAST_CODES[chunk])
        else:
            pattern.append(_WHITESPACE.sub(r"\\s+", _REGEX_CHARS.sub(r"\\\1", chunk)))
    match = re.compile("".join(pattern), re.IGNORECASE).match
    has_month, has_day = "%m" in source_format, "%d" in source_format

    def parse(text: str) -> str | None:
        found = match(text)
        # match, then a check on the end (not fullmatch): strptime takes the first match only.
        if found is None or found.end() != len(text):
            return None
        year_text = found["Y"]
        year = int(year_text)
        month = int(found["m"]) if has_month else 1
        day = int(found["d"]) if has_day else 1
        if day > 28:  # the day may not exist in that month (strptime asks datetime.date too)
            try:
                datetime.date(year, month, day)
            except ValueError:
                return None
        elif year < 1:  # "0000"
            return None
        if not year_text.isascii():  # \d takes any decimal digit, as strptime's does
            year_text = f"{year:04d}"
        if precision == "day":
            return f"{year_text}-{_TWO_DIGITS[month]}-{_TWO_DIGITS[day]}"
        return f"{year_text}-{_TWO_DIGITS[month]}" if precision == "month" else year_text

    return parse


_TWO_DIGITS = tuple(f"{number:02d}" for number in range(32))  # formatting with :02d costs 0.2 us a field


def _strptime_parser(source_format: str, precision: str) -> Callable[[str], str | None]:
    def parse(text: str) -> str | None:
        try:
            moment = datetime.datetime.strptime(text, source_format)
        except (ValueError, re.error):  # re.error: strptime can't compile a repeated code
            return None
        return _iso(moment.year, moment.month, moment.day, precision)

    return parse


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
    # Failures are raised after the try blocks: the parsers' own messages quote the value.
    moment: datetime.datetime | None = None
    if isinstance(value, int | Decimal | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError, ValueError, OSError, ArithmeticError):
            moment = datetime.datetime.fromtimestamp(float(value), tz=datetime.UTC)
        if moment is None:
            raise ConversionError("fhir_datetime: epoch seconds out of range")
    elif isinstance(value, str):
        try:
            if source_format is None:
                moment = datetime.datetime.fromisoformat(value.strip())
            else:
                moment = datetime.datetime.strptime(value.strip(), source_format)
        except ValueError:
            pass
        if moment is None:
            expected = source_format or "ISO 8601"
            raise ConversionError(f"fhir_datetime: the value is not a date-time in the form {expected}")
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
    "u": "unknown", "unknown": "unknown", "unk": "unknown",
}  # fmt: skip
"""How people store gender, mapped to FHIR's required administrative-gender codes."""


def fhir_gender(value: Any) -> str | None:
    """M/F/male/female/O/X/U/unknown (any case) -> FHIR administrative gender.

    An empty or whitespace-only value is absent (``None``): nobody recorded a gender, which is
    not the same as recording ``unknown``.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ConversionError("fhir_gender expects a string such as M, F, O or U")
    return code_map(value, GENDER_CODES, name="fhir_gender")  # type: ignore[no-any-return]


def uuid5(*parts: Any) -> str:
    """A deterministic UUID (v5, fhirpipes namespace) of the parts, as text."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(str(part) for part in parts)))


def fhir_clean(value: Any) -> Any:
    """A string without the characters FHIR refuses in any string: control characters (below U+0020,
    but tab, CR and LF) dropped, other white space (U+00A0, U+2028, ...) turned into spaces; any other
    value as it is. Opt-in: without it such a string is a record error (``control-character``), since
    silently changing a value is not always right."""
    if isinstance(value, str) and not value.isprintable():
        return _SPACES.sub(" ", _CONTROL.sub("", value))
    return value


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x85]")
_SPACES = re.compile("[\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]")
# _CONTROL and _SPACES together are fhirpipes.primitives.CONTROL (a test checks)

_KINDS = {str: "a string", bool: "a boolean", list: "a list", set: "a set", bytes: "binary"}


def kind_of(value: Any) -> str:
    """What a DynamoDB value is, in words, for error messages (a type, never the value)."""
    if value is None:
        return "NULL"
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return "a number"
    if isinstance(value, Mapping):
        return "a map"
    return next((words for kind, words in _KINDS.items() if isinstance(value, kind)), "another type")


def as_map(value: Any, attribute: str) -> Mapping[str, Any]:
    """``value`` if it is a map; ``{}`` if it is NULL, empty or whitespace (no value).

    Anything else (a string, a number, a list, ...) raises `ConversionError` naming ``attribute``
    (template text, never record data): an address stored as one string is not silently dropped.
    """
    if isinstance(value, Mapping):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    raise ConversionError(f"{attribute} must be a map (DynamoDB M), not {kind_of(value)}")


def as_list(value: Any, attribute: str) -> list[Any]:
    """``value`` if it is a list; ``[]`` if it is NULL, empty or whitespace; else `ConversionError`."""
    if isinstance(value, list):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    raise ConversionError(f"{attribute} must be a list (DynamoDB L), not {kind_of(value)}")


FILTERS = {
    "as_list": as_list,
    "as_map": as_map,
    "fhir_clean": fhir_clean,
    "fhir_date": fhir_date,
    "fhir_datetime": fhir_datetime,
    "fhir_gender": fhir_gender,
    "code_map": code_map,
    "uuid5": uuid5,
}
