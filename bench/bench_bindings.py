"""Cost of `fhirjson.to_json_value` (the walk that checks required bindings) on the Patient golden outputs.

Prints, from one run: the walk per resource, fhir.resources' own ``model_dump_json`` on the same models
(the baseline), their ratio, and the cost of the first use of a resource type's bindings (one small
package-data file read) in a fresh process.

    python bench/bench_bindings.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "patient"


def entities() -> list[dict[str, Any]]:
    """Every Patient the golden expected outputs carry."""
    out = []
    for path in sorted(GOLDEN.glob("*.expected.json")):
        for event in json.loads(path.read_text(encoding="utf-8")):
            entity = (event.get("details") or {}).get("entity")
            if entity:
                out.append(entity)
    return out


def per_call(function: Any, models: list[Any], repeat: int) -> float:
    """Median over 5 rounds of the mean microseconds per model."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            for model in models:
                function(model)
        rounds.append((time.perf_counter() - start) / (repeat * len(models)) * 1e6)
    return statistics.median(rounds)


FIRST_USE = """
import time
from fhir.resources.R4B.observation import Observation
from fhirpipes.fhirjson import to_json_value
model = Observation.model_validate({"status": "final", "code": {"text": "t"}})
start = time.perf_counter(); to_json_value(model); first = time.perf_counter() - start
start = time.perf_counter(); to_json_value(model); second = time.perf_counter() - start
print(first * 1e6, second * 1e6)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    from fhir.resources.R4B.patient import Patient

    from fhirpipes.fhirjson import to_json_value

    models = [Patient.model_validate(entity) for entity in entities()]
    walk = per_call(to_json_value, models, args.repeat)
    dump = per_call(lambda model: json.loads(model.model_dump_json()), models, args.repeat // 4 or 1)
    print(f"{len(models)} golden Patients, per resource:")
    print(f"  fhirjson.to_json_value        {walk:8.1f} us")
    print(f"  json.loads(model_dump_json()) {dump:8.1f} us   (baseline)")
    print(f"  ratio = {walk / dump:.3f}")
    firsts = [
        [
            float(x)
            for x in subprocess.run(
                [sys.executable, "-c", FIRST_USE], capture_output=True, text=True, check=True
            ).stdout.split()
        ]
        for _ in range(5)
    ]
    first = statistics.median(f[0] for f in firsts)
    second = statistics.median(f[1] for f in firsts)
    print(f"  first walk of an Observation in a fresh process {first:8.1f} us, second {second:6.1f} us")
    print(json.dumps({"walk_us": round(walk, 2), "dump_us": round(dump, 2), "first_use_us": round(first, 1)}))


if __name__ == "__main__":
    main()
