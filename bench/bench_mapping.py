"""Per-record CPU time of the shared handler against the obvious hand-written mapping and the floor.

For each item shape (lean, rich: see records.py) and batch variant (INSERT, MODIFY of a mapped
attribute, MODIFY of an unmapped attribute only, mixed), batches of 400 records, three ways:

- **handler**: ``fhirpipes.handler.handler(batch)``, its log lines formatted (kept off the screen);
- **hand-written**: what a team writes by hand for the same table: boto3's ``TypeDeserializer``
  for the new image, a dict, R4B ``Patient.model_validate``, ``model_dump_json`` (read back with
  ``json.loads``), the handler's envelope (a MODIFY is mapped like an INSERT: no unchanged check);
- **floor**: ``Patient.model_validate`` of each finished resource alone (what any mapping pays).

The handler's and the hand-written output are encoded as the Lambda runtime encodes a response
(`fhirpipes.response.encode_response`, awslambdaric's simplejson options) inside the timed part.
Time is CPU time (``time.process_time``) per record; every measurement of every row is taken
in one round, the rounds repeat, and each figure is the median over the rounds. Only the public
API is used (``fhirpipes.handler.handler``), so the script runs on any version of the engine.

    python bench/bench_mapping.py [--records 400] [--rounds 9]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import io
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from records import VARIANTS, batch

GENDERS = {"m": "male", "male": "male", "f": "female", "female": "female", "o": "other", "x": "other"}


def hand_written(record: dict[str, Any], deserialize: Callable[[Any], Any], patient: Any) -> dict[str, Any]:
    """The obvious hand-written mapping of one Patients record to the handler's PUT event."""
    item = {name: deserialize(value) for name, value in record["dynamodb"]["NewImage"].items()}
    name: dict[str, Any] = {}
    if "lastName" in item:
        name["family"] = item["lastName"]
    given = [item[key] for key in ("firstName", "middleName") if key in item]
    if given:
        name["given"] = given
    if "prefix" in item:
        name["prefix"] = [item["prefix"]]
    if "suffix" in item:
        name["suffix"] = [item["suffix"]]
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": item["id"],
        "meta": {
            "source": f"{record['eventSourceARN']}#{record['dynamodb']['SequenceNumber']}",
            "tag": [{"system": "urn:fhirpipes:source-table", "code": "Patients"}],
        },
        "name": [name],
    }
    if "active" in item:  # only what the item says (FHIR assumes active when absent)
        resource["active"] = item["active"]
    if "mrn" in item:
        resource["identifier"] = [
            {
                "use": "usual",
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                },
                "system": "urn:fhirpipes:mrn",
                "value": item["mrn"],
            }
        ]
    telecom = []
    if "phone" in item:
        telecom.append({"system": "phone", "value": item["phone"], "use": "home"})
    if "mobilePhone" in item:
        telecom.append({"system": "phone", "value": item["mobilePhone"], "use": "mobile"})
    if "email" in item:
        telecom.append({"system": "email", "value": item["email"]})
    if telecom:
        resource["telecom"] = telecom
    if "gender" in item:
        resource["gender"] = GENDERS.get(item["gender"].lower(), "unknown")
    if "birthDate" in item:
        month, day, year = item["birthDate"].split("-")
        resource["birthDate"] = f"{year}-{month}-{day}"
    if "address" in item:
        source = item["address"]
        address: dict[str, Any] = {"use": "home"}
        line = [source[key] for key in ("address1", "address2") if key in source]
        if line:
            address["line"] = line
        for key in ("city", "state", "postalCode", "country"):
            if key in source:
                address[key] = source[key]
        resource["address"] = [address]
    entity = json.loads(patient.model_validate(resource).model_dump_json())
    return {
        "version": "1.0",
        "source": "PatientTable",
        "eventType": "PatientChange",
        "correlationId": record["eventID"],
        "eventID": record["eventID"],
        "details": {"command": "PUT", "entity": entity},
    }


