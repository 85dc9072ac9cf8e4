"""Per-record cost of the shared handler against a hand-written mapper and validation alone.

Prints, from one run (the machines are shared and noisy, so only ratios within a run count):
(1) a batch through ``fhirpipes.handler.handler``; (2) the obvious hand-written Python mapping
of the same record with fhir.resources ``model_validate`` and ``model_dump_json``; (3) the
floor: ``model_validate`` of the finished resource alone. Targets: (1)/(2) <= 0.8, (1)/(3) <= 2.5.

    python bench/bench_mapping.py [--records 500] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from records import patient_record


def hand_written(record: dict[str, Any]) -> str:
    """What a team writes by hand for one Patients record (the baseline): boto3's TypeDeserializer
    for the image, a dict literal, fhir.resources to validate and serialise."""
    from boto3.dynamodb.types import TypeDeserializer
    from fhir.resources.R4B.patient import Patient

    deserializer = TypeDeserializer()
    item = {name: deserializer.deserialize(value) for name, value in record["dynamodb"]["NewImage"].items()}
    address = item["address"]
    month, day, year = item["birthDate"].split("-")
    resource = {
        "resourceType": "Patient",
        "id": item["id"],
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                },
                "system": "urn:fhirpipes:mrn",
                "value": item["mrn"],
            }
        ],
        "active": item["active"],
        "name": [
            {
                "family": item["lastName"],
                "given": [item["firstName"], item["middleName"]],
                "prefix": [item["prefix"]],
            }
        ],
        "telecom": [
            {"system": "phone", "value": item["phone"], "use": "home"},
            {"system": "email", "value": item["email"]},
        ],
        "gender": {"F": "female", "M": "male"}.get(item["gender"], "unknown"),
        "birthDate": f"{year}-{month}-{day}",
        "address": [
            {
                "use": "home",
                "line": [address["address1"], address["address2"]],
                "city": address["city"],
                "state": address["state"],
                "postalCode": address["postalCode"],
                "country": address["country"],
            }
        ],
    }
    return Patient.model_validate(resource).model_dump_json()


def per_record(function: Callable[[], Any], count: int, repeat: int) -> float:
    """Best-of-``repeat`` seconds per record of ``function`` (which handles ``count`` records)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, (time.perf_counter() - start) / count)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from fhir.resources.R4B.patient import Patient

    from fhirpipes import logs
    from fhirpipes.handler import handler

    logs.configure("INFO", io.StringIO())  # the handler's real log lines, formatted, kept off the screen
    batch = [patient_record(index) for index in range(args.records)]
    finished = [event["details"]["entity"] for event in handler(batch)]
    assert len(finished) == args.records

    handler_cost = per_record(lambda: handler(batch), args.records, args.repeat)
    hand_cost = per_record(lambda: [hand_written(record) for record in batch], args.records, args.repeat)
    floor_cost = per_record(lambda: [Patient.model_validate(r) for r in finished], args.records, args.repeat)

    rows = [
        ("(1) fhirpipes.handler.handler", handler_cost),
        ("(2) hand-written + model_validate + model_dump_json", hand_cost),
        ("(3) model_validate of the finished resource", floor_cost),
    ]
    print(f"{datetime.date.today()}  {args.records} Patient INSERT records, best of {args.repeat}")
    for label, cost in rows:
        print(f"  {label:<55} {cost * 1e6:8.1f} us/record")
    print(f"  (1)/(2) = {handler_cost / hand_cost:.2f}   (target <= 0.8)")
    print(f"  (1)/(3) = {handler_cost / floor_cost:.2f}   (target <= 2.5)")


if __name__ == "__main__":
    main()
