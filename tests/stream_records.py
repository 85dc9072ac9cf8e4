"""Builders for DynamoDB stream records in the shape a Pipe delivers (shared by the tests)."""

from __future__ import annotations

from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"


def stream_arn(table: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/2024-01-01T00:00:00.000"


def record(
    event_name: str = "INSERT",
    *,
    table: str = "Patients",
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    keys: dict[str, Any] | None = None,
    event_id: str = "event-1",
    sequence_number: str = "100000000000000000001",
) -> dict[str, Any]:
    """A stream record; ``new``/``old`` are AttributeValue images; keys default to the image's ``id``."""
    image = new if new is not None else old
    if keys is None:
        keys = {"id": image["id"]} if image and "id" in image else {"id": {"S": "abc"}}
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1700000000,
        "Keys": keys,
        "SequenceNumber": sequence_number,
        "SizeBytes": 256,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        dynamodb["NewImage"] = new
    if old is not None:
        dynamodb["OldImage"] = old
    return {
        "eventID": event_id,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "eventSourceARN": stream_arn(table),
        "dynamodb": dynamodb,
    }


def strings(item: dict[str, Any]) -> dict[str, Any]:
    """A plain item (strings, bools, nested dicts) as an AttributeValue image."""
    return {name: attribute(value) for name, value in item.items()}


def attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": strings(value)}
    if isinstance(value, list):
        return {"L": [attribute(item) for item in value]}
    if value is None:
        return {"NULL": True}
    return {"S": value}


ORIGINAL_ITEM = {
    "id": "abc",
    "firstName": "John",
    "lastName": "Smith",
    "birthDate": "07-13-1991",
    "address": {"address1": "453 Ralph Road", "city": "Tampa", "state": "FL", "postalCode": "33612"},
}
"""The item of the original implementation's article."""
