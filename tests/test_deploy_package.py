"""`fhirpipes package`: the deployment zip, and proof that the unpacked zip maps records as Lambda would."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fhirpipes.cli import main
from fhirpipes.deploy import DeployError
from fhirpipes.deploy import package as packaging
from fhirpipes.deploy.package import PackageResult, build_package, check_size, read_manifest
from fhirpipes.dispatch import Dispatcher
from fhirpipes.plugins import load_registry
from fhirpipes.settings import Settings
from fhirpipes.testing.stream import make_batch

REAL_WHEEL_OF = packaging._wheel_of  # before `same_sources` swaps it for the module
REPO = Path(__file__).resolve().parent.parent
ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[
    platform.machine().lower()
]
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


# --- refusals (fast: they happen before pip runs) --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--python", "3.10"], "unknown Python version '3.10'"),
        (["--python", "2.7"], "unknown Python version '2.7'"),
        (["--arch", "i386"], "unknown architecture 'i386'"),
        (["--plugin", "nonesuch"], "no entry point in the 'fhirpipes' group for plugin nonesuch"),
        (["--fhir-versions", "R4"], "unknown FHIR version R4"),
        (["--fhir-versions", "R5"], "leaves out R4B, which a registered mapper uses"),
    ],
)
def test_the_cli_refuses_with_a_one_line_reason(tmp_path: Path, args: list[str], reason: str) -> None:
    result = CliRunner().invoke(main, ["package", "--out", str(tmp_path), *args])
    assert result.exit_code != 0
    assert reason in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_no_plugins_installed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: importlib.metadata.EntryPoints(()))
    with pytest.raises(DeployError, match="no plugins installed"):
        build_package(tmp_path)


def test_lambdas_size_limits_are_refused() -> None:
    check_size(unzipped=250 * 1024 * 1024 - 1, zipped=50 * 1024 * 1024 - 1)
    with pytest.raises(DeployError, match=r"unzipped, over Lambda's 250\.0 MiB limit"):
        check_size(unzipped=250 * 1024 * 1024)
    with pytest.raises(DeployError, match=r"zipped, over Lambda's 50\.0 MiB direct-upload limit"):
        check_size(zipped=50 * 1024 * 1024)


# --- the trimming steps, on small made-up trees ----------------------------------------------------


def _dist(stage: Path, name: str, requires: list[str], files: dict[str, str]) -> None:
    info = stage / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    headers = [f"Name: {name}", "Version: 1.0", *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\n" + "\n".join(headers) + "\n\nRequires-Dist: not-a-header\n"
    )
    rows = []
    for path, text in files.items():
        (stage / path).parent.mkdir(parents=True, exist_ok=True)
        (stage / path).write_text(text)
        rows.append(f"{path},sha256=x,{len(text)}")
    rows += [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,", f"../../bin/{name},,"]
    (info / "RECORD").write_text("\n".join(rows) + "\n")


def test_boto3_and_what_only_it_needs_are_left_out_even_when_a_plugin_requires_it(tmp_path: Path) -> None:
    _dist(tmp_path, "myplugin", ["boto3>=1.34", "urllib3<3", "fhirpipes"], {"myplugin/__init__.py": ""})
    _dist(
        tmp_path,
        "fhirpipes",
        ["pluggy>=1.5", 'moto[server]; extra == "local"'],
        {"fhirpipes/__init__.py": ""},
    )
    _dist(tmp_path, "pluggy", [], {"pluggy/__init__.py": ""})
    _dist(tmp_path, "boto3", ["botocore", "jmespath", "s3transfer"], {"boto3/__init__.py": ""})
    _dist(tmp_path, "botocore", ["urllib3", "python-dateutil", "jmespath"], {"botocore/__init__.py": ""})
    _dist(tmp_path, "s3transfer", ["botocore"], {"s3transfer/__init__.py": ""})
    _dist(tmp_path, "jmespath", [], {"jmespath/__init__.py": ""})
    _dist(tmp_path, "python-dateutil", ["six"], {"dateutil/__init__.py": ""})
    _dist(tmp_path, "six", [], {"six.py": ""})
    _dist(tmp_path, "urllib3", [], {"urllib3/__init__.py": ""})

    removed = packaging._remove_runtime_provided(tmp_path, {"fhirpipes", "myplugin"})

    assert removed == ["boto3", "botocore", "jmespath", "python-dateutil", "s3transfer", "six"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        ["fhirpipes", "fhirpipes-1.0.dist-info", "myplugin", "myplugin-1.0.dist-info", "pluggy",
         "pluggy-1.0.dist-info", "urllib3", "urllib3-1.0.dist-info"]
    )  # fmt: skip


def test_fhir_versions_left_out_keep_what_the_kept_ones_need(tmp_path: Path) -> None:
    base = tmp_path / "fhir" / "resources"
    for path in ("__init__.py", "py.typed", "patient.py", "fhirtypes.py", "R4B/__init__.py", "R4B/patient.py",
                 "STU3/__init__.py", "STU3/patient.py"):  # fmt: skip
        (base / path).parent.mkdir(parents=True, exist_ok=True)
        (base / path).write_text("")
    packaging._prune_fhir(tmp_path, ["R4B"])
    kept = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
    assert kept == ["R4B/__init__.py", "R4B/patient.py", "__init__.py", "py.typed"]


def test_records_list_exactly_what_ships(tmp_path: Path) -> None:
    _dist(tmp_path, "pkg", [], {"pkg/__init__.py": "x = 1\n", "pkg/gone.py": ""})
    (tmp_path / "pkg" / "gone.py").unlink()
    cache = tmp_path / "pkg" / "__pycache__"
    cache.mkdir()
    (cache / "__init__.cpython-311.pyc").write_bytes(b"")
    packaging._rewrite_records(tmp_path)
    rows = list(csv.reader((tmp_path / "pkg-1.0.dist-info" / "RECORD").read_text().splitlines()))
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"x = 1\n").digest()).rstrip(b"=").decode()
    assert rows == [
        ["pkg-1.0.dist-info/METADATA", "", ""],
        ["pkg-1.0.dist-info/RECORD", "", ""],
        ["pkg/__init__.py", f"sha256={digest}", "6"],  # recomputed: the made-up "sha256=x" was wrong
        ["pkg/__pycache__/__init__.cpython-311.pyc", "", ""],
    ]


def test_what_the_handler_never_imports_is_left_out_with_its_entry_points(tmp_path: Path) -> None:
    _dist(
        tmp_path,
        "fhirpipes",
        ["click>=8.1", "pluggy"],
        {"fhirpipes/__init__.py": "", "fhirpipes/cli.py": "", "fhirpipes/handler.py": "",
         "fhirpipes/testing/__init__.py": "", "fhirpipes/testing/fixtures.py": "",
         "fhirpipes/pipes/__init__.py": "", "fhirpipes/pipesfoo.py": ""},
    )  # fmt: skip
    info = tmp_path / "fhirpipes-1.0.dist-info"
    (info / "entry_points.txt").write_text(
        "[console_scripts]\nfhirpipes = fhirpipes.cli:main\n\n"
        "[fhirpipes]\npatient = fhirpipes_patient\n\n"
        "[pytest11]\nfhirpipes = fhirpipes.testing.fixtures\n\n"
        "[other]\nkept = fhirpipes.pipesfoo:x\n"
    )
    _dist(tmp_path, "click", [], {"click/__init__.py": ""})
    _dist(tmp_path, "pluggy", [], {"pluggy/__init__.py": ""})
    _dist(tmp_path, "tool", ["click"], {"tool/__init__.py": ""})

    assert packaging._remove_runtime_provided(tmp_path, {"fhirpipes"}) == ["click", "tool"]
    packaging._leave_out(tmp_path)

    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.py"))
    assert left == [
        "fhirpipes/__init__.py",
        "fhirpipes/handler.py",
        "fhirpipes/pipesfoo.py",
        "pluggy/__init__.py",
    ]
    assert (info / "entry_points.txt").read_text() == (
        "[fhirpipes]\npatient = fhirpipes_patient\n\n[other]\nkept = fhirpipes.pipesfoo:x\n"
    )
    # Another distribution that needs click keeps it: only fhirpipes' own edge is cut.
    _dist(tmp_path, "click", [], {"click/__init__.py": ""})
    _dist(tmp_path, "tool", ["click"], {"tool/__init__.py": ""})
    assert packaging._remove_runtime_provided(tmp_path, {"fhirpipes", "tool"}) == []


def _git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def test_a_local_source_is_copied_as_git_tracks_it(tmp_path: Path) -> None:
    project = tmp_path / "monorepo" / "plugin"
    for path in ("pyproject.toml", "pkg/__init__.py", "pkg/samples.json", "pkg/gone.json"):
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(path)
    (project.parent / "other.txt").write_text("not this plugin's")
    _git(project.parent, "init", "-q")
    _git(project.parent, "add", ".")
    _git(project.parent, "commit", "-qm", "x")
    (project / "pkg" / "phi-export.json").write_text('{"mrn": "12345"}')  # untracked
    (project / "pkg" / "gone.json").unlink()  # deleted in the work tree, not yet in git
    (project / "pkg" / "samples.json").write_text("edited")  # tracked: shipped as it is now

    copy = tmp_path / "copy"
    assert packaging.copy_tracked_files(project, copy) == 3
    files = {p.relative_to(copy).as_posix(): p.read_text() for p in copy.rglob("*") if p.is_file()}
    assert files == {
        "pyproject.toml": "pyproject.toml",
        "pkg/__init__.py": "pkg/__init__.py",
        "pkg/samples.json": "edited",
    }

    outside = tmp_path / "loose"
    outside.mkdir()
    with pytest.raises(DeployError, match="not in a git work tree"):
        packaging.copy_tracked_files(outside, tmp_path / "copy2")


def test_the_zip_does_not_depend_on_file_times_or_permissions_or_order(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "b").mkdir(parents=True)
    (stage / "b" / "z.py").write_text("z")
    (stage / "a.py").write_text("a")
    (stage / "b" / "lib.so").write_bytes(b"\x7fELF")
    (stage / "b" / "lib.so").chmod(0o775)
    first = tmp_path / "1.zip"
    packaging._write_zip(first, packaging._files(stage), b"c")
    os.utime(stage / "a.py", (1_000_000, 1_000_000))
    (stage / "b" / "z.py").chmod(0o600)
    second = tmp_path / "2.zip"
    packaging._write_zip(second, packaging._files(stage), b"c")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["a.py", "b/lib.so", "b/z.py"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert [i.external_attr >> 16 & 0o777 for i in infos] == [0o644, 0o755, 0o644]


# --- the real package (pip, PyPI or its cache) -----------------------------------------------------


@pytest.fixture(scope="module")
def same_sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Build each local distribution (fhirpipes, from this checkout) into a wheel once for the module.

    Others may edit the checkout while the tests run; every build here must get the same inputs.
    """
    wheels: dict[str, str] = {}
    build_wheel = packaging._wheel_of

    def once(source: packaging.Source, work: Path, say: packaging.Log) -> str:
        if source.name not in wheels:
            wheels[source.name] = build_wheel(source, tmp_path_factory.mktemp("wheel"), say)
        return wheels[source.name]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(packaging, "_wheel_of", once)
        yield


