"""The JSON text of a template value: what deterministic ids and stable orders are made from.

A resource's default id is UUIDv5 of its table and the JSON text of its keys, so this text must
never change for a given value (ids would move); sets are ordered by it too.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from fhirpipes.engine.runtime import NotJSONError

# The C string encoder json.dumps itself uses: ASCII-only output.
encode_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def to_json(value: Any) -> str:
    """The compact JSON text of ``value`` (decoded DynamoDB values, and what templates compute)."""
    if isinstance(value, str):
        return encode_string(value)
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
        return "{" + ",".join(f"{encode_string(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(item) for item in value) + "]"
    if isinstance(value, set | frozenset):
        return "[" + ",".join(sorted(to_json(item) for item in value)) + "]"
    if isinstance(value, bytes | bytearray):
        return encode_string(base64.b64encode(value).decode("ascii"))
    if isinstance(value, datetime.date | datetime.time):
        return encode_string(value.isoformat())
    raise NotJSONError(f"a {type(value).__name__} has no JSON form")
