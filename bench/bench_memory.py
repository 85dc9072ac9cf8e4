"""Peak memory of the largest batch that fits a Pipe's 6 MB: MODIFYs carrying both images.

For each item shape (records.py), as many MODIFY records (both images, ``lastName`` changed) as
fit 6 MB (6,291,456 bytes, the dispatcher's limit) counted by `fhirpipes.response.response_size`.
A fresh process parses the batch from JSON text with simplejson (as the Lambda runtime does),
maps it with ``fhirpipes.handler.handler``, encodes the response as the runtime does
(`encode_response`), and reports its peak RSS, with the RSS after imports for scale.
Target: peak RSS < 150 MiB.

    python bench/bench_memory.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from records import lean_item, modify_mapped, rich_item

LIMIT = 6 * 2**20

# Peak RSS from /proc's VmHWM: getrusage's ru_maxrss carries the parent's peak over fork and exec.
CHILD = """
import sys
import simplejson
def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
from fhirpipes.handler import handler
from fhirpipes.response import encode_response
from fhir.resources.R4B.patient import Patient  # noqa: F401  (imported by the first record anyway)
after_imports = peak_kib()
event = simplejson.loads(sys.stdin.read())
out = encode_response(handler(event))
peak = peak_kib()
print(simplejson.dumps({"after_imports_kib": after_imports, "peak_kib": peak, "response": len(out)}))
"""


def largest_batch(item: object) -> list[dict[str, object]]:
    """As many records as fit LIMIT: '[' and ']' plus each record plus ', ' between them."""
    from fhirpipes.response import response_size

    records, size = [], 2
    while True:
        record = modify_mapped(item, len(records))  # type: ignore[arg-type]
        grown = size + response_size(record) + (2 if records else 0)
        if grown > LIMIT:
            break
        records.append(record)
        size = grown
    assert response_size(records) == size <= LIMIT
    return records


def main() -> None:
    env = {**os.environ, "FHIRPIPES_LOG_LEVEL": "WARNING"}
    for kind, item in (("rich", rich_item), ("lean", lean_item)):
        records = largest_batch(item)
        payload = json.dumps(records)
        out = subprocess.run(
            [sys.executable, "-c", CHILD], input=payload, capture_output=True, text=True, check=True, env=env
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        peak = figures["peak_kib"] / 1024
        print(
            f"{kind}: {len(records)} MODIFY records with both images, {len(payload) / 1e6:.2f} MB in, "
            f"{figures['response'] / 1e6:.2f} MB out"
        )
        print(f"  RSS after imports   {figures['after_imports_kib'] / 1024:7.1f} MiB")
        print(
            f"  peak RSS            {peak:7.1f} MiB   (target < 150 MiB: {'met' if peak < 150 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