@pytest.fixture(scope="module")
def built(same_sources: None, tmp_path_factory: pytest.TempPathFactory) -> PackageResult:
    """The package for this machine's Python and architecture, as `fhirpipes package` builds it."""
    return build_package(tmp_path_factory.mktemp("dist"), python=PYTHON, arch=ARCH)


@pytest.fixture(scope="module")
def unpacked(built: PackageResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("task")
    assert list(folder.iterdir()) == []
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(folder)
    return folder


LAMBDA_LIKE = """
import importlib, json, sys
sys.path[:0] = [sys.argv[1]]
module, _, name = sys.argv[2].rpartition(".")
handler = getattr(importlib.import_module(module), name)  # as the Lambda runtime loads its handler
result = handler(json.load(sys.stdin), None)
try:
    import fhir.resources.patient  # R5, left out
    r5 = True
except ImportError:
    r5 = False
import fhir.resources.R4B.practitioner
json.dump({
    "result": result,
    "r5": r5,
    "fhirpipes": sys.modules["fhirpipes"].__file__,
    "aws_sdk": sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore")),
    "left_out_imported": sorted(
        m for m in sys.modules
        if m.split(".")[0] == "click" or m.startswith(tuple(sys.argv[3].split(",")))
    ),
    "site": "site" in sys.modules,
}, sys.stdout)
"""


def _batch() -> tuple[list[dict[str, Any]], set[str]]:
    """INSERTs of every registered mapper's sample items (Patients, Practitioners, ...)."""
    batch: list[dict[str, Any]] = []
    tables = set()
    for mapper in load_registry().mappers:
        if mapper.samples:
            batch += make_batch(mapper.table, mapper.samples)
            tables.add(mapper.table)
    return batch, tables


@pytest.mark.slow
def test_the_unpacked_package_maps_a_batch_as_lambda_would_run_it(
    built: PackageResult, unpacked: Path
) -> None:
    batch, tables = _batch()
    assert "Patients" in tables
    if any(m.table == "Practitioners" for m in load_registry().mappers):
        assert "Practitioners" in tables
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", LAMBDA_LIKE, str(unpacked), built.handler, LEFT_OUT_MODULES],
        input=json.dumps(batch),
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert Path(seen["fhirpipes"]).is_relative_to(unpacked)  # not this checkout
    assert seen["aws_sdk"] == [] and seen["site"] is False and seen["r5"] is False
    assert seen["left_out_imported"] == []
    result = seen["result"]
    assert len(result) == len(batch)
    assert {event["details"]["command"] for event in result} == {"PUT"}
    by_type = {event["details"]["entity"]["resourceType"] for event in result}
    assert by_type == {m.resource_type for m in load_registry().mappers if m.table in tables}
    # The same code here maps the batch to the very same events.
    assert result == json.loads(
        json.dumps(Dispatcher(load_registry(), Settings.from_env({})).map_batch(batch))
    )


LEFT_OUT_MODULES = ",".join(path.removesuffix(".py").replace("/", ".") for path in packaging.LEFT_OUT)


@pytest.mark.slow
def test_the_package_leaves_out_what_the_handler_never_imports(built: PackageResult, unpacked: Path) -> None:
    for path in packaging.LEFT_OUT:
        assert not (unpacked / path).exists(), path
    assert {"fhirpipes/handler.py", "pydantic/main.py", "annotated_types/__init__.py"} <= {
        p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*.py")
    }
    assert not (unpacked / "click").exists()
    assert "click" not in {name.lower() for name, _ in built.distributions}
    assert not list(unpacked.glob("click-*.dist-info"))
    entry_points = (unpacked / "fhirpipes-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "fhirpipes.cli" not in entry_points and "fhirpipes.testing" not in entry_points
    assert "[console_scripts]" not in entry_points and "[pytest11]" not in entry_points
    # Nothing a plugin would need at run time went with them: the handler's own modules are there.
    for module in (
        "dispatch",
        "engine/__init__",
        "engine/runtime",
        "records",
        "plugins",
        "mapper",
        "metrics",
        "settings",
    ):
        assert (unpacked / "fhirpipes" / f"{module}.py").is_file(), module


@pytest.mark.slow
def test_an_untracked_file_of_the_checkout_never_reaches_the_zip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case exactly: an untracked plugins/patient/phi-export.json beside the plugin."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the tests don't run from a git checkout")
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO), str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "checkout", "-q", head.stdout.strip()], check=True)
    export = checkout / "plugins" / "patient" / "phi-export.json"
    export.write_text(json.dumps([{"mrn": "MRN-0042", "name": "Jane Roe"}]))
    # It matches the package data globs: a copy of the work tree would ship it.
    assert (checkout / "plugins" / "patient" / "samples.json").is_file()

    real_source_of = packaging._source_of

    def from_the_checkout(dist: importlib.metadata.Distribution) -> packaging.Source:
        source = real_source_of(dist)
        if source.name != "fhirpipes":
            return source
        return packaging.Source(source.name, source.version, "", local=str(checkout))

    monkeypatch.setattr(packaging, "_source_of", from_the_checkout)
    monkeypatch.setattr(packaging, "_wheel_of", REAL_WHEEL_OF)
    result = build_package(tmp_path / "dist", python=PYTHON, arch=ARCH)
    with zipfile.ZipFile(result.path) as archive:
        names = set(archive.namelist())
        shipped = b"".join(archive.read(name) for name in names if name.startswith("fhirpipes_patient/"))
    assert "fhirpipes_patient/samples.json" in names  # the tracked package data ships
    assert not any("phi-export" in name for name in names)
    assert b"MRN-0042" not in shipped


