"""Realistic Patients stream records for the benchmarks (no PHI: made-up people)."""

from __future__ import annotations

from typing import Any

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Patients/stream/2024-01-01T00:00:00.000"


def patient_item(index: int) -> dict[str, Any]:
    """A full Patients item as DynamoDB AttributeValue JSON."""
    return {
        "id": {"S": f"p-{index:06d}"},
        "firstName": {"S": "Maria"},
        "middleName": {"S": "Luisa"},
        "lastName": {"S": f"Garcia{index}"},
        "prefix": {"S": "Ms."},
        "gender": {"S": "F"},
        "birthDate": {"S": "02-29-1984"},
        "phone": {"S": "+1 813 555 0100"},
        "email": {"S": f"maria{index}@example.org"},
        "mrn": {"S": f"MRN-{index:08d}"},
        "active": {"BOOL": True},
        "address": {
            "M": {
                "address1": {"S": "1200 Bayshore Blvd"},
                "address2": {"S": "Apt 4B"},
                "city": {"S": "Tampa"},
                "state": {"S": "FL"},
                "postalCode": {"S": "33606"},
                "country": {"S": "US"},
            }
        },
    }


def patient_record(index: int, *, with_old: bool = False) -> dict[str, Any]:
    """An INSERT (or, with ``with_old``, a MODIFY carrying both images) of one Patients item."""
    item = patient_item(index)
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1700000000,
        "Keys": {"id": item["id"]},
        "NewImage": item,
        "SequenceNumber": f"{index:021d}",
        "SizeBytes": 512,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if with_old:
        old = dict(item, phone={"S": "+1 813 555 0111"})
        dynamodb["OldImage"] = old
    return {
        "eventID": f"event-{index}",
        "eventName": "MODIFY" if with_old else "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": ARN,
        "dynamodb": dynamodb,
    }
