"""``fhirpipes new``: refusals, what it writes, and the whole promise (a third plugin, installed, in a mixed batch)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpipes.cli import main
from fhirpipes.scaffold.generate import plan, render_template, samples
from fhirpipes.testing import MapperConformanceTests, make_record, run_checks

VENV_BIN = Path(sys.executable).parent


def new(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["new", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["9lives", "--table", "Cats", "--resource", "Observation"], "is not a valid Python package name"),
        (["my-plugin", "--table", "Cats", "--resource", "Observation"], "is not a valid Python package name"),
        (["class", "--table", "Cats", "--resource", "Observation"], "is a Python keyword"),
        (["MyPlugin", "--table", "Cats", "--resource", "Observation"], "use a lowercase package name"),
        (["json", "--table", "Cats", "--resource", "Observation"], "would shadow an existing module"),
        (["fhirpipes_patient", "--table", "Cats", "--resource", "Patient"], "already an importable package"),
        (["cats", "--table", "C", "--resource", "Observation"], "is not a DynamoDB table name"),
        (["cats", "--table", "Cats", "--resource", "Observaton"], "did you mean Observation"),
        (["cats", "--table", "Cats", "--resource", "ActorDefinition"], "not a FHIR R4B resource type"),
        (["fhirpipes_", "--table", "Cats", "--resource", "Observation"], "which pip refuses"),
        (
            ["cats_", "--table", "Cats", "--resource", "Observation"],
            "the project name 'cats-', which pip refuses",
        ),
        (["_cats", "--table", "Cats", "--resource", "Observation"], "which pip refuses"),
        (["fhirpipes__x", "--table", "Cats", "--resource", "Observation"], "after fhirpipes_ must start"),
        (["cats", "--table", "Cats", "--resource", "Resource"], "'Resource' is an abstract FHIR type"),
        (["cats", "--table", "Cats", "--resource", "DomainResource"], "is an abstract FHIR type"),
        (
            ["cats", "--table", "Cats", "--resource", "CanonicalResource", "--fhir-version", "R5"],
            "is an abstract FHIR type",
        ),
        (["cats", "--table", "Patients", "--resource", "Observation"], "plugin 'patient' already maps table"),
        (
            ["patient", "--table", "Cats", "--resource", "Patient"],
            "already has the entry-point name 'patient'",
        ),
        (["fhirpipes_patient_x", "--table", "Cats", "--resource", "Patient"], None),
    ],
)
def test_refuses_with_a_one_line_reason(args: list[str], reason: str | None, tmp_path: Path) -> None:
    code, output = new(*args, "--dir", str(tmp_path / "out"))
    if reason is None:  # a near miss of a refusal, accepted
        assert code == 0, output
        return
    assert code != 0
    assert reason in output
    assert output.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    code, output = new("cats", "--table", "Cats", "--resource", "Observation", "--dir", str(tmp_path))
    assert code != 0
    assert "exists and is not an empty directory" in output
    assert [path.name for path in tmp_path.iterdir()] == ["keep.txt"]


def test_resource_types_are_checked_against_the_chosen_fhir_version(tmp_path: Path) -> None:
    code, output = new(
        "actors",
        "--table",
        "Actors",
        "--resource",
        "ActorDefinition",
        "--fhir-version",
        "R5",
        "--dir",
        str(tmp_path),
    )
    assert code == 0, output
    assert 'fhir_version="R5"' in (tmp_path / "src" / "actors" / "__init__.py").read_text()


def test_writes_a_complete_project(tmp_path: Path) -> None:
    code, output = new(
        "fhirpipes_obs", "--table", "Observations", "--resource", "Observation", "--dir", str(tmp_path)
    )
    assert code == 0, output
    files = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert files == [
        "README.md",
        "pyproject.toml",
        "src/fhirpipes_obs/__init__.py",
        "src/fhirpipes_obs/observation.json.j2",
        "src/fhirpipes_obs/py.typed",
        "src/fhirpipes_obs/samples.json",
        "tests/test_fhirpipes_obs.py",
    ]
    pyproject = (tmp_path / "pyproject.toml").read_text()
    assert '[project.entry-points.fhirpipes]\nobs = "fhirpipes_obs"' in pyproject
    assert '"fhirpipes_obs" = ["py.typed", "*.j2", "samples.json"]' in pyproject
    assert (
        "class TestObservationConformance(MapperConformanceTests):"
        in (tmp_path / "tests" / "test_fhirpipes_obs.py").read_text()
    )
    readme = (tmp_path / "README.md").read_text()
    assert "| `code` | S | yes | `Observation.code` |" in readme
    assert "fhirpipes conformance obs" in readme


def test_the_template_fills_the_required_elements_from_the_model() -> None:
    project = plan("obs_plugin", "Observations", "Observation")
    assert [element.key for element in project.elements] == ["code", "status"]
    text = render_template(project)
    assert '"code": {"coding": [{"system": "urn:example:code", "code": {{ new.code }}}]}' in text
    assert '"status": {{ new.status | default("registered") }}' in text
    assert samples(project) == [
        {"id": "observation-0001", "code": "example", "status": "registered"},
        {"id": "observation-0002", "code": "example"},
    ]
    encounter = plan("enc_plugin", "Encounters", "Encounter")
    assert [element.key for element in encounter.elements] == [
        "class",
        "status",
    ]  # JSON names, not class_fhir


def test_required_choice_elements_are_filled_once() -> None:
    project = plan("medreq", "MedicationRequests", "MedicationRequest")
    keys = [element.key for element in project.elements]
    assert "medicationCodeableConcept" in keys
    assert "medicationReference" not in keys


@pytest.mark.parametrize(("resource_type", "version"), [("Observation", "R4B"), ("Encounter", "R5")])
def test_a_fresh_project_passes_the_kit_before_it_is_installed(
    resource_type: str, version: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = f"fresh_{resource_type.lower()}_{version.lower()}"
    code, output = new(
        package,
        "--table",
        "Things",
        "--resource",
        resource_type,
        "--fhir-version",
        version,
        "--dir",
        str(tmp_path),
    )
    assert code == 0, output
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    module = importlib.import_module(package)
    checks = type("Checks", (MapperConformanceTests,), {"mapper": module.MAPPER, "published": False})
    results = list(run_checks(checks))
    assert [r for r in results if r.status == "failed"] == []
    assert sum(r.status == "passed" for r in results) >= 10


def test_without_dir_it_writes_outside_the_git_checkout_it_is_run_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / "docs").mkdir()
    monkeypatch.chdir(checkout / "docs")
    result = CliRunner().invoke(main, ["new", "obs_plugin", "--table", "Obs", "--resource", "Observation"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "obs-plugin" / "pyproject.toml").is_file()
    assert list(checkout.rglob("pyproject.toml")) == []
    assert f"inside the git checkout {checkout}" in result.stderr
    assert f"-m pip install -e '{tmp_path / 'obs-plugin'}[test]'" in result.stdout  # this venv's pip

    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    result = CliRunner().invoke(main, ["new", "obs_two", "--table", "Obs2", "--resource", "Observation"])
    assert result.exit_code == 0, result.output
    assert (plain / "obs-two" / "pyproject.toml").is_file()
    assert result.stderr == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("package", "resource_type", "version"),
    [("fhirpipes_obs", "Observation", "R4B"), ("medicinal_products", "MedicinalProductDefinition", "R5")],
)
def test_the_project_is_ruff_clean_at_default_settings(
    package: str, resource_type: str, version: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    code, output = new(
        package,
        "--table",
        "MedicinalProducts",
        "--resource",
        resource_type,
        "--fhir-version",
        version,
        "--dir",
        str(project),
    )
    assert code == 0, output
    ruff = str(VENV_BIN / "ruff")
    # --isolated: no configuration (line length 88); the selection adds line length and import order.
    for command in (
        [ruff, "check", "--isolated", "."],
        [ruff, "check", "--isolated", "--select", "E,W,F,I,UP,B", "."],
        [ruff, "format", "--isolated", "--check", "."],
    ):
        checked = subprocess.run(command, cwd=project, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.slow
def test_a_generated_plugin_installs_passes_the_kit_and_maps_beside_the_built_ins(tmp_path: Path) -> None:
    """The whole promise: new plugin -> wheel with its data -> installed -> listed -> conformant -> mapped."""
    project = tmp_path / "fhirpipes-observation"
    code, output = new(
        "fhirpipes_observation", "--table", "Observations", "--resource", "Observation", "--dir", str(project)
    )
    assert code == 0, output

    # The wheel carries the template and samples (package data), as the Lambda bundle will.
    pip = [str(VENV_BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "whl"), str(project)],
        check=True,
    )
    (wheel,) = (tmp_path / "whl").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fhirpipes_observation/observation.json.j2" in names
    assert "fhirpipes_observation/samples.json" in names
    assert any(name.endswith("entry_points.txt") for name in names)

    # Editable, without build isolation or dependencies: no network, and fhirpipes is already here.
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(project)], check=True)
    try:
        fhirpipes = str(VENV_BIN / "fhirpipes")
        listing = json.loads(
            subprocess.run(
                [fhirpipes, "plugins", "--json"], check=True, capture_output=True, text=True
            ).stdout
        )
        assert {"observation", "patient", "practitioner"} <= {plugin["name"] for plugin in listing}

        kit = subprocess.run([fhirpipes, "conformance", "observation"], capture_output=True, text=True)
        assert kit.returncode == 0, kit.stdout + kit.stderr
        assert "0 failed" in kit.stdout

        tests = subprocess.run(
            [str(VENV_BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=project,
            capture_output=True,
            text=True,
        )
        assert tests.returncode == 0, tests.stdout

        batch = [
            make_record("Patients", {"id": "p-1", "lastName": "Smith", "gender": "F"}),
            make_record("Observations", {"id": "o-1", "code": "8302-2", "status": "final"}),
            make_record("Practitioners", {"id": "pr-1", "npi": "1234567893", "lastName": "Chen"}),
            make_record("Observations", None, {"id": "o-1", "code": "8302-2"}),
            make_record("Observations", {"id": "o-2", "status": "final"}),  # no code: a record error
        ]
        mapped = subprocess.run(
            [fhirpipes, "map", "-", "--indent", "0"],
            input=json.dumps(batch),
            capture_output=True,
            text=True,
        )
        assert mapped.returncode == 3, mapped.stderr  # one record is an error event
        events = json.loads(mapped.stdout)
        assert [(event["source"], event["details"]["command"]) for event in events] == [
            ("PatientTable", "PUT"),
            ("ObservationTable", "PUT"),
            ("PractitionerTable", "PUT"),
            ("ObservationTable", "DELETE"),
            ("ObservationTable", "ERROR"),
        ]
        assert events[1]["details"]["entity"]["id"] == events[3]["details"]["entity"]["id"] == "o-1"
        assert events[4]["details"]["error"]["template"] == "observation.json.j2"
        assert events[4]["details"]["error"]["line"] is not None
    finally:
        subprocess.run([*pip, "uninstall", "-y", "fhirpipes-observation"], check=True)
    after = subprocess.run(
        [str(VENV_BIN / "fhirpipes"), "plugins"], check=True, capture_output=True, text=True
    )
    assert "observation" not in after.stdout
