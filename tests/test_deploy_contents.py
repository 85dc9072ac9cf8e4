"""`fhirpipes.deploy.contents`: which FHIR versions of fhir.resources ship."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fhirpipes.deploy import DeployError
from fhirpipes.deploy.contents import FHIR_LAYOUT, kept_fhir_versions
from fhirpipes.fhirversion import FHIR_VERSIONS


def test_every_models_folder_of_fhir_resources_is_in_the_layout() -> None:
    """A version fhir.resources adds (a new subpackage of models) would otherwise ship unasked."""
    spec = importlib.util.find_spec("fhir.resources")
    assert spec is not None and spec.submodule_search_locations
    (base,) = spec.submodule_search_locations
    folders = {p.name for p in Path(base).iterdir() if (p / "patient.py").is_file()}
    assert folders == {folder for folder in FHIR_LAYOUT.values() if folder}
    assert (Path(base) / "patient.py").is_file() and FHIR_LAYOUT["R5"] == ""
    assert set(FHIR_VERSIONS) < set(FHIR_LAYOUT)


def test_the_versions_kept_are_the_declared_ones_or_those_asked_for() -> None:
    assert kept_fhir_versions(None, {"R4B"}) == ("R4B",)
    assert kept_fhir_versions(["R5", "R4B", "R5"], {"R4B"}) == ("R4B", "R5")
    with pytest.raises(DeployError, match="leaves out R4B"):
        kept_fhir_versions(["R5"], {"R4B"})


@pytest.mark.parametrize("asked", ["R4", "STU3"])
def test_a_version_no_mapper_can_declare_is_refused(asked: str) -> None:
    # STU3 is in fhir.resources (and so in FHIR_LAYOUT, to be removed) but no mapper can use it.
    with pytest.raises(DeployError, match=rf"unknown FHIR version {asked} \(known: R4B, R5\)"):
        kept_fhir_versions([asked], {"R4B"})