def cpu_per_record(function: Callable[[], Any], count: int) -> float:
    start = time.process_time()
    function()
    return (time.process_time() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    import simplejson  # the runtime parses the Pipe's JSON with it: the records are fresh objects
    from boto3.dynamodb.types import TypeDeserializer
    from fhir.resources.R4B.patient import Patient

    from fhirpipes import logs
    from fhirpipes.handler import handler
    from fhirpipes.response import encode_response

    logs.configure("INFO", io.StringIO())  # the handler's real log lines, formatted, kept off the screen
    deserialize = TypeDeserializer().deserialize
    texts = {
        (kind, variant): json.dumps(batch(kind, variant, args.records))
        for kind in ("lean", "rich")
        for variant in VARIANTS
    }

    # What each way returns, checked once: the handler's PUTs are the hand-written ones.
    finished: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (kind, variant), text in texts.items():
        records = simplejson.loads(text)
        events = handler(records)
        mine = [hand_written(record, deserialize, Patient) for record in records]
        if variant == "MODIFY unmapped":
            assert events == [], f"{kind} {variant}: the handler should skip every record"
        else:
            assert events == mine, f"{kind} {variant}: the handler and the hand-written mapping differ"
        finished[kind, variant] = [event["details"]["entity"] for event in mine]

    ways: dict[str, Callable[[list[dict[str, Any]], list[dict[str, Any]]], Any]] = {
        "handler": lambda records, _: encode_response(handler(records)),
        "hand-written": lambda records, _: encode_response(
            [hand_written(record, deserialize, Patient) for record in records]
        ),
        "floor": lambda _, resources: [Patient.model_validate(resource) for resource in resources],
    }
    cells = [(kind, variant, way) for (kind, variant) in texts for way in ways]
    samples: dict[tuple[str, str, str], list[float]] = {cell: [] for cell in cells}
    for _ in range(args.rounds):
        random.shuffle(cells)  # interleaved, in a new order each round: drift hits every row alike
        for kind, variant, way in cells:
            records = simplejson.loads(texts[kind, variant])
            resources = finished[kind, variant]
            gc.collect()  # no row pays for the garbage of the one before it
            samples[kind, variant, way].append(
                cpu_per_record(lambda: ways[way](records, resources), args.records)  # noqa: B023
            )
    us = {cell: statistics.median(values) * 1e6 for cell, values in samples.items()}

    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; batches of {args.records} records; CPU µs per record, median of "
        f"{args.rounds} interleaved rounds; output encoded as awslambdaric does"
    )
    header = f"{'items':<6} {'batch':<16} {'handler':>8} {'hand-written':>13} {'floor':>7} {'h/hand':>7} {'h/floor':>8}"
    print(header)
    print("-" * len(header))
    for kind in ("lean", "rich"):
        for variant in VARIANTS:
            h, w, f = (us[kind, variant, way] for way in ways)
            print(f"{kind:<6} {variant:<16} {h:8.1f} {w:13.1f} {f:7.1f} {h / w:7.2f} {h / f:8.2f}")
    print()
    targets = [
        (
            "lean mixed: handler / hand-written",
            us["lean", "mixed", "handler"] / us["lean", "mixed", "hand-written"],
            0.8,
        ),
        ("lean mixed: handler / floor", us["lean", "mixed", "handler"] / us["lean", "mixed", "floor"], 1.8),
        (
            "rich INSERT: handler / hand-written",
            us["rich", "INSERT", "handler"] / us["rich", "INSERT", "hand-written"],
            0.6,
        ),
    ]
    for kind in ("lean", "rich"):
        ratio = us[kind, "MODIFY unmapped", "handler"] / us[kind, "INSERT", "handler"]
        targets.append((f"{kind}: MODIFY unmapped / INSERT (handler)", ratio, 0.25))
    for label, ratio, target in targets:
        verdict = "met" if ratio <= target else "NOT met"
        print(f"  {label:<42} {ratio:5.2f}   target <= {target:<4}  {verdict}")
    print(json.dumps({f"{k}|{v}|{w}": round(value, 1) for (k, v, w), value in sorted(us.items())}))


if __name__ == "__main__":
    main()
