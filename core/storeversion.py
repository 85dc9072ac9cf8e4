"""The FHIR version of the store the resources go to, checked against the mappers at cold start.

fhirpipes validates with fhir.resources, which has R4B (4.3.0, the default) and R5 models but no R4
(4.0.1), and AWS HealthLake speaks R4. R4B changed little: 12 resource types are new in R4B and 10
differ from R4 in an element's path, cardinality or types (core/r4_differences.json, generated from
the official definitions by scripts/gen_r4_differences.py); every other type, Patient and Practitioner
among them, is element for element the same, so its R4B-validated output is valid R4.

``FHIRPIPES_FHIR_STORE_VERSION=R4`` (set it for HealthLake) refuses, at cold start, a mapper whose
output might not be R4: an R5 mapper, or an R4B mapper of a type R4 lacks or defines differently.
``R4B`` or ``R5`` refuses a mapper of another version. Unset, nothing is checked.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fhirpipes.errors import PluginError
from fhirpipes.fhirversion import STORE_VERSIONS as STORE_VERSIONS
from fhirpipes.mapper import Mapper


@functools.cache
def r4_differences() -> dict[str, Any]:
    """The resource types new in R4B, and those R4B changed (with the element paths that differ)."""
    loaded: dict[str, Any] = json.loads(
        Path(__file__).with_name("r4_differences.json").read_text(encoding="utf-8")
    )
    return loaded


def check_store_version(mappers: Iterable[Mapper], store_version: str | None) -> None:
    """`PluginError` naming the first mapper whose resources the store's FHIR version may refuse."""
    if store_version is None:
        return
    for mapper in mappers:
        if store_version != "R4":
            if mapper.fhir_version != store_version:
                raise PluginError(
                    f"the mapper for table {mapper.name!r} writes FHIR {mapper.fhir_version}, the store speaks "
                    f"{store_version} (FHIRPIPES_FHIR_STORE_VERSION): set the mapper's fhir_version"
                )
            continue
        if mapper.fhir_version != "R4B":
            raise PluginError(
                f"the mapper for table {mapper.name!r} writes FHIR {mapper.fhir_version}; the store speaks R4 "
                "(FHIRPIPES_FHIR_STORE_VERSION): use fhir_version='R4B', R4's closest"
            )
        differences = r4_differences()
        if mapper.resource_type in differences["new in R4B"]:
            raise PluginError(
                f"the mapper for table {mapper.name!r} writes {mapper.resource_type}, which FHIR R4 lacks "
                "(new in R4B); the store speaks R4 (FHIRPIPES_FHIR_STORE_VERSION)"
            )
        changed = differences["changed"].get(mapper.resource_type)
        if changed:
            raise PluginError(
                f"the mapper for table {mapper.name!r} writes {mapper.resource_type}, which R4B defines "
                f"differently from R4 ({len(changed)} elements, e.g. {changed[0]}); the store speaks R4 "
                "(FHIRPIPES_FHIR_STORE_VERSION): outputs validated as R4B may be refused"
            )