@pytest.mark.slow
def test_the_package_holds_what_lambda_needs_and_nothing_it_has(built: PackageResult, unpacked: Path) -> None:
    assert built.handler == "fhirpipes.handler.handler"
    assert built.bytecode and built.warnings == ()
    assert built.fhir_versions == ("R4B",)
    names = {name for name, _ in built.distributions}
    assert {"fhirpipes", "pydantic_core", "fhir.resources"} <= names
    assert not names & {"boto3", "botocore", "s3transfer", "jmespath", "pytest", "moto"}
    tops = {name for name, _, _ in built.top_level}
    assert {"fhirpipes", "fhirpipes_patient", "pydantic_core", "fhir"} <= tops
    assert not (unpacked / "boto3").exists() and not (unpacked / "bin").exists()
    assert not (unpacked / "fhir" / "resources" / "STU3").exists()
    assert not (unpacked / "fhir" / "resources" / "patient.py").exists()
    (native,) = (unpacked / "pydantic_core").glob("_pydantic_core.*.so")
    machine = {"x86_64": "x86_64", "arm64": "aarch64"}[ARCH]
    assert f"cpython-{PYTHON.replace('.', '')}-{machine}-linux-gnu" in native.name
    # Plugins are found through entry points: the metadata must be there.
    entry_points = (unpacked / "fhirpipes-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "[fhirpipes]" in entry_points and "patient = fhirpipes_patient" in entry_points
    assert read_manifest(built.path) == {
        "python": PYTHON,
        "architecture": ARCH,
        "handler": "fhirpipes.handler.handler",
        "bytecode": True,
        "fhirVersions": ["R4B"],
        "tables": list(built.tables),
    }
    assert built.zipped_bytes == built.path.stat().st_size < built.unzipped_bytes
    summary = built.summary()
    assert "fhirpipes.handler.handler" in summary and "MiB zipped" in summary


@pytest.mark.slow
def test_every_module_has_unchecked_hash_bytecode_and_records_match_the_files(unpacked: Path) -> None:
    tag = sys.implementation.cache_tag
    for source in unpacked.rglob("*.py"):
        pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        header = pyc.read_bytes()[:8]
        assert int.from_bytes(header[4:8], "little") == 0b01, pyc  # hash-based, source not checked
    listed: set[str] = set()
    for record in unpacked.glob("*.dist-info/RECORD"):
        for path, digest, _size in csv.reader(record.read_text().splitlines()):
            assert path not in listed
            listed.add(path)
            data = (unpacked / path).read_bytes()
            if digest:
                algorithm, _, expected = digest.partition("=")
                actual = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=").decode()
                assert actual == expected, path
    files = {p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*") if p.is_file()}
    assert files == listed


@pytest.mark.slow
def test_the_same_inputs_give_the_same_bytes(
    same_sources: None, built: PackageResult, tmp_path: Path
) -> None:
    again = build_package(tmp_path, python=PYTHON, arch=ARCH)
    assert again.path.read_bytes() == built.path.read_bytes()
    with zipfile.ZipFile(again.path) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


@pytest.mark.slow
def test_a_package_over_the_zipped_limit_is_refused_and_not_left_behind(
    same_sources: None, tmp_path: Path
) -> None:
    with pytest.raises(DeployError, match="direct-upload limit"):
        build_package(tmp_path, python=PYTHON, arch=ARCH, max_zipped_bytes=1024 * 1024)
    assert list(tmp_path.iterdir()) == []


FROM_CACHE_ONLY = """
import json, sys
sys.path[:0] = [sys.argv[1]]
from fhirpipes.handler import handler

def record(table, item):
    image = {name: {"S": value} for name, value in item.items()}
    return {"eventID": table, "eventName": "INSERT", "dynamodb": {"Keys": {"id": image["id"]},
            "NewImage": image, "SequenceNumber": "1"},
            "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/x"}

batch = [
    record("Patients", {"id": "p1", "lastName": "Smith", "birthDate": "07-13-1991"}),
    record("Practitioners", {"id": "d1", "lastName": "Jones", "npi": "1234567893"}),
]
commands = [event["details"]["command"] for event in handler(batch)]
assert commands == ["PUT", "PUT"], commands
assert "jinja2" not in sys.modules, "a shipped template was compiled at run time (jinja2 imported)"
print("ok")
"""


@pytest.mark.slow
def test_templates_ship_compiled_and_load_without_jinja(unpacked: Path) -> None:
    cache = unpacked / "fhirpipes" / "templates" / "__fhirpipes_cache__"
    assert sorted(cache.glob("*.bin")), "no compiled templates in the package"
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", FROM_CACHE_ONLY, str(unpacked)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
