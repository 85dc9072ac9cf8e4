"""Patients stream records for the benchmarks (no PHI: made-up people), built from plain items.

Two item shapes:

- **lean**: the original implementation's item (the article's five attributes: ``id``,
  ``firstName``, ``lastName``, ``birthDate``, ``address`` with four fields) plus three attributes
  the mapper does not map (``updatedAt``, ``visits`` and a 470-character ``note``);
- **rich**: every attribute the Patient mapper maps (plugins/patient/README.md), plus the
  unmapped ``updatedAt`` (so that a MODIFY of an unmapped attribute exists for it too).

Four batch variants of each: ``insert``; ``modify_mapped`` (both images, ``lastName`` changed);
``modify_unmapped`` (both images, only ``updatedAt`` changed); ``mixed`` (alternately an INSERT
and a MODIFY of ``lastName``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from fhirpipes.testing.stream import attribute_values

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Patients/stream/2024-01-01T00:00:00.000"

NOTE = (
    "Prefers morning appointments; allergic to penicillin (hives, 2019). Daughter is the emergency "
    "contact and usually drives her to the clinic. Hearing aid in the left ear: speak clearly and face "
    "her. Declined the flu shot this season after a long discussion; revisit in spring. Follow-up for "
    "blood pressure in six weeks, home readings to be brought on paper. Interpreter: not needed. "
    "Asked that reminders go by email rather than phone, and the portal be set to large print."
)
assert len(NOTE) == 470, len(NOTE)


def lean_item(index: int) -> dict[str, Any]:
    """The original implementation's five attributes, plus three unmapped ones."""
    return {
        "id": f"p-{index:06d}",
        "firstName": "John",
        "lastName": f"Smith{index}",
        "birthDate": "07-13-1991",
        "address": {"address1": "453 Ralph Road", "city": "Tampa", "state": "FL", "postalCode": "33612"},
        "updatedAt": "2024-03-01T12:00:00Z",
        "visits": Decimal(index % 40),
        "note": NOTE,
    }


def rich_item(index: int) -> dict[str, Any]:
    """Every attribute the Patient mapper maps, plus the unmapped ``updatedAt``."""
    return {
        "id": f"p-{index:06d}",
        "mrn": f"MRN-{index:08d}",
        "prefix": "Ms.",
        "firstName": "Maria",
        "middleName": "Luisa",
        "lastName": f"Garcia{index}",
        "suffix": "Jr.",
        "gender": "F",
        "birthDate": "02-29-1984",
        "active": True,
        "phone": "+1 813 555 0100",
        "mobilePhone": "+1 813 555 0199",
        "email": f"maria{index}@example.org",
        "address": {
            "address1": "1200 Bayshore Blvd",
            "address2": "Apt 4B",
            "city": "Tampa",
            "state": "FL",
            "postalCode": "33606",
            "country": "US",
        },
        "updatedAt": "2024-03-01T12:00:00Z",
    }


ITEMS: dict[str, Callable[[int], dict[str, Any]]] = {"lean": lean_item, "rich": rich_item}


def stream_record(index: int, new: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    """An INSERT of ``new``, or with ``old`` a MODIFY carrying both images, as a Pipe sends it."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1700000000,
        "Keys": {"id": {"S": new["id"]}},
        "NewImage": attribute_values(new),
        "SequenceNumber": f"{index:021d}",
        "SizeBytes": 512,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        dynamodb["OldImage"] = attribute_values(old)
    return {
        "eventID": f"event-{index:08d}",
        "eventName": "INSERT" if old is None else "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": ARN,
        "dynamodb": dynamodb,
    }


def insert(item: Callable[[int], dict[str, Any]], index: int) -> dict[str, Any]:
    return stream_record(index, item(index))


def modify_mapped(item: Callable[[int], dict[str, Any]], index: int) -> dict[str, Any]:
    """Both images; the old one had another ``lastName`` (a change FHIR shows)."""
    new = item(index)
    return stream_record(index, new, dict(new, lastName=f"Former{index}"))


def modify_unmapped(item: Callable[[int], dict[str, Any]], index: int) -> dict[str, Any]:
    """Both images; only ``updatedAt`` (which the mapper ignores) changed."""
    new = item(index)
    return stream_record(index, new, dict(new, updatedAt="2024-02-01T08:30:00Z"))


def mixed(item: Callable[[int], dict[str, Any]], index: int) -> dict[str, Any]:
    return (insert if index % 2 == 0 else modify_mapped)(item, index)


VARIANTS: dict[str, Callable[[Callable[[int], dict[str, Any]], int], dict[str, Any]]] = {
    "INSERT": insert,
    "MODIFY mapped": modify_mapped,
    "MODIFY unmapped": modify_unmapped,
    "mixed": mixed,
}


def batch(kind: str, variant: str, size: int) -> list[dict[str, Any]]:
    """``size`` records of item shape ``kind`` ("lean"/"rich") and batch ``variant``."""
    return [VARIANTS[variant](ITEMS[kind], index) for index in range(size)]
