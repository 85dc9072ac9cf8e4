"""Cold start: a fresh process that imports the handler and maps a batch of one, against a fresh
process that imports the R4B Patient model and validates one Patient. Target: <= 1.2x.

Both run from the tree that ``fhirpipes package`` ships (built here for this machine's Python
and architecture, with its bytecode and compiled templates, then unzipped), in
``python -I -S`` with only that tree on ``sys.path``, as Lambda runs ``/var/task``. With
``--installed`` both run in this virtualenv instead, after a warm-up run that fills the bytecode
and template caches (an approximation of the package). The two sides alternate, each in a new
interpreter; each process times itself from its first import to its result (interpreter
start-up is the same for both and left out): wall time and CPU time, medians.

    python bench/bench_cold_start.py [--runs 21] [--installed]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PRELUDE = """
import sys, time
sys.path[:0] = {path!r}
wall, cpu = time.perf_counter(), time.process_time()
"""

HANDLER = """
from fhirpipes.handler import handler
item = {"id": {"S": "abc"}, "firstName": {"S": "John"}, "lastName": {"S": "Smith"},
        "birthDate": {"S": "07-13-1991"},
        "address": {"M": {"address1": {"S": "453 Ralph Road"}, "city": {"S": "Tampa"},
                          "state": {"S": "FL"}, "postalCode": {"S": "33612"}}}}
out = handler([{"eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
    "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/Patients/stream/2024",
    "dynamodb": {"Keys": {"id": {"S": "abc"}}, "NewImage": item, "SequenceNumber": "1", "SizeBytes": 1,
                 "StreamViewType": "NEW_AND_OLD_IMAGES", "ApproximateCreationDateTime": 1700000000}}])
assert out[0]["details"]["command"] == "PUT", out
"""

MODEL_ONLY = """
from fhir.resources.R4B.patient import Patient
Patient.model_validate({"resourceType": "Patient", "id": "abc",
    "name": [{"family": "Smith", "given": ["John"]}], "birthDate": "1991-07-13",
    "address": [{"line": ["453 Ralph Road"], "city": "Tampa", "state": "FL", "postalCode": "33612"}]})
"""

REPORT = """
import json
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                  "jinja2": "jinja2" in sys.modules, "modules": len(sys.modules)}))
"""


def package_tree(work: Path) -> Path:
    """Build the Lambda zip with ``fhirpipes package`` and unzip it: Lambda's /var/task."""
    out = work / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "fhirpipes", "package", "--out", str(out)], capture_output=True, text=True
    )
    if built.returncode:
        sys.exit(f"bench_cold_start: fhirpipes package failed:\n{built.stderr}")
    (archive,) = out.glob("*.zip")
    tree = work / "task"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tree)
    return tree


def run(code: str, isolated: list[str]) -> dict[str, float]:
    env = {**os.environ, "FHIRPIPES_LOG_LEVEL": "WARNING"}
    out = subprocess.run(
        [sys.executable, *isolated, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--installed", action="store_true", help="this virtualenv, not the packaged tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        if args.installed:
            where, path, isolated = "this virtualenv, caches warmed by a first run", [], []
        else:
            tree = package_tree(Path(work))
            where, path, isolated = (
                "the unzipped `fhirpipes package` zip, python -I -S",
                [str(tree)],
                ["-I", "-S"],
            )
        sides = {
            "import fhirpipes.handler + map a batch of one": PRELUDE.format(path=path) + HANDLER + REPORT,
            "import R4B Patient + validate one Patient": PRELUDE.format(path=path) + MODEL_ONLY + REPORT,
        }
        # warm-up: fills the caches of an installed tree (the package ships them already)
        for code in sides.values():
            run(code, isolated)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
        for _ in range(args.runs):
            for name, code in sides.items():
                results[name].append(run(code, isolated))
    print(f"cold start, {where}; median of {args.runs} fresh processes each, alternating")
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs) * 1000
        cpu = statistics.median(r["cpu"] for r in runs) * 1000
        medians[name] = (wall, cpu)
        jinja = "imports jinja2" if runs[0]["jinja2"] else "no jinja2"
        print(
            f"  {name:<48} {wall:7.1f} ms wall {cpu:7.1f} ms CPU  ({runs[0]['modules']:.0f} modules, {jinja})"
        )
    (handler_wall, handler_cpu), (model_wall, model_cpu) = medians.values()
    print(
        f"  ratio {handler_wall / model_wall:.2f}x wall, {handler_cpu / model_cpu:.2f}x CPU   (target <= 1.2x)"
    )


if __name__ == "__main__":
    main()
