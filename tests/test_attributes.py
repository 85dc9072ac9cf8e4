"""AttributeValue decoding: all ten types, lossless numbers, and equality with boto3's TypeDeserializer."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from hypothesis import given, settings
from hypothesis import strategies as st
from record_shapes import assert_nothing_quotes, nested

from fhirpipes.attributes import MAX_LEVELS, AttributeValueError, decode_image, decode_value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"S": "x"}, "x"),
        ({"N": "12.50"}, Decimal("12.50")),
        (
            {"N": "123456789012345678901234567890.12345678"},
            Decimal("123456789012345678901234567890.12345678"),
        ),
        ({"B": base64.b64encode(b"\x00\xff").decode()}, b"\x00\xff"),
        ({"BOOL": False}, False),
        ({"NULL": True}, None),
        ({"M": {"a": {"S": "b"}}}, {"a": "b"}),
        ({"L": [{"S": "a"}, {"N": "1"}]}, ["a", Decimal(1)]),
        ({"SS": ["a", "b"]}, {"a", "b"}),
        ({"NS": ["1", "2.5"]}, {Decimal(1), Decimal("2.5")}),
        ({"BS": [base64.b64encode(b"a").decode()]}, {b"a"}),
    ],
    ids=["S", "N", "N-38-digits", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"],
)
def test_each_type_decodes(value: dict[str, Any], expected: Any) -> None:
    decoded = decode_value(value)
    assert decoded == expected
    assert type(decoded) is type(expected)


def test_numbers_never_pass_through_float() -> None:
    assert decode_value({"N": "0.1"}) == Decimal("0.1")
    assert str(decode_value({"N": "1E+2"})) == "1E+2"


@pytest.mark.parametrize(
    ("image", "path", "reason"),
    [
        ({"a": {"Q": "x"}}, "a", "type must be one of S, N, B, BOOL, NULL, M, L, SS, NS, BS"),
        ({"a": {"S": "x", "N": "1"}}, "a", "exactly one type key"),
        ({"a": {"M": {"b": {"L": [{"S": "x"}, {"N": "one"}]}}}}, "a.<key 0>[1]", "N is not a finite number"),
        ({"a": {"M": {"b": {"S": "x"}, "c": {"N": "1", "S": "1"}}}}, "a.<key 1>", "exactly one type key"),
        ({"a": {"N": 1}}, "a", "N must hold a number as a string"),
        ({"a": {"B": "%%%"}}, "a", "B is not valid base64"),
        ({"a": {"B": "\u00e9\u00e9=="}}, "a", "B is not valid base64"),
        ({"a": {"NULL": False}}, "a", "NULL must hold true"),
        ({"a": {"SS": "x"}}, "a", "SS must hold a list"),
        ({"a": {"NS": ["1", "x"]}}, "a[1]", "N is not a finite number"),
        ({"a": {"M": []}}, "a", "M must hold an object"),
        ({"a": {"L": {}}}, "a", "L must hold a list"),
        ({"a": {"N": "1" * 40}}, "a", "N is not a number DynamoDB can hold"),
        ({"a": ["S", "x"]}, "a", "exactly one type key"),
    ],
)
def test_bad_attribute_values_say_where(image: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(AttributeValueError) as caught:
        decode_image(image, "dynamodb.NewImage")
    assert caught.value.path == f"dynamodb.NewImage.{path}"
    assert reason in caught.value.reason


def test_an_image_that_is_not_an_object_is_named_by_its_prefix() -> None:
    with pytest.raises(AttributeValueError) as caught:
        decode_image([{"S": "x"}], "dynamodb.OldImage")
    assert caught.value.path == "dynamodb.OldImage"


# --- no value in a message, a path or an exception chain ---------------------------------


@pytest.mark.parametrize(
    ("image", "secret"),
    [
        ({"mrn": {"N": "MRN-SECRET-123"}}, "SECRET"),
        ({"lastName": {"MRN12345678": "x"}}, "MRN1"),
        ({"lastName": {"Smith-Zq": {"S": "x"}}}, "Zq"),
        ({"allergies": {"M": {"MRN-0042-x": {"N": "NaN"}}}}, "MRN-0042"),
        ({"allergies": {"M": {"MRN-0042-x": {"M": {"Peanut-Zq": {"B": "!!"}}}}}}, "Zq"),
        ({"notes": {"L": [{"M": {"SSN-123-45-6789": {"NULL": "yes"}}}]}}, "SSN-"),
        ({"n": {"N": "9" * 39 + "SECRET"}}, "SECRET"),
        ({"n": {"N": "1" * 40}}, "1111"),  # the digits a failed Decimal conversion might quote
        ({"b": {"B": "U0VDUkVU-not-base64"}}, "U0VDUkVU"),
        ({"b": {"B": "\u00e9SECRET"}}, "SECRET"),
        ({"tags": {"SS": ["ok", {"S": "SECRET"}]}}, "SECRET"),
    ],
)
def test_errors_never_quote_the_value(image: dict[str, Any], secret: str) -> None:
    with pytest.raises(AttributeValueError) as caught:
        decode_image(image, "dynamodb.NewImage")
    assert_nothing_quotes(caught.value, secret)


def test_nested_keys_are_positions_and_top_level_names_stay() -> None:
    image = {
        "allergies": {"M": {"Peanut": {"S": "x"}, "MRN-0042-x": {"M": {"a": {"S": "y"}, "b": {"N": "z"}}}}}
    }
    with pytest.raises(AttributeValueError) as caught:
        decode_image(image, "dynamodb.NewImage")
    assert caught.value.path == "dynamodb.NewImage.allergies.<key 1>.<key 1>"


# --- nesting: DynamoDB stores 32 levels, a top-level attribute being level 1 -----------------


def decoded_depth(value: Any) -> int:
    depth = 1
    while isinstance(value, dict | list) and value:
        value = next(iter(value.values())) if isinstance(value, dict) else value[0]
        depth += 1
    return depth


@pytest.mark.parametrize("kind", ["M", "L"])
def test_thirty_two_levels_decode(kind: str) -> None:
    decoded = decode_image({"a": nested(MAX_LEVELS, kind)})
    assert decoded_depth(decoded["a"]) == MAX_LEVELS
    assert decode_image({"a": nested(MAX_LEVELS, kind, leaf={kind: {} if kind == "M" else []})})


@pytest.mark.parametrize("kind", ["M", "L"])
@pytest.mark.parametrize("levels", [MAX_LEVELS + 1, 331, 495, 5000, 100_000])
def test_deeper_is_refused_with_a_path_not_a_recursion_error(kind: str, levels: int) -> None:
    with pytest.raises(AttributeValueError) as caught:
        decode_image({"ok": {"S": "x"}, "a": nested(levels, kind)}, "dynamodb.NewImage")
    assert caught.value.reason == "the value nests deeper than DynamoDB's 32 levels"
    step = ".<key 0>" if kind == "M" else "[0]"
    assert caught.value.path == "dynamodb.NewImage.a" + step * (MAX_LEVELS - 1)


def test_maps_and_lists_count_alike_and_sets_add_no_level() -> None:
    value: dict[str, Any] = {"SS": ["x"]}
    for level in range(MAX_LEVELS - 1):
        value = {"M": {"k": value}} if level % 2 else {"L": [value]}
    assert decode_image({"a": value})
    with pytest.raises(AttributeValueError, match="deeper than"):
        decode_image({"a": {"L": [value]}})


# --- differential: the same result as boto3's TypeDeserializer on every input ---------------

_numbers = st.integers(min_value=-(10**37), max_value=10**37).map(str) | st.from_regex(
    r"-?[1-9][0-9]{0,18}\.[0-9]{1,18}", fullmatch=True
)
_binaries = st.binary(max_size=16)
_leaves = st.one_of(
    st.text(max_size=20).map(lambda s: {"S": s}),
    _numbers.map(lambda n: {"N": n}),
    _binaries.map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.sets(st.text(max_size=5), min_size=1, max_size=4).map(lambda s: {"SS": sorted(s)}),
    st.sets(_numbers, min_size=1, max_size=4).map(lambda s: {"NS": sorted(s)}),
    st.sets(_binaries, min_size=1, max_size=3).map(lambda s: {"BS": sorted(s)}),
)
_values = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: {"L": items}),
        st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4).map(lambda m: {"M": m}),
    ),
    max_leaves=12,
)


def _as_stream_json(value: Any) -> Any:
    """The value as it arrives in a Pipe's JSON: binaries base64-encoded."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _as_stream_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_stream_json(item) for item in value]
    return value


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), _values, max_size=6))
@pytest.mark.slow  # hypothesis: 300 images
def test_equals_boto3_type_deserializer(image: dict[str, Any]) -> None:
    deserializer = TypeDeserializer()
    expected = {name: deserializer.deserialize(value) for name, value in image.items()}
    assert decode_image(_as_stream_json(image)) == expected


def test_the_handler_path_does_not_import_boto3() -> None:
    import subprocess
    import sys

    code = (
        "import sys, json; from fhirpipes.handler import handler; "
        "from fhirpipes.testing.stream import make_record; "
        "out = handler([make_record('Patients', {'id': 'abc', 'lastName': 'Smith'})]); "
        "assert out[0]['details']['command'] == 'PUT', out; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
