"""Decode DynamoDB AttributeValue JSON (the images of a stream record) into Python values.

The result equals boto3's ``TypeDeserializer`` on every image DynamoDB can store (a differential
test keeps it so), but this module imports nothing from boto3/botocore: that import alone costs
a Lambda about 115 ms of cold start. Numbers are `decimal.Decimal` built in DynamoDB's own decimal context, so
they are lossless and never pass through float. Binary values arrive base64-encoded in the JSON
a Pipe sends and decode to ``bytes`` (boto3 wraps them in ``Binary``, which compares equal).

Anything else is an `AttributeValueError` that says where and why, never what: its path names
top-level attributes (the table's schema) and, below them, positions only (``<key 0>`` for the
first key of a map, ``[2]`` for the third item of a list), because the keys of a nested map are
often data (``{"MRN-0042": ...}``). Nesting deeper than DynamoDB itself stores (`MAX_LEVELS`) is
refused too, so no image, however hostile, makes the decoder recurse without bound.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

# The same context boto3 uses (boto3.dynamodb.types.DYNAMODB_CONTEXT): 38 digits, and any
# rounding is an error rather than a silent change of the number.
DYNAMODB_CONTEXT = Context(
    Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow]
)

MAX_LEVELS = 32
"""DynamoDB's limit on nesting: "nested attributes up to 32 levels deep", a top-level attribute
being level 1 (measured against DynamoDB: 31 maps around a scalar are stored, 32 are refused).
A value deeper than that can't have come from a table, and is refused before it costs a stack."""

TYPE_KEYS = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
"""The ten AttributeValue types, in the order DynamoDB's documentation lists them."""


class AttributeValueError(ValueError):
    """An AttributeValue can't be decoded; ``path`` says where (no values, no data-derived keys)."""

    def __init__(self, reason: str, segments: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments = segments or []

    @property
    def path(self) -> str:
        """Where, e.g. ``address.<key 1>.lines[2]``."""
        return "".join(self.segments).lstrip(".") or "$"

    def __str__(self) -> str:
        return f"{self.reason} at {self.path}"


def decode_image(image: Any, path: str = "") -> dict[str, Any]:
    """Decode an image (a map of attribute name to AttributeValue) to a plain dict.

    ``path`` prefixes the location in error messages (e.g. ``dynamodb.NewImage``).
    """
    if not isinstance(image, Mapping):
        raise AttributeValueError("an image must be an object of AttributeValues", [path] if path else [])
    decoded = {}
    for name, value in image.items():
        try:
            decoded[name] = _decode(value, 1)
        except AttributeValueError as exc:
            # Top-level attribute names are the table's schema: they stay in the path.
            exc.segments[:0] = (path, f".{name}") if path else (f".{name}",)
            raise
    return decoded


def decode_value(value: Any) -> Any:
    """Decode one AttributeValue (``{"S": "x"}``, ``{"N": "1"}``, ...), taken as a top-level attribute."""
    return _decode(value, 1)


# Locations are built only on the way out of an error, never on the hot path; the level is
# counted only where it can grow (M and L).


def _decode(value: Any, level: int) -> Any:
    """Decode an AttributeValue at nesting ``level`` (a top-level attribute is level 1)."""
    if type(value) is dict and len(value) == 1:
        ((type_key, raw),) = value.items()
        if type_key == "S" and type(raw) is str:  # the commonest AttributeValue by far
            return raw
        if type_key == "M":
            return _decode_map(raw, level)
        if type_key == "L":
            return _decode_list(raw, level)
    elif isinstance(value, Mapping) and len(value) == 1:
        ((type_key, raw),) = value.items()
        if type_key == "M":
            return _decode_map(raw, level)
        if type_key == "L":
            return _decode_list(raw, level)
    else:
        raise AttributeValueError("an AttributeValue must be an object with exactly one type key")
    decoder = _SCALARS.get(type_key)
    if decoder is None:
        # Never quote the key: a record shaped wrongly may carry data where the type should be.
        raise AttributeValueError(f"an AttributeValue's type must be one of {', '.join(TYPE_KEYS)}")
    return decoder(raw)


def _too_deep() -> AttributeValueError:
    return AttributeValueError(f"the value nests deeper than DynamoDB's {MAX_LEVELS} levels")


def _decode_map(raw: Any, level: int) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise AttributeValueError("M must hold an object of AttributeValues")
    if level >= MAX_LEVELS and raw:
        raise _too_deep()
    level += 1
    decoded = {}
    for name, value in raw.items():
        try:
            decoded[name] = _decode(value, level)
        except AttributeValueError as exc:
            # The key of a nested map may be data: name it by position (in the record's order).
            exc.segments.insert(0, f".<key {list(raw).index(name)}>")
            raise
    return decoded


def _decode_list(raw: Any, level: int) -> list[Any]:
    if not isinstance(raw, list):
        raise AttributeValueError("L must hold a list")
    if level >= MAX_LEVELS and raw:
        raise _too_deep()
    level += 1
    decoded = []
    for index, item in enumerate(raw):
        try:
            decoded.append(_decode(item, level))
        except AttributeValueError as exc:
            exc.segments.insert(0, f"[{index}]")
            raise
    return decoded


def _string(raw: Any) -> str:
    if not isinstance(raw, str):
        raise AttributeValueError("S must hold a string")
    return raw


def _number(raw: Any) -> Decimal:
    # DynamoDB sends numbers as strings; accepting JSON numbers too would invite float rounding.
    if not isinstance(raw, str):
        raise AttributeValueError("N must hold a number as a string")
    try:
        number: Decimal | None = DYNAMODB_CONTEXT.create_decimal(raw)
    except ArithmeticError:
        number = None
    # Raised outside the handler, so the error has no __context__ to carry the digits along.
    if number is None:
        raise AttributeValueError("N is not a number DynamoDB can hold")
    if not number.is_finite():
        raise AttributeValueError("N is not a finite number")
    return number


def _binary(raw: Any) -> bytes:
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    if not isinstance(raw, str):
        raise AttributeValueError("B must hold base64 text")
    try:
        decoded: bytes | None = base64.b64decode(raw, validate=True)
    except ValueError:  # binascii.Error, or text that isn't ASCII
        decoded = None
    if decoded is None:
        raise AttributeValueError("B is not valid base64")
    return decoded


def _boolean(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise AttributeValueError("BOOL must hold true or false")
    return raw


def _null(raw: Any) -> None:
    if raw is not True:
        raise AttributeValueError("NULL must hold true")
    return None


def _set_of(element: Callable[[Any], Any], kind: str) -> Callable[[Any], set[Any]]:
    # Sets hold scalars only, so they add no level of nesting.
    def decode_set(raw: Any) -> set[Any]:
        if not isinstance(raw, list):
            raise AttributeValueError(f"{kind} must hold a list")
        decoded = set()
        for index, item in enumerate(raw):
            try:
                decoded.add(element(item))
            except AttributeValueError as exc:
                exc.segments.insert(0, f"[{index}]")
                raise
        return decoded

    return decode_set


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "S": _string,
    "N": _number,
    "B": _binary,
    "BOOL": _boolean,
    "NULL": _null,
    "SS": _set_of(_string, "SS"),
    "NS": _set_of(_number, "NS"),
    "BS": _set_of(_binary, "BS"),
}
