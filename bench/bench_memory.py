"""Peak memory of the largest batch that fits a Pipe's 6 MB payload: MODIFYs of full Patients
carrying both images (about 3,700 records). Target: peak RSS under 200 MiB.

Runs the handler in a fresh process that parses the batch from JSON text, as Lambda does, and
reports that process's peak RSS, with the RSS after imports for scale.

    python bench/bench_memory.py [--records 3700]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from records import patient_record

CHILD = """
import json, resource, sys
from fhirpipes.handler import handler
from fhir.resources.R4B.patient import Patient  # noqa: F401  (imported by the first record anyway)
after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
event = json.loads(sys.stdin.read())
out = handler(event)
assert len(out) == len(event), (len(out), len(event))
assert all(e["details"]["command"] == "PUT" for e in out)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"after_imports_kib": after_imports, "peak_kib": peak}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3700)
    args = parser.parse_args()
    payload = json.dumps([patient_record(index, with_old=True) for index in range(args.records)])
    env = {**os.environ, "FHIRPIPES_LOG_LEVEL": "WARNING"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], input=payload, capture_output=True, text=True, check=True, env=env
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{args.records} MODIFY records with both images, payload {len(payload) / 2**20:.2f} MiB")
    print(f"  RSS after imports   {figures['after_imports_kib'] / 1024:7.1f} MiB")
    print(f"  peak RSS            {figures['peak_kib'] / 1024:7.1f} MiB   (target < 200 MiB)")


if __name__ == "__main__":
    main()
