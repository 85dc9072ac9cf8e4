"""FHIR's required value-set bindings, by fhir.resources model class, loaded lazily from package data.

The data (``bindings_data/<version>/<module>.json``) is generated from the official definitions by
``scripts/gen_bindings.py``, which documents its sources and caveats; ``_summary.json`` beside the data
lists every required binding it could not expand offline. One small file per fhir.resources module is
read on the first use of one of its classes, never at cold start.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from fhirpipes.fhirversion import VERSION_OF_PACKAGE

Allowed = frozenset[str] | dict[str, frozenset[str]]
"""A code element's codes; a Coding or CodeableConcept element's codes by system."""

# A plain path, not importlib.resources: the package is always unpacked (Lambda zip, wheel install).
_DATA = Path(__file__).with_name("bindings_data")


def required_bindings(cls: type) -> dict[str, Allowed]:
    """The required-bound elements of the model class ``cls``: JSON name -> allowed codes.

    Empty for a class that is not a fhir.resources R4B or R5 model, or has no such binding.
    """
    package, _, stem = cls.__module__.rpartition(".")
    version = VERSION_OF_PACKAGE.get(package)
    if version is None:
        return {}
    return _module(version, stem).get(cls.__name__, {})


@functools.cache
def _module(version: str, stem: str) -> dict[str, dict[str, Allowed]]:
    try:
        text = (_DATA / version / f"{stem}.json").read_text(encoding="utf-8")
    except FileNotFoundError:  # the generator writes no file for a module without required bindings
        return {}
    loaded: dict[str, dict[str, Any]] = json.loads(text)
    return {
        name: {element: _allowed(codes) for element, codes in elements.items()}
        for name, elements in loaded.items()
    }


def _allowed(codes: list[str] | dict[str, list[str]]) -> Allowed:
    if isinstance(codes, list):
        return frozenset(codes)
    return {system: frozenset(values) for system, values in codes.items()}
