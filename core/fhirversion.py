"""The FHIR versions fhirpipes knows: those a mapper may declare, and those a FHIR store may speak.

fhir.resources (the validation) has R5 as its top-level modules and R4B as a subpackage; it has
no R4 (4.0.1), which AWS HealthLake speaks, so R4 is a store version only (`fhirpipes.storeversion`
checks which R4B mappers' output R4 accepts). Everything that lists versions reads them here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, get_args

FhirVersion = Literal["R4B", "R5"]
"""A FHIR version a mapper may declare (``Mapper.fhir_version``)."""
FHIR_VERSIONS: tuple[str, ...] = get_args(FhirVersion)
MODEL_PACKAGES: Mapping[str, str] = MappingProxyType({"R4B": "fhir.resources.R4B", "R5": "fhir.resources"})
"""Each of `FHIR_VERSIONS` -> the fhir.resources package of its models."""
VERSION_OF_PACKAGE: Mapping[str, str] = MappingProxyType(
    {package: version for version, package in MODEL_PACKAGES.items()}
)
"""A fhir.resources models package -> its FHIR version (a model class's ``__module__`` says which)."""
STORE_VERSIONS: tuple[str, ...] = ("R4", *FHIR_VERSIONS)
"""What ``FHIRPIPES_FHIR_STORE_VERSION`` may say."""


def model_folder(version: str) -> str:
    """Where ``version``'s models are inside the ``fhir/resources`` folder ("" for the top level)."""
    return MODEL_PACKAGES[version].removeprefix("fhir.resources").lstrip(".").replace(".", "/")
