"""Every error-severity FHIR invariant of a resource, evaluated with a FHIRPath engine (fhirpathpy).

For the conformance kit, not the Lambda: the runtime checks a hand-written subset in Python
(`fhirpipes.invariants`); here every constraint of the official definitions applies, the resource's own
(obs-6, dom-3, ...) and those of each datatype at every element of that type (per-1 on each Period).

The constraints are ``invariants_<version>.json`` beside this module (generated from the R4B and R5
StructureDefinitions by ``scripts/gen_rules.py``); element types come from fhirpathpy's own model of the
version (its R4 model for R4B: the closest it has). A plugin's test environment needs ``fhirpathpy``
(in fhirpipes' ``test`` extra); without it the kit's check is skipped, saying so.

A constraint fails only when its expression evaluates to false. Empty (FHIRPath's "unknown", e.g. two
dates of different precisions) counts as satisfied, and so does an expression fhirpathpy cannot evaluate
(``htmlChecks()``, ``conformsTo()``, R5's ``lowBoundary()``, Quantity comparisons such as rng-2):
`evaluate` lists those apart. The verdicts are fhirpathpy's: it compares partial dates of different
precisions as if complete ("2020-05" <= "2020" is false for it, unknown for FHIRPath), so on such a
Period it is stricter than the Lambda's per-1 (`fhirpipes.invariants`); a mapper that writes periods of
mixed precision on purpose can override the check.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

_MODELS = {"R4B": "r4", "R5": "r5"}


@dataclasses.dataclass(frozen=True)
class Failure:
    """One invariant an element breaks: its key, the element's FHIR path and the rule in words."""

    key: str
    path: str
    human: str

    def __str__(self) -> str:
        return f"{self.key} at {self.path}: {self.human}"


def unavailable_reason(fhir_version: str) -> str | None:
    """Why the FHIRPath check can't run for ``fhir_version`` here (None when it can)."""
    if fhir_version not in _MODELS:
        return f"no FHIR invariants for {fhir_version} (R4B and R5 only)"
    try:
        import fhirpathpy  # noqa: F401
    except ImportError:
        return "fhirpathpy is not installed (pip install 'fhirpathpy>=2.0'; in fhirpipes' test extra)"
    return None


@functools.cache
def _constraints(fhir_version: str) -> dict[str, dict[str, dict[str, str]]]:
    path = Path(__file__).with_name(f"invariants_{fhir_version}.json")
    data: dict[str, dict[str, dict[str, str]]] = json.loads(path.read_text(encoding="utf-8"))
    return data


@functools.cache
def _model(fhir_version: str) -> dict[str, Any]:
    from fhirpathpy.models import models

    model: dict[str, Any] = models[_MODELS[fhir_version]]
    return model


@functools.cache
def _parsed(expression: str) -> Any:
    from fhirpathpy.parser import parse

    return parse(expression)  # type: ignore[no-untyped-call]


def _has_value(inputs: list[Any]) -> list[bool]:
    # FHIRPath's hasValue(), which fhirpathpy lacks: one primitive with a value.
    return [len(inputs) == 1 and not isinstance(inputs[0], dict | list)]


def _quiet(*_: Any) -> None:
    # fhirpathpy prints what trace() sees (ref-1 and dom-3 trace ids) unless given a function.
    return None


_OPTIONS = {"userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}}, "traceFn": _quiet}


@dataclasses.dataclass
class Report:
    """What `evaluate` found: the failures, and the keys fhirpathpy could not evaluate."""

    failures: list[Failure] = dataclasses.field(default_factory=list)
    not_evaluated: set[str] = dataclasses.field(default_factory=set)


def evaluate(resource: dict[str, Any], fhir_version: str) -> Report:
    """Evaluate every error-severity invariant at every element of ``resource`` (not changed)."""
    resource = copy.deepcopy(resource)  # fhirpathpy annotates what it reads
    report = Report()
    _walk(
        resource, resource["resourceType"], resource["resourceType"], resource, resource, fhir_version, report
    )
    return report


def _walk(
    node: dict[str, Any],
    type_path: str,
    fhir_path: str,
    resource: dict[str, Any],
    root: dict[str, Any],
    version: str,
    report: Report,
) -> None:
    constraints = _constraints(version)
    model = _model(version)
    checks = {**constraints["*"], **constraints.get(type_path, {})}
    for key, constraint in checks.items():
        _check(node, type_path, fhir_path, key, constraint, resource, root, version, report)
    types: dict[str, str] = model["path2Type"]
    elsewhere: dict[str, str] = model["pathsDefinedElsewhere"]
    for name, value in node.items():
        if name in ("resourceType", "fhir_comments") or name.startswith("_"):
            continue
        child = f"{type_path}.{name}"
        child = elsewhere.get(child, child)
        kind = types.get(child)
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            where = f"{fhir_path}.{name}" + (f"[{index}]" if isinstance(value, list) else "")
            if "resourceType" in item:  # contained, Bundle.entry.resource, Parameters.parameter.resource
                _walk(item, item["resourceType"], where, item, root, version, report)
            elif kind is None or kind in ("BackboneElement", "Element"):
                _walk(item, child, where, resource, root, version, report)
            else:
                _walk(item, kind, where, resource, root, version, report)


def _check(
    node: dict[str, Any],
    base: str,
    fhir_path: str,
    key: str,
    constraint: dict[str, str],
    resource: dict[str, Any],
    root: dict[str, Any],
    version: str,
    report: Report,
) -> None:
    from fhirpathpy import apply_parsed_path
    from fhirpathpy.engine.nodes import ResourceNode

    context = {"resource": resource, "rootResource": root}
    try:
        result = apply_parsed_path(  # type: ignore[no-untyped-call]
            ResourceNode.create_node(node, base),  # type: ignore[no-untyped-call]
            _parsed(constraint["expression"]),
            context,
            _model(version),
            _OPTIONS,
        )
    except Exception:  # fhirpathpy lacks the function, or can't read this form: no verdict
        report.not_evaluated.add(key)
        return
    if result == [False]:
        report.failures.append(Failure(key, fhir_path, constraint["human"]))
