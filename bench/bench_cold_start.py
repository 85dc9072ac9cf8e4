"""Cold start: a fresh process importing the handler and mapping a batch of one, against a fresh
process that only imports the R4B Patient model and validates one Patient. Target: <= 1.3x.

Each side runs in new interpreters, alternately (the machines are noisy), and the median of the
in-process times is compared; interpreter start-up is the same for both and left out.

    python bench/bench_cold_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HANDLER = """
import time; start = time.perf_counter()
from fhirpipes.handler import handler
item = {"id": {"S": "abc"}, "firstName": {"S": "John"}, "lastName": {"S": "Smith"},
        "birthDate": {"S": "07-13-1991"},
        "address": {"M": {"address1": {"S": "453 Ralph Road"}, "city": {"S": "Tampa"}}}}
out = handler([{"eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
    "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/Patients/stream/2024",
    "dynamodb": {"Keys": {"id": {"S": "abc"}}, "NewImage": item, "SequenceNumber": "1", "SizeBytes": 1,
                 "StreamViewType": "NEW_AND_OLD_IMAGES", "ApproximateCreationDateTime": 1700000000}}])
assert out[0]["details"]["command"] == "PUT", out
print(time.perf_counter() - start)
"""

MODEL_ONLY = """
import time; start = time.perf_counter()
from fhir.resources.R4B.patient import Patient
Patient.model_validate({"resourceType": "Patient", "id": "abc",
    "name": [{"family": "Smith", "given": ["John"]}], "birthDate": "1991-07-13",
    "address": [{"line": ["453 Ralph Road"], "city": "Tampa"}]})
print(time.perf_counter() - start)
"""


def run(code: str) -> float:
    env = {**os.environ, "FHIRPIPES_LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    run(HANDLER), run(MODEL_ONLY)  # warm the bytecode caches, as a packaged Lambda ships them
    handler_times, model_times = [], []
    for _ in range(args.runs):
        handler_times.append(run(HANDLER))
        model_times.append(run(MODEL_ONLY))
    handler_ms = statistics.median(handler_times) * 1000
    model_ms = statistics.median(model_times) * 1000
    print(f"cold start, median of {args.runs} fresh processes each")
    print(f"  import fhirpipes.handler + map a batch of one   {handler_ms:7.1f} ms")
    print(f"  import R4B Patient + validate one Patient       {model_ms:7.1f} ms")
    print(f"  ratio = {handler_ms / model_ms:.2f}   (target <= 1.3)")
    print(json.dumps({"handler_ms": round(handler_ms, 1), "model_ms": round(model_ms, 1)}))


if __name__ == "__main__":
    main()
