"""Decode DynamoDB AttributeValue JSON (the images of a stream record) into Python values.

The result equals boto3's ``TypeDeserializer`` on every input (a differential test keeps it so),
but this module imports nothing from boto3/botocore: that import alone costs a Lambda about
115 ms of cold start. Numbers are `decimal.Decimal` built in DynamoDB's own decimal context, so
they are lossless and never pass through float. Binary values arrive base64-encoded in the JSON
a Pipe sends and decode to ``bytes`` (boto3 wraps them in ``Binary``, which compares equal).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

# The same context boto3 uses (boto3.dynamodb.types.DYNAMODB_CONTEXT): 38 digits, and any
# rounding is an error rather than a silent change of the number.
DYNAMODB_CONTEXT = Context(
    Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow]
)


class AttributeValueError(ValueError):
    """An AttributeValue can't be decoded; ``path`` says where (attribute names only, no values)."""

    def __init__(self, reason: str, segments: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments = segments or []

    @property
    def path(self) -> str:
        """Where, e.g. ``address.lines[2]``."""
        return "".join(self.segments).lstrip(".") or "$"

    def __str__(self) -> str:
        return f"{self.reason} at {self.path}"


def decode_image(image: Any, path: str = "") -> dict[str, Any]:
    """Decode an image (a map of attribute name to AttributeValue) to a plain dict.

    ``path`` prefixes the location in error messages (e.g. ``dynamodb.NewImage``).
    """
    try:
        return _decode_map(image)
    except AttributeValueError as exc:
        if path:
            exc.segments.insert(0, path)
        raise


def decode_value(value: Any) -> Any:
    """Decode one AttributeValue (``{"S": "x"}``, ``{"N": "1"}``, ...)."""
    if type(value) is dict and len(value) == 1:
        ((type_key, raw),) = value.items()
        if type_key == "S" and type(raw) is str:  # the commonest AttributeValue by far
            return raw
    elif not isinstance(value, Mapping) or len(value) != 1:
        raise AttributeValueError("an AttributeValue must be an object with exactly one type key")
    ((type_key, raw),) = value.items()
    decoder = _DECODERS.get(type_key)
    if decoder is None:
        raise AttributeValueError(f"unknown AttributeValue type {str(type_key)[:8]!r}")
    return decoder(raw)


# Locations are built only on the way out of an error, never on the hot path.


def _decode_map(image: Any) -> dict[str, Any]:
    if not isinstance(image, Mapping):
        raise AttributeValueError("an image or M must be an object of AttributeValues")
    decoded = {}
    for name, value in image.items():
        try:
            decoded[name] = decode_value(value)
        except AttributeValueError as exc:
            exc.segments.insert(0, f".{name}")
            raise
    return decoded


def _decode_items(raw: Any, kind: str, element: Callable[[Any], Any]) -> list[Any]:
    """Decode each item of an L, SS, NS or BS list, naming the failing index."""
    if not isinstance(raw, list):
        raise AttributeValueError(f"{kind} must hold a list")
    decoded = []
    for index, item in enumerate(raw):
        try:
            decoded.append(element(item))
        except AttributeValueError as exc:
            exc.segments.insert(0, f"[{index}]")
            raise
    return decoded


def _decode_list(raw: Any) -> list[Any]:
    return _decode_items(raw, "L", decode_value)


def _string(raw: Any) -> str:
    if not isinstance(raw, str):
        raise AttributeValueError("S must hold a string")
    return raw


def _number(raw: Any) -> Decimal:
    # DynamoDB sends numbers as strings; accepting JSON numbers too would invite float rounding.
    if not isinstance(raw, str):
        raise AttributeValueError("N must hold a number as a string")
    try:
        number = DYNAMODB_CONTEXT.create_decimal(raw)
    except ArithmeticError as exc:
        raise AttributeValueError("N is not a number DynamoDB can hold") from exc
    if not number.is_finite():
        raise AttributeValueError("N is not a finite number")
    return number


def _binary(raw: Any) -> bytes:
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    if not isinstance(raw, str):
        raise AttributeValueError("B must hold base64 text")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttributeValueError("B is not valid base64") from exc


def _boolean(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise AttributeValueError("BOOL must hold true or false")
    return raw


def _null(raw: Any) -> None:
    if raw is not True:
        raise AttributeValueError("NULL must hold true")
    return None


def _set_of(element: Callable[[Any], Any], kind: str) -> Callable[[Any], set[Any]]:
    def decode_set(raw: Any) -> set[Any]:
        return set(_decode_items(raw, kind, element))

    return decode_set


_DECODERS = {
    "S": _string,
    "N": _number,
    "B": _binary,
    "BOOL": _boolean,
    "NULL": _null,
    "M": _decode_map,
    "L": _decode_list,
    "SS": _set_of(_string, "SS"),
    "NS": _set_of(_number, "NS"),
    "BS": _set_of(_binary, "BS"),
}
