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
from collections.abc import Mapping
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

# The same context boto3 uses (boto3.dynamodb.types.DYNAMODB_CONTEXT): 38 digits, and any
# rounding is an error rather than a silent change of the number.
DYNAMODB_CONTEXT = Context(
    Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow]
)


class AttributeValueError(ValueError):
    """An AttributeValue can't be decoded; ``path`` says where (attribute names only, no values)."""

    def __init__(self, reason: str, path: str) -> None:
        super().__init__(f"{reason} at {path}")
        self.reason = reason
        self.path = path


def decode_image(image: Any, path: str = "") -> dict[str, Any]:
    """Decode an image (a map of attribute name to AttributeValue) to a plain dict."""
    if not isinstance(image, Mapping):
        raise AttributeValueError("an image must be an object of AttributeValues", path or "$")
    return {name: decode_value(value, f"{path}.{name}" if path else name) for name, value in image.items()}


def decode_value(value: Any, path: str) -> Any:
    """Decode one AttributeValue (``{"S": "x"}``, ``{"N": "1"}``, ...)."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise AttributeValueError("an AttributeValue must be an object with exactly one type key", path)
    ((type_key, raw),) = value.items()
    decoder = _DECODERS.get(type_key)
    if decoder is None:
        raise AttributeValueError(f"unknown AttributeValue type {type_key!r}", path)
    return decoder(raw, path)


def _string(raw: Any, path: str) -> str:
    if not isinstance(raw, str):
        raise AttributeValueError("S must hold a string", path)
    return raw


def _number(raw: Any, path: str) -> Decimal:
    # DynamoDB sends numbers as strings; accepting JSON numbers too would invite float rounding.
    if not isinstance(raw, str):
        raise AttributeValueError("N must hold a number as a string", path)
    try:
        number = DYNAMODB_CONTEXT.create_decimal(raw)
    except ArithmeticError as exc:
        raise AttributeValueError("N is not a number DynamoDB can hold", path) from exc
    if not number.is_finite():
        raise AttributeValueError("N is not a finite number", path)
    return number


def _binary(raw: Any, path: str) -> bytes:
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    if not isinstance(raw, str):
        raise AttributeValueError("B must hold base64 text", path)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttributeValueError("B is not valid base64", path) from exc


def _boolean(raw: Any, path: str) -> bool:
    if not isinstance(raw, bool):
        raise AttributeValueError("BOOL must hold true or false", path)
    return raw


def _null(raw: Any, path: str) -> None:
    if raw is not True:
        raise AttributeValueError("NULL must hold true", path)
    return None


def _map(raw: Any, path: str) -> dict[str, Any]:
    return decode_image(raw, path)


def _list(raw: Any, path: str) -> list[Any]:
    if not isinstance(raw, list):
        raise AttributeValueError("L must hold a list", path)
    return [decode_value(item, f"{path}[{index}]") for index, item in enumerate(raw)]


def _set_of(element: Any, kind: str) -> Any:
    def decode_set(raw: Any, path: str) -> set[Any]:
        if not isinstance(raw, list):
            raise AttributeValueError(f"{kind} must hold a list", path)
        return {element(item, f"{path}[{index}]") for index, item in enumerate(raw)}

    return decode_set


_DECODERS = {
    "S": _string,
    "N": _number,
    "B": _binary,
    "BOOL": _boolean,
    "NULL": _null,
    "M": _map,
    "L": _list,
    "SS": _set_of(_string, "SS"),
    "NS": _set_of(_number, "NS"),
    "BS": _set_of(_binary, "BS"),
}
