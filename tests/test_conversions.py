"""The conversion filters templates use: dates, date-times with a zone, code maps, deterministic ids."""

from __future__ import annotations

import datetime
import itertools
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from record_shapes import assert_nothing_quotes

from fhirpipes.conversions import (
    ConversionError,
    _date_parser,
    code_map,
    fhir_date,
    fhir_datetime,
    fhir_gender,
    uuid5,
)


@pytest.mark.parametrize(
    ("value", "source_format", "expected"),
    [
        ("07-13-1991", "%m-%d-%Y", "1991-07-13"),
        ("13/07/1991", "%d/%m/%Y", "1991-07-13"),
        ("1991-07-13", "%Y-%m-%d", "1991-07-13"),
        (" 02-29-1984 ", "%m-%d-%Y", "1984-02-29"),
        (None, "%m-%d-%Y", None),
        # the precision the format records, nothing invented
        ("1991-07", "%Y-%m", "1991-07"),
        ("07/1991", "%m/%Y", "1991-07"),
        ("1991", "%Y", "1991"),
        ("July 1991", "%B %Y", "1991-07"),
        ("13 July 1991", "%d %B %Y", "1991-07-13"),
        ("1991-194", "%Y-%j", "1991-07-13"),
        # strptime's quirks, kept by the fast path: one-digit months and days, " 5" for a day,
        # any run of whitespace for one in the format, letters in either case, Unicode digits
        ("7/4/1991", "%m/%d/%Y", "1991-07-04"),
        ("1991-07- 5", "%Y-%m-%d", "1991-07-05"),
        ("07 \t 13   1991", "%m %d %Y", "1991-07-13"),
        ("1991t07", "%YT%m", "1991-07"),
        ("\u0661\u0669\u0669\u0661-07-13", "%Y-%m-%d", "1991-07-13"),
        ("0999-01", "%Y-%m", "0999-01"),
        ("[1991].(07)", "[%Y].(%m)", "1991-07"),
        # empty is absent
        ("", "%m-%d-%Y", None),
        (" \t ", "%Y", None),
    ],
)
def test_fhir_date(value: Any, source_format: str, expected: str | None) -> None:
    assert fhir_date(value, source_format) == expected


@pytest.mark.parametrize(
    ("value", "source_format"),
    [
        ("02-30-1984", "%m-%d-%Y"),
        ("02-29-1983", "%m-%d-%Y"),
        ("1991-07-13", "%m-%d-%Y"),
        ("13-07-1991", "%m-%d-%Y"),
        ("07-13-1991x", "%m-%d-%Y"),
        ("0000-01", "%Y-%m"),
        ("91-07", "%Y-%m"),
        ("1991-13", "%Y-%m"),
        ("PHI-Zq-1991", "%Y"),
        (19910713, "%m-%d-%Y"),
        (Decimal("1991"), "%Y"),
        (["07-13-1991"], "%m-%d-%Y"),
        ("Zq 13 1991", "%B %d %Y"),
    ],
)
def test_fhir_date_refuses_without_quoting(value: Any, source_format: str) -> None:
    with pytest.raises(ConversionError) as caught:
        fhir_date(value, source_format)
    message = str(caught.value)
    assert message.startswith("fhir_date") and source_format in message
    assert_nothing_quotes(caught.value, *{str(value), "Zq", "1991"} - {source_format})


@pytest.mark.parametrize(
    ("source_format", "reason"),
    [
        ("%m-%d", "has no year"),
        ("%d", "has no year"),
        ("%H:%M", "has no year"),
        ("%Y-%d", "has a day but no month"),
        ("%Y-%q", "not a strptime format"),
        ("%Y-%", "not a strptime format"),
        (5, "must be text"),
    ],
)
def test_fhir_date_refuses_formats_it_cant_honour(source_format: Any, reason: str) -> None:
    with pytest.raises(ConversionError, match=reason):
        fhir_date("1991", source_format)


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
    ("value", "expected"),
    [("M", "male"), ("woman", "female"), ("X", "other"), (" u ", "unknown"), ("UNK", "unknown")],
)
def test_gender_codes(value: str, expected: str) -> None:
    assert fhir_gender(value) == expected


