"""JSON text for the values a template's ``{{ expression }}`` yields.

Every expression in a fhirpipes template renders as a JSON value, as an unquoted ``<$.path>``
does in a Pipe's inputTemplate: strings quoted and escaped, numbers, booleans, null, objects,
lists. Text already produced as JSON (a macro's output) is `markupsafe.Markup` and passes
through, which is what lets shared macros compose. Numbers are written from `Decimal` exactly.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from markupsafe import Markup

# The C string encoder json.dumps itself uses: ASCII-only output, so no character a record
# holds (quotes, backslashes, newlines, U+2028, lone surrogates, astral planes) survives raw.
encode_string = json.encoder.encode_basestring_ascii
_encode_string = encode_string


class NotJSONError(TypeError):
    """A template expression produced a value with no JSON form (names the type, never the value)."""


def to_json(value: Any) -> str:
    """The JSON text of ``value`` (see the module docstring for what maps to what)."""
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, str):
        return _encode_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise NotJSONError("a non-finite number has no JSON form")
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise NotJSONError("a non-finite number has no JSON form")
        return float.__repr__(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_encode_string(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(item) for item in value) + "]"
    if isinstance(value, set | frozenset):
        # DynamoDB sets have no order; sort so the same item always renders the same resource.
        return "[" + ",".join(sorted(to_json(item) for item in value)) + "]"
    if isinstance(value, bytes | bytearray):
        return _encode_string(base64.b64encode(value).decode("ascii"))
    if isinstance(value, datetime.date | datetime.time):
        return _encode_string(value.isoformat())
    raise NotJSONError(f"a {type(value).__name__} has no JSON form")


def loads(text: str) -> Any:
    """Parse rendered JSON, keeping fractional numbers as exact `Decimal`."""
    return json.loads(text, parse_float=Decimal)
