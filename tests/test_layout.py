"""The package layout: public API, unique import names, and what a wheel ships."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF_OPTIONS = ["--no-cache", "--select=TID251", "--output-format=concise", "--stdin-filename=x.py", "-"]


def test_templates_load_as_package_data_of_fhirpipes_templates() -> None:
    from importlib.resources import files

    assert files("fhirpipes.templates").joinpath("patient.json.j2").is_file()
    assert files("fhirpipes.templates").joinpath("_macros", "fhir.j2").is_file()
    assert "core" not in sys.modules  # the folder name never became a second import name


@pytest.mark.parametrize("source", ["import core\n", "from core import mapper\n", "import templates\n"])
def test_ruff_bans_importing_the_folders(source: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *RUFF_OPTIONS],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 1, out.stdout
    assert "TID251" in out.stdout


@pytest.mark.slow
def test_the_wheel_ships_templates_samples_types_and_entry_points(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("fhirpipes-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in [
        "fhirpipes/handler.py",
        "fhirpipes/py.typed",
        "fhirpipes/templates/patient.json.j2",
        "fhirpipes/templates/practitioner.json.j2",
        "fhirpipes/templates/_macros/fhir.j2",
        "fhirpipes_patient/__init__.py",
        "fhirpipes_patient/samples.json",
        "fhirpipes_patient/py.typed",
        "fhirpipes_practitioner/__init__.py",
        "fhirpipes_practitioner/py.typed",
    ]:
        assert expected in names, expected
    assert not any(name.startswith(("core/", "plugins/", "templates/", "tests/")) for name in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[fhirpipes]" in text
    assert "patient = fhirpipes_patient" in text
    assert "practitioner = fhirpipes_practitioner" in text
    assert "[pytest11]" in text
