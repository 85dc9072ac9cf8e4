"""Building DynamoDB stream records and Pipe batches from plain items, for tests.

Items are plain JSON-like values (``str``, ``int``, ``Decimal``, ``float``, ``bool``, ``None``,
``bytes``, lists, dicts, sets); they are encoded as DynamoDB AttributeValues exactly as a
stream delivers them, so a test goes through the core's own decoding. Defaults are
deterministic (the same arguments give the same record, eventID included), so outputs can be
compared across runs and with golden files.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from fhirpipes.conversions import uuid5

REGION = "us-east-1"
ACCOUNT = "123456789012"
STREAM_LABEL = "2024-01-01T00:00:00.000"


def stream_arn(table: str, *, region: str = REGION, account: str = ACCOUNT) -> str:
    """The stream ARN of ``table`` (the core reads the table name from it)."""
    return f"arn:aws:dynamodb:{region}:{account}:table/{table}/stream/{STREAM_LABEL}"


def attribute_value(value: Any) -> dict[str, Any]:
    """One Python value as a DynamoDB AttributeValue (``{"S": ...}``, ``{"N": ...}``, ...)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | Decimal):
        return {"N": str(value)}
    if isinstance(value, float):
        # repr is the shortest text that reads back as the same float.
        return {"N": repr(value)}
    if isinstance(value, bytes | bytearray):
        return {"B": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {"M": attribute_values(value)}
    if isinstance(value, list | tuple):
        return {"L": [attribute_value(item) for item in value]}
    if isinstance(value, set | frozenset):
        items = sorted(value, key=repr)
        if all(isinstance(item, str) for item in items):
            return {"SS": items}
        if all(isinstance(item, int | Decimal | float) and not isinstance(item, bool) for item in items):
            return {"NS": [attribute_value(item)["N"] for item in items]}
        if all(isinstance(item, bytes) for item in items):
            return {"BS": [base64.b64encode(item).decode("ascii") for item in items]}
        raise TypeError("a DynamoDB set holds only strings, only numbers or only binaries")
    raise TypeError(f"a {type(value).__name__} has no DynamoDB AttributeValue form")


def attribute_values(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item (attribute name -> value) as a DynamoDB image."""
    return {str(name): attribute_value(value) for name, value in item.items()}


def make_record(
    table: str,
    new: Mapping[str, Any] | None = None,
    old: Mapping[str, Any] | None = None,
    *,
    keys: Mapping[str, Any] | Sequence[str] = ("id",),
    event_name: str | None = None,
    event_id: str | None = None,
    sequence_number: str | None = None,
    region: str = REGION,
    account: str = ACCOUNT,
) -> dict[str, Any]:
    """One DynamoDB stream record, as a Pipe delivers it.

    Args:
        table: the source table (it goes into ``eventSourceARN``).
        new: the item after the change (``NewImage``); ``None`` for a REMOVE.
        old: the item before the change (``OldImage``); ``None`` for an INSERT.
        keys: the key attributes' names (taken from ``new``, else ``old``), or the keys themselves.
        event_name: ``INSERT``, ``MODIFY`` or ``REMOVE``; by default, derived from ``new``/``old``.
        event_id, sequence_number: default to values derived from the record's content.
    """
    if event_name is None:
        if new is not None and old is not None:
            event_name = "MODIFY"
        elif new is not None:
            event_name = "INSERT"
        elif old is not None:
            event_name = "REMOVE"
        else:
            raise ValueError("make_record needs new, old or both")
    if isinstance(keys, Mapping):
        key_values = dict(keys)
    else:
        image = new if new is not None else old
        if image is None:
            raise ValueError("make_record needs an image to take the keys from, or keys as a mapping")
        missing = [name for name in keys if name not in image]
        if missing:
            raise ValueError(f"the item has no key attribute {', '.join(map(repr, missing))}")
        key_values = {name: image[name] for name in keys}
    dynamodb: dict[str, Any] = {"Keys": attribute_values(key_values)}
    if new is not None:
        dynamodb["NewImage"] = attribute_values(new)
    if old is not None:
        dynamodb["OldImage"] = attribute_values(old)
    fingerprint = json.dumps([table, event_name, dynamodb], sort_keys=True, default=str)
    digest = uuid5("sequence", fingerprint).replace("-", "")
    dynamodb["SequenceNumber"] = sequence_number or str(int(digest[:12], 16))
    dynamodb["StreamViewType"] = "NEW_AND_OLD_IMAGES"
    return {
        "eventID": event_id or uuid5("event", fingerprint).replace("-", ""),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "eventSourceARN": stream_arn(table, region=region, account=account),
        "dynamodb": dynamodb,
    }


def make_batch(
    table: str,
    items: Iterable[Mapping[str, Any]],
    event_name: str = "INSERT",
    *,
    keys: Sequence[str] = ("id",),
) -> list[dict[str, Any]]:
    """A Pipe batch (a JSON array of records): one ``event_name`` record per item.

    INSERT carries the item as NewImage; REMOVE as OldImage; MODIFY as both (an unchanged
    item, which a mapper with ``skip_unchanged`` leaves out: build MODIFYs with `make_record`
    to give old and new images).
    """
    if event_name == "INSERT":
        return [make_record(table, item, keys=keys) for item in items]
    if event_name == "REMOVE":
        return [make_record(table, None, item, keys=keys) for item in items]
    if event_name == "MODIFY":
        return [make_record(table, item, item, keys=keys) for item in items]
    raise ValueError("event_name must be INSERT, MODIFY or REMOVE")