@pytest.mark.parametrize("value", [None, "", " ", "\t\n", "\u00a0\u2003"])
def test_an_empty_gender_is_absent_not_unknown(value: str | None) -> None:
    assert fhir_gender(value) is None


@pytest.mark.parametrize("value", ["PHI-Zq", True, Decimal(1), ["M"], {"M": 1}])
def test_gender_refuses_without_quoting(value: Any) -> None:
    with pytest.raises(ConversionError) as caught:
        fhir_gender(value)
    assert_nothing_quotes(caught.value, "Zq")
    assert str(caught.value).startswith("fhir_gender")


def test_uuid5_is_deterministic() -> None:
    assert uuid5("Patients", "abc") == uuid5("Patients", "abc") != uuid5("Patients", "abd")
    assert uuid.UUID(uuid5("x")).version == 5


# --- fhir_date's compiled fast path gives what strptime gives -------------------------------

# Separators: anything but "%", weighted towards what formats really hold, plus whitespace,
# regex syntax, letters (strptime matches them in either case) and the odd Unicode character.
_separators = (
    st.sampled_from(list("-/. ,:T_"))
    | st.sampled_from(list("\t\n ([{^$*+?|\\"))
    | st.characters(exclude_characters="%")
)
_wild_formats = st.permutations(["%Y", "%m", "%d"]).flatmap(
    # all three codes most often, as real formats have them; each subset sometimes
    lambda codes: st.sampled_from(
        [(True, True, True)] * 7 + list(itertools.product([True, False], repeat=3))
    ).flatmap(
        lambda keep: st.tuples(
            *[st.lists(_separators, max_size=3).map("".join) for _ in range(4)],
        ).map(
            lambda seps: (
                seps[0]
                + "".join(code + sep for code, sep, kept in zip(codes, seps[1:], keep, strict=True) if kept)
            )
        )
    )
)
_usual_formats = st.sampled_from(["%Y%m%d", "%Y-%m", "%Y", "%m/%Y"]) | st.builds(
    lambda codes, sep: sep.join(codes),
    st.permutations(["%Y", "%m", "%d"]),
    st.sampled_from(["-", "/", ".", " ", ""]),
)
_fast_formats = _usual_formats | _wild_formats
_digits = st.sampled_from("0123456789")
_years = (
    st.integers(1000, 2100).map(str)
    | st.integers(0, 999).map(lambda y: f"{y:04d}")
    | st.text(_digits | st.characters(categories=["Nd"]), min_size=3, max_size=5)
)
_months = st.integers(1, 12).map(lambda m: f"{m:02d}") | st.integers(0, 13).map(str) | st.just(" 5")
_days = st.integers(1, 31).map(lambda d: f"{d:02d}") | st.integers(28, 32).map(str) | st.just(" 7")


@st.composite
def _values_for(draw: st.DrawFn, source_format: str) -> str:
    """Text that fits ``source_format``, nearly fits it, or strays from it in strptime's blind spots."""
    out = []
    for part in re.split(r"(%[Ymd])", source_format):
        if part == "%Y":
            out.append(draw(_years))
        elif part == "%m":
            out.append(draw(_months))
        elif part == "%d":
            out.append(draw(_days))
        else:  # the literal, its case swapped, its whitespace changed, or one character more
            out.append(
                draw(st.sampled_from([part] * 6 + [part.swapcase(), re.sub(r"\s+", " \t", part), part + "x"]))
            )
    text = "".join(out)
    return draw(st.sampled_from([text] * 6 + [f"  {text} ", text[1:], text + "0"]))


