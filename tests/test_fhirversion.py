"""`fhirpipes.fhirversion`: the one list of FHIR versions, and where fhir.resources keeps each."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import get_args

from fhirpipes.bindings import required_bindings
from fhirpipes.fhirversion import (
    FHIR_VERSIONS,
    MODEL_PACKAGES,
    STORE_VERSIONS,
    VERSION_OF_PACKAGE,
    FhirVersion,
    model_folder,
)
from fhirpipes.resource import has_resource_type, model_class


def test_the_versions_are_the_type_and_each_has_a_models_package() -> None:
    assert FHIR_VERSIONS == get_args(FhirVersion) == tuple(MODEL_PACKAGES) == ("R4B", "R5")
    assert STORE_VERSIONS[0] == "R4" and STORE_VERSIONS[1:] == FHIR_VERSIONS
    for version in FHIR_VERSIONS:
        assert VERSION_OF_PACKAGE[MODEL_PACKAGES[version]] == version
        assert model_class("Patient", version).__module__ == f"{MODEL_PACKAGES[version]}.patient"


def test_model_folder_is_where_the_package_is() -> None:
    spec = importlib.util.find_spec("fhir.resources")
    assert spec is not None and spec.submodule_search_locations
    (base,) = spec.submodule_search_locations
    for version in FHIR_VERSIONS:
        package = importlib.import_module(MODEL_PACKAGES[version])
        assert Path(base, model_folder(version)) == Path(package.__file__ or "").parent
        assert has_resource_type("Patient", version)
    assert model_folder("R5") == ""
    # Citation is new in R4B (not R4) and in both fhir.resources versions; Nothing is in neither.
    assert has_resource_type("Citation", "R4B") and not has_resource_type("Nothing", "R4B")


def test_the_readers_of_a_models_version_agree() -> None:
    # bindings and fhirjson name a model's version by its module's package: VERSION_OF_PACKAGE.
    assert required_bindings(model_class("Patient", "R4B"))
    assert required_bindings(model_class("Patient", "R5"))