def _outcome(convert: Any) -> tuple[str, Any]:
    try:
        return ("date", convert())
    except ConversionError:
        return ("refused", None)


def _by_strptime(value: str, source_format: str) -> str | None:
    """What fhir_date must give, worked out with strptime alone."""
    text = value.strip()
    if not text:
        return None
    if "%Y" not in source_format or ("%d" in source_format and "%m" not in source_format):
        raise ConversionError("no date")
    try:
        iso = datetime.datetime.strptime(text, source_format).date().isoformat()
    except ValueError:
        raise ConversionError("no date") from None
    return iso[: 10 if "%d" in source_format else 7 if "%m" in source_format else 4]


@settings(max_examples=800, deadline=None, database=None)
@given(st.data())
@pytest.mark.slow  # hypothesis: 800 dates
def test_the_fast_path_equals_strptime(data: st.DataObject) -> None:
    source_format = data.draw(_fast_formats)
    value = data.draw(_values_for(source_format) | st.text(max_size=12))
    got = _outcome(lambda: fhir_date(value, source_format))
    assert got == _outcome(lambda: _by_strptime(value, source_format)), (value, source_format)
    if "%Y" in source_format and ("%m" in source_format or "%d" not in source_format):
        assert _date_parser(source_format).__qualname__.startswith("_compiled_parser")


_any_formats = st.lists(
    st.sampled_from([f"%{code}" for code in "aAbBcdfGHIjmMpSUuVwWxXyYzZ%"]) | _separators, max_size=6
).map("".join)


@settings(max_examples=500, deadline=None, database=None)
@given(_any_formats, st.text(max_size=16) | st.sampled_from(["1991-07-13", "07/13/91", "Sat Jul 13 1991"]))
@pytest.mark.slow  # hypothesis: 500 formats
def test_any_format_gives_a_prefix_of_strptimes_date_or_refuses(source_format: str, value: str) -> None:
    try:
        date = fhir_date(value, source_format)
    except ConversionError as exc:
        assert exc.__cause__ is None and exc.__context__ is None
        return
    if date is None:
        assert not value.strip()
        return
    assert re.fullmatch(r"\d{4}(-\d\d(-\d\d)?)?", date)
    assert datetime.datetime.strptime(value.strip(), source_format).date().isoformat().startswith(date)


@pytest.mark.parametrize(
    ("value", "kind"), [("Main St 1", "a string"), (Decimal(5), "a number"), ([1], "a list")]
)
def test_as_map_refuses_another_shape_naming_the_attribute_not_the_value(value: Any, kind: str) -> None:
    from fhirpipes.conversions import as_list, as_map

    assert (
        as_map(None, "address") == {} and as_map("  ", "address") == {} and as_map({"a": 1}, "x") == {"a": 1}
    )
    with pytest.raises(
        ConversionError, match=f"address must be a map \\(DynamoDB M\\), not {kind}"
    ) as caught:
        as_map(value, "address")
    assert "Main" not in str(caught.value)
    assert as_list(None, "q") == [] and as_list([1], "q") == [1]


def test_a_conversion_error_is_a_fhirpipes_error_and_still_a_value_error() -> None:
    from fhirpipes import FhirpipesError, RecordError

    assert issubclass(ConversionError, FhirpipesError)
    assert issubclass(ConversionError, ValueError)  # code that caught ValueError still does
    assert not issubclass(ConversionError, RecordError)  # the renderer locates it, as before


def test_a_conversion_error_still_renders_as_conversion_failed() -> None:
    from fhirpipes.engine import from_string
    from fhirpipes.errors import RenderError

    with pytest.raises(RenderError) as caught:
        from_string('{"d": {{ new.d | fhir_date }}}').render({"new": {"d": "Tuesday 13"}})
    assert caught.value.code == "conversion-failed"
    assert caught.value.line == 1
    assert "Tuesday" not in str(caught.value)
