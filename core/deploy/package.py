"""``fhirpipes package``: the Lambda deployment zip of fhirpipes, the installed plugins and what they need.

What goes in, and why:

* fhirpipes and every distribution that provides an entry point in the ``fhirpipes`` group
  (or the ones ``plugins`` names), with their dependencies, installed by pip for the Lambda
  runtime, not for this machine: ``--platform manylinux2014_<arch> --implementation cp
  --python-version X.Y --only-binary=:all:`` (plus ``manylinux_2_28`` on the Amazon Linux 2023
  runtimes, 3.12 and later). Versions are pinned to the ones installed here (what you tested is
  what you ship). A distribution installed from a folder (editable or not) or a VCS is built
  into a wheel first (``pip wheel --no-deps``), from a copy of *the files git tracks* in that
  folder: an untracked export, a stale ``build/`` or a local ``.env`` never reaches the zip,
  and the work tree isn't written to. A folder outside git is refused (build a wheel of it and
  install that instead).
* Not boto3, botocore, s3transfer, jmespath (the runtime has them), nor what only they need.
* Not what the handler never imports (`LEFT_OUT`: fhirpipes' command line, local Pipe, deploy
  and plugin authors' kit, and so click; pydantic's 1.x API; test data), and no entry point
  that names a module left out.
* The ``*.dist-info`` metadata stays: the handler finds its plugins through entry points.
  Each ``RECORD`` is rewritten to list exactly the files shipped (dropped files out, the
  compiled ``.pyc`` in, without a hash as pip does; hashes of edited files recomputed), so the
  metadata stays consistent.
* ``fhir.resources`` keeps only the FHIR versions asked for (default: the ones the registered
  mappers declare): R5 is its top-level modules, R4B and STU3 its subpackages.
* Bytecode compiled for the target Python (``UNCHECKED_HASH`` pycs: they don't depend on file
  times, and Lambda's read-only ``/var/task`` can't cache them at cold start). Only possible
  with an interpreter of that version here; otherwise sources only, with a warning.

The zip is reproducible: entries sorted, timestamps 1980-01-01, permissions 0644 (0755 when
executable), no directory entries, bytecode compiled with ``PYTHONHASHSEED=0`` one file after
another, and a JSON comment (python, arch, handler) that ``fhirpipes template --package`` reads.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from fhirpipes.deploy import DeployError
from fhirpipes.engine.cache import CACHE_DIR

HANDLER = "fhirpipes.handler.handler"
PYTHON_VERSIONS: tuple[str, ...] = ("3.11", "3.12", "3.13")
ARCHITECTURES: dict[str, str] = {"x86_64": "x86_64", "arm64": "aarch64"}
"""Lambda architecture -> the machine name in wheel platform tags."""
RUNTIME_PROVIDED: tuple[str, ...] = ("boto3", "botocore", "jmespath", "s3transfer")
"""On every Lambda Python runtime already; left out even when a plugin depends on them."""
FHIR_LAYOUT: dict[str, str] = {"R5": "", "R4B": "R4B", "STU3": "STU3"}
"""FHIR version -> its place in ``fhir/resources`` ("" = the top-level modules)."""
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
"""Lambda's limit for a zip uploaded directly (50 MB)."""
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
"""Lambda's limit for the unzipped function and its layers (250 MB; "must be smaller than 262144000")."""
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_COMMENT_KEY = "fhirpipes-package"
PLUGIN_GROUP = "fhirpipes"
CORE_DISTRIBUTION = "fhirpipes"

Log = Callable[[str], None]

LEFT_OUT: dict[str, str] = {
    "fhirpipes/__main__.py": "python -m fhirpipes, the command line",
    "fhirpipes/backfill": "fhirpipes backfill (on a machine, or Spark), never in a Lambda",
    "fhirpipes/cli.py": "the command line",
    "fhirpipes/deploy": "fhirpipes package and template",
    "fhirpipes/exports.py": "lazy re-exports of fhirpipes.pipes and fhirpipes.testing",
    "fhirpipes/pipes": "the local Pipe runner (fhirpipes run, demo)",
    "fhirpipes/scaffold": "fhirpipes new, the plugin project generator",
    "fhirpipes/testing": "the plugin authors' kit (pytest fixtures, conformance suite)",
    "annotated_types/test_cases.py": "annotated-types' own test data",
    "pydantic/mypy.py": "pydantic's mypy plugin",
    "pydantic/v1": "pydantic's 1.x API, which nothing shipped imports",
}
"""Paths in the package the handler never imports, and what they are; removed before compiling."""
DEPENDENCIES_LEFT_OUT: dict[str, frozenset[str]] = {"fhirpipes": frozenset({"click", "rich"})}
"""Dependencies not followed: fhirpipes needs click and rich only for its command line (left out). Another
distribution that depends on click still gets it."""

_COMPILE = """\
import compileall, py_compile, sys
root = sys.argv[1]
ok = compileall.compile_dir(
    root, quiet=1, workers=1, stripdir=root, prependdir="/var/task",
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
sys.exit(0 if ok else 3)
"""


@dataclasses.dataclass(frozen=True)
class Source:
    """One distribution to install: from the index (``name==version``) or a local wheel we build."""

    name: str
    version: str
    requirement: str
    """What pip installs: ``name==version``, or the path of the built wheel."""
    local: str | None = None
    """Where a local distribution's source is (folder, archive or VCS URL); None for the index."""


@dataclasses.dataclass(frozen=True)
class PackageResult:
    """What `build_package` made, for the report."""

    path: Path
    python: str
    arch: str
    zipped_bytes: int
    unzipped_bytes: int
    sha256: str
    bytecode: bool
    fhir_versions: tuple[str, ...]
    tables: tuple[str, ...]
    distributions: tuple[tuple[str, str], ...]
    top_level: tuple[tuple[str, int, int], ...]
    """(top-level entry, unzipped bytes, zipped bytes), largest first; dist-infos counted together."""
    warnings: tuple[str, ...]
    handler: str = HANDLER

    def summary(self) -> str:
        """A human-readable report: size, contents, handler setting."""
        lines = [
            f"{self.path}",
            f"  size      {_mib(self.zipped_bytes)} zipped, {_mib(self.unzipped_bytes)} unzipped "
            f"(limits {_mib(MAX_ZIPPED_BYTES)} / {_mib(MAX_UNZIPPED_BYTES)})",
            f"  sha256    {self.sha256}",
            f"  runtime   python{self.python} on {self.arch}, "
            + ("bytecode compiled" if self.bytecode else "sources only (no bytecode)"),
            f"  handler   {self.handler}",
            f"  tables    {', '.join(self.tables)}",
            f"  FHIR      {', '.join(self.fhir_versions)}",
            "  contents  (unzipped / zipped)",
        ]
        for name, unzipped, zipped in self.top_level:
            lines.append(f"    {name:<28} {_kib(unzipped):>10} {_kib(zipped):>10}")
        lines.append(
            "  distributions  " + ", ".join(f"{name} {version}" for name, version in self.distributions)
        )
        lines.extend(f"  warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)

    def as_json(self) -> dict[str, object]:
        """The same report as a JSON value."""
        return {
            "path": str(self.path),
            "python": self.python,
            "architecture": self.arch,
            "handler": self.handler,
            "zippedBytes": self.zipped_bytes,
            "unzippedBytes": self.unzipped_bytes,
            "sha256": self.sha256,
            "bytecode": self.bytecode,
            "fhirVersions": list(self.fhir_versions),
            "tables": list(self.tables),
            "distributions": {name: version for name, version in self.distributions},
            "contents": [{"name": n, "unzippedBytes": u, "zippedBytes": z} for n, u, z in self.top_level],
            "warnings": list(self.warnings),
        }


def zip_name(python: str, arch: str) -> str:
    """The file name of the package for a runtime."""
    return f"fhirpipes-lambda-py{python}-{arch}.zip"


def read_manifest(path: Path) -> dict[str, object]:
    """The runtime a package was built for (its zip comment); `DeployError` if it isn't one of ours."""
    try:
        with zipfile.ZipFile(path) as archive:
            comment = json.loads(archive.comment.decode("utf-8") or "null")
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise DeployError(f"{path} is not a fhirpipes package: {type(exc).__name__}") from exc
    if not isinstance(comment, dict) or not isinstance(comment.get(ZIP_COMMENT_KEY), dict):
        raise DeployError(f"{path} is not a fhirpipes package (no manifest in its zip comment)")
    return dict(comment[ZIP_COMMENT_KEY])


def build_package(
    out_dir: Path,
    *,
    python: str = "3.11",
    arch: str = "x86_64",
    fhir_versions: Sequence[str] | None = None,
    plugins: Sequence[str] | None = None,
    max_zipped_bytes: int = MAX_ZIPPED_BYTES,
    max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
    log: Log | None = None,
) -> PackageResult:
    """Build the deployment zip into ``out_dir`` and return what it holds.

    Args:
        python: the Lambda runtime's Python, one of `PYTHON_VERSIONS`.
        arch: ``x86_64`` or ``arm64``.
        fhir_versions: FHIR versions of fhir.resources to keep (default: those the mappers declare).
        plugins: entry-point names of the ``fhirpipes`` group to ship (default: all installed).
        max_zipped_bytes, max_unzipped_bytes: Lambda's limits (smaller ones in tests).
        log: called with one line per step (the CLI prints them to stderr).
    """
    say = log or (lambda _line: None)
    if python not in PYTHON_VERSIONS:
        raise DeployError(
            f"unknown Python version {python!r}: Lambda runtimes are {', '.join(PYTHON_VERSIONS)}"
        )
    if arch not in ARCHITECTURES:
        raise DeployError(f"unknown architecture {arch!r}: Lambda has {', '.join(ARCHITECTURES)}")
    names, tables, declared = _plugins_and_mappers(plugins)
    keep = _fhir_versions(fhir_versions, declared)
    sources = _sources(names)
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fhirpipes-package-") as scratch:
        work = Path(scratch)
        stage = work / "stage"
        requirements = [
            _wheel_of(source, work, say) if source.local else source.requirement for source in sources
        ]
        _pip_install(requirements, stage, python, arch, work, sources, say)
        roots = {_normalize(source.name) for source in sources}
        removed = _remove_runtime_provided(stage, roots)
        if removed:
            say(
                f"left out (the Lambda runtime has them, or only what is left out needs them): {', '.join(removed)}"
            )
        _tidy(stage)
        _prune_fhir(stage, keep)
        _leave_out(stage)
        interpreter = find_interpreter(python)
        if interpreter:
            say(f"compiling bytecode with {interpreter}")
            warnings.extend(_compile(stage, interpreter))
            say(f"compiling templates: {precompile_templates(stage, interpreter)} cached")
        else:
            warnings.append(
                f"no Python {python} interpreter here: shipping sources only, so every cold start "
                f"compiles them (slower); build on a machine with python{python} to include bytecode"
            )
        _rewrite_records(stage)
        files = _files(stage)
        unzipped = sum(size for _, _, size in files)
        check_size(unzipped=unzipped, max_unzipped_bytes=max_unzipped_bytes)
        manifest = {
            ZIP_COMMENT_KEY: {
                "python": python,
                "architecture": arch,
                "handler": HANDLER,
                "bytecode": bool(interpreter),
                "fhirVersions": list(keep),
                "tables": list(tables),
            }
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / zip_name(python, arch)
        partial = target.with_suffix(".zip.partial")
        compressed = _write_zip(partial, files, json.dumps(manifest, sort_keys=True).encode())
        zipped = partial.stat().st_size
        try:
            check_size(zipped=zipped, max_zipped_bytes=max_zipped_bytes)
        except DeployError:
            partial.unlink()
            raise
        os.replace(partial, target)
        dists = _distributions(stage)
    return PackageResult(
        path=target,
        python=python,
        arch=arch,
        zipped_bytes=zipped,
        unzipped_bytes=unzipped,
        sha256=hashlib.sha256(target.read_bytes()).hexdigest(),
        bytecode=bool(interpreter),
        fhir_versions=keep,
        tables=tables,
        distributions=dists,
        top_level=_top_level(files, compressed),
        warnings=tuple(warnings),
    )


def check_size(
    *,
    unzipped: int = 0,
    zipped: int = 0,
    max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
    max_zipped_bytes: int = MAX_ZIPPED_BYTES,
) -> None:
    """`DeployError` if the package is over one of Lambda's limits (they are exclusive)."""
    advice = "leave out FHIR versions (--fhir-versions) or plugins (--plugin)"
    if unzipped >= max_unzipped_bytes:
        raise DeployError(
            f"the package would be {_mib(unzipped)} unzipped, over Lambda's {_mib(max_unzipped_bytes)} "
            f"limit: {advice}"
        )
    if zipped >= max_zipped_bytes:
        raise DeployError(
            f"the package would be {_mib(zipped)} zipped, over Lambda's {_mib(max_zipped_bytes)} "
            f"direct-upload limit: {advice}"
        )


# --- what to ship --------------------------------------------------------------------------------


def _plugins_and_mappers(plugins: Sequence[str] | None) -> tuple[list[str], tuple[str, ...], set[str]]:
    """Selected entry-point names, the tables their mappers map, and the FHIR versions they declare."""
    from fhirpipes.errors import FhirpipesError
    from fhirpipes.plugins import load_registry

    installed = sorted({ep.name for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP)})
    if not installed:
        raise DeployError(
            f"no plugins installed: no distribution provides an entry point in the {PLUGIN_GROUP!r} group"
        )
    names = sorted(set(plugins)) if plugins else installed
    unknown = [name for name in names if name not in installed]
    if unknown:
        raise DeployError(
            f"no entry point in the {PLUGIN_GROUP!r} group for plugin {', '.join(unknown)} "
            f"(installed: {', '.join(installed)})"
        )
    try:
        registry = load_registry(only=names)
    except FhirpipesError as exc:
        raise DeployError(f"the plugins don't load: {exc}") from exc
    return names, tuple(registry.tables), {mapper.fhir_version for mapper in registry.mappers}


def _fhir_versions(asked: Sequence[str] | None, declared: set[str]) -> tuple[str, ...]:
    if not asked:
        return tuple(sorted(declared))
    unknown = sorted(set(asked) - set(FHIR_LAYOUT))
    if unknown:
        raise DeployError(f"unknown FHIR version {', '.join(unknown)} (known: {', '.join(FHIR_LAYOUT)})")
    missing = sorted(declared - set(asked))
    if missing:
        raise DeployError(f"--fhir-versions leaves out {', '.join(missing)}, which a registered mapper uses")
    return tuple(sorted(set(asked)))


def _sources(entry_point_names: Iterable[str]) -> list[Source]:
    """fhirpipes plus the distributions providing the selected entry points, each once."""
    wanted = set(entry_point_names)
    dists: dict[str, importlib.metadata.Distribution] = {}
    try:
        core = importlib.metadata.distribution(CORE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise DeployError("fhirpipes itself is not installed as a distribution (pip install it)") from exc
    dists[_normalize(core.metadata["Name"])] = core
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        if ep.name not in wanted:
            continue
        if ep.dist is None:
            raise DeployError(f"plugin {ep.name!r} has no distribution metadata to package it from")
        dists.setdefault(_normalize(ep.dist.metadata["Name"]), ep.dist)
    return [_source_of(dists[key]) for key in sorted(dists)]


def _source_of(dist: importlib.metadata.Distribution) -> Source:
    name, version = dist.metadata["Name"], dist.version
    # Several copies may answer to the name: running from a checkout, its stale ``*.egg-info``
    # shadows the installed metadata. The installed copy says where it came from.
    candidates = [dist, *importlib.metadata.distributions(name=name)]
    raw = next((text for text in (c.read_text("direct_url.json") for c in candidates) if text), None)
    if not raw:
        for candidate in candidates:
            folder = Path(str(candidate.locate_file(""))).resolve()
            if (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file():
                return Source(name, version, "", local=str(folder))
        return Source(name, version, f"{name}=={version}")
    info = json.loads(raw)
    url = info.get("url", "")
    if "vcs_info" in info:
        vcs = info["vcs_info"]
        return Source(name, version, "", local=f"{vcs['vcs']}+{url}@{vcs.get('commit_id', '')}".rstrip("@"))
    parsed = urlparse(url)
    if parsed.scheme != "file":
        # Installed from a URL: pip can fetch it again.
        return Source(name, version, "", local=url)
    path = Path(url2pathname(unquote(parsed.path)))
    if not path.exists():
        raise DeployError(
            f"{name} was installed from {path}, which no longer exists: reinstall it, or from an index"
        )
    return Source(name, version, "", local=str(path))


def _wheel_of(source: Source, work: Path, say: Log) -> str:
    """Build a local distribution's wheel (no dependencies) and return its path."""
    assert source.local is not None
    location = source.local
    wheels = work / "wheels" / _normalize(source.name)
    wheels.mkdir(parents=True)
    if Path(location).is_dir():
        copy = work / "sources" / _normalize(source.name)
        count = copy_tracked_files(Path(location), copy)
        location = str(copy)
        say(
            f"building a wheel of {source.name} {source.version} from the {count} file{'' if count == 1 else 's'} git tracks in {source.local}"
        )
    else:
        say(f"building a wheel of {source.name} {source.version} from {source.local}")
    _pip(["wheel", "--no-deps", "--wheel-dir", str(wheels), location], what=f"building {source.name}")
    built = sorted(wheels.glob("*.whl"))
    if len(built) != 1:
        raise DeployError(f"building {source.name} gave {len(built)} wheels, expected one")
    return str(built[0])


def copy_tracked_files(folder: Path, copy: Path) -> int:
    """Copy the files git tracks under ``folder`` (as they are in the work tree) to ``copy``; their count.

    `DeployError` if ``folder`` is not in a git work tree: then nothing says which of its files
    are the project and which are strays (an export, a secret, a stale build).
    """
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "ls-files", "-z", "--cached", "--recurse-submodules", "--", "."],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise DeployError(f"git is not installed: it says which files of {folder} to package") from exc
    if done.returncode != 0:
        reason = (done.stderr.decode(errors="replace").strip().splitlines() or ["git failed"])[0]
        if "not a git repository" not in reason:
            raise DeployError(f"git could not list the files of {folder}: {reason.removeprefix('fatal: ')}")
        raise DeployError(
            f"{folder} is not in a git work tree, so nothing says which of its files to ship: "
            "commit it to git, or build a wheel of it (pip wheel) and install that"
        )
    count = 0
    for raw in done.stdout.split(b"\0"):
        if not raw:
            continue
        relative = Path(os.fsdecode(raw))
        source = folder / relative
        if not source.is_symlink() and not source.is_file():
            continue  # deleted in the work tree (or a submodule's folder entry)
        target = copy / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
        count += 1
    return count


def _pip_install(
    requirements: list[str], stage: Path, python: str, arch: str, work: Path, sources: list[Source], say: Log
) -> None:
    machine = ARCHITECTURES[arch]
    platforms = [f"manylinux2014_{machine}"]
    if python != "3.11":
        # python3.12 and later run on Amazon Linux 2023 (glibc 2.34).
        platforms.append(f"manylinux_2_28_{machine}")
    constraints = work / "constraints.txt"
    constraints.write_text(_constraints({_normalize(source.name) for source in sources}), encoding="utf-8")
    args = ["install", "--target", str(stage), "--only-binary=:all:", "--implementation", "cp"]
    for platform in platforms:
        args += ["--platform", platform]
    args += ["--python-version", python, "--abi", "cp" + python.replace(".", "")]
    args += ["--no-compile", "--no-warn-script-location", "--constraint", str(constraints), *requirements]
    say(f"installing for python{python} on {arch} ({', '.join(platforms)})")
    _pip(args, what=f"installing for python{python} on {arch}")


def _constraints(skip: set[str]) -> str:
    """Pin every distribution installed here (but the ones we build) to its installed version."""
    pins: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and _normalize(name) not in skip and not dist.read_text("direct_url.json"):
            pins[_normalize(name)] = dist.version
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def _pip(args: list[str], *, what: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        reason = errors[0] if errors else (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise DeployError(f"pip failed {what}: {reason.removeprefix('ERROR: ')}")


# --- trimming --------------------------------------------------------------------------------------


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _dist_infos(stage: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for info in sorted(stage.glob("*.dist-info")):
        metadata = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
        name = next((line[5:].strip() for line in metadata.splitlines() if line.startswith("Name:")), None)
        if name:
            found[_normalize(name)] = info
    return found


def _requires(info: Path) -> set[str]:
    """Every distribution ``info`` may require (any marker, any extra: over-approximated, to be safe)."""
    names = set()
    for line in (info / "METADATA").read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        if line.startswith("Requires-Dist:"):
            match = _REQUIREMENT_NAME.match(line[len("Requires-Dist:") :])
            if match:
                names.add(_normalize(match.group(1)))
    return names


def _remove_runtime_provided(stage: Path, roots: set[str]) -> list[str]:
    """Remove boto3 & co and whatever is installed only because of them; return what was removed."""
    infos = _dist_infos(stage)
    excluded = {_normalize(name) for name in RUNTIME_PROVIDED}
    reachable: set[str] = set()
    pending = [root for root in roots if root in infos]
    while pending:
        name = pending.pop()
        if name in reachable or name in excluded:
            continue
        reachable.add(name)
        not_followed = DEPENDENCIES_LEFT_OUT.get(name, frozenset())
        pending.extend(dep for dep in _requires(infos[name]) if dep in infos and dep not in not_followed)
    removed = sorted(name for name in infos if name not in reachable)
    for name in removed:
        _remove_distribution(stage, infos[name])
    return removed


def _remove_distribution(stage: Path, info: Path) -> None:
    for path, _, _ in _record_rows(info):
        target = stage / path
        if ".." not in Path(path).parts and target.is_file():
            target.unlink()
    shutil.rmtree(info, ignore_errors=True)
    _remove_empty_dirs(stage)


def _tidy(stage: Path) -> None:
    """Drop what only makes sense on this machine: console scripts, install-time provenance, caches."""
    shutil.rmtree(stage / "bin", ignore_errors=True)
    for direct_url in stage.glob("*.dist-info/direct_url.json"):
        direct_url.unlink()  # names a temporary wheel path: neither useful nor reproducible
    for cache in sorted(stage.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)


def _leave_out(stage: Path) -> None:
    """Remove `LEFT_OUT`, and the entry points (console scripts, pytest plugins) that name it."""
    for path in LEFT_OUT:
        target = stage / path
        if target.is_dir():
            shutil.rmtree(target)
        elif target.is_file():
            target.unlink()
    gone = tuple(path.removesuffix(".py").replace("/", ".") for path in LEFT_OUT)
    for entry_points in sorted(stage.glob("*.dist-info/entry_points.txt")):
        kept: list[str] = []
        for line in entry_points.read_text(encoding="utf-8").splitlines():
            module = line.partition("=")[2].strip().partition(":")[0].strip()
            if "=" in line and any(module == g or module.startswith(f"{g}.") for g in gone):
                continue
            kept.append(line)
        # Drop the sections left empty: "[group]" followed by nothing but blank lines.
        text, sections = [], _sections(kept)
        for header, body in sections:
            if header is None or any(line.strip() for line in body):
                text.extend(([header] if header is not None else []) + body)
        entry_points.write_text("\n".join(text).strip() + "\n", encoding="utf-8")
    _remove_empty_dirs(stage)


def _sections(lines: list[str]) -> list[tuple[str | None, list[str]]]:
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in lines:
        if line.startswith("["):
            sections.append((line, []))
        else:
            sections[-1][1].append(line)
    return sections


def _prune_fhir(stage: Path, keep: Iterable[str]) -> None:
    base = stage / "fhir" / "resources"
    if not base.is_dir():
        return
    for version, folder in FHIR_LAYOUT.items():
        if version in keep:
            continue
        if folder:
            shutil.rmtree(base / folder, ignore_errors=True)
        else:
            # R5 is the top level; the package's __init__ (and data files) stay for the subpackages.
            for module in base.glob("*.py"):
                if module.name != "__init__.py":
                    module.unlink()


def _remove_empty_dirs(stage: Path) -> None:
    for folder in sorted(
        (p for p in stage.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        if not any(folder.iterdir()):
            folder.rmdir()


def find_interpreter(python: str) -> str | None:
    """A CPython ``python`` interpreter on this machine (this one first), or None."""
    if sys.implementation.name == "cpython" and f"{sys.version_info[0]}.{sys.version_info[1]}" == python:
        return sys.executable
    candidate = shutil.which(f"python{python}")
    if candidate is None:
        return None
    probe = "import sys; print(sys.implementation.name, '%d.%d' % sys.version_info[:2])"
    done = subprocess.run([candidate, "-S", "-c", probe], capture_output=True, text=True, check=False)
    return candidate if done.stdout.split() == ["cpython", python] else None


def _compile(stage: Path, interpreter: str) -> list[str]:
    """Compile every module to unchecked-hash pycs, reproducibly (fixed hash seed, one file at a time)."""
    env = {"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", "")}
    done = subprocess.run(
        [interpreter, "-S", "-E", "-c", _COMPILE, str(stage)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode == 0:
        return []
    failed = [
        line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("*** Error compiling")
    ]
    if done.returncode != 3:
        raise DeployError(f"compiling bytecode failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return [f"{len(failed)} module(s) don't compile for this Python and ship as source only"]


def precompile_templates(stage: Path, interpreter: str) -> int:
    """Fill the templates' caches in the stage (`fhirpipes.engine.cache`), as Lambda will load them;
    return how many templates were cached.

    The package step's one contact with the template engine (with `CACHE_DIR`, which
    `_rewrite_records` lists).
    """
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from fhirpipes.engine import SHARED_TEMPLATES, precompile; "
        "from fhirpipes.plugins import load_registry; "
        "print(precompile({SHARED_TEMPLATES, *(m.template_package for m in load_registry().mappers)}))"
    )
    env = {"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [interpreter, "-S", "-E", "-c", code, str(stage)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise DeployError(f"compiling templates failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return int(done.stdout.strip().splitlines()[-1])


def _record_rows(info: Path) -> list[tuple[str, str, str]]:
    record = info / "RECORD"
    if not record.is_file():
        return []
    rows = csv.reader(io.StringIO(record.read_text(encoding="utf-8")))
    return [(row[0], row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "") for row in rows if row]


def _rewrite_records(stage: Path) -> None:
    """Make each RECORD list exactly what ships: drop removed files, add the compiled pycs and
    template caches (generated files, listed without a hash as pip lists pycs)."""
    for info in sorted(stage.glob("*.dist-info")):
        rows: dict[str, tuple[str, str, str]] = {}
        for path, digest, size in _record_rows(info):
            if ".." in Path(path).parts or not (stage / path).is_file():
                continue
            if digest:  # recomputed: a file we edited (entry_points.txt) must still match its row
                data = (stage / path).read_bytes()
                digest, size = _digest(data), str(len(data))
            rows[path] = (path, digest, size)
            if path.endswith(".py"):
                module = Path(path)
                for pyc in sorted((stage / module.parent / "__pycache__").glob(f"{module.stem}.*.pyc")):
                    relative = pyc.relative_to(stage).as_posix()
                    rows[relative] = (relative, "", "")
            if path.endswith(".j2"):
                for entry in sorted((stage / Path(path).parent / CACHE_DIR).glob("*.bin")):
                    relative = entry.relative_to(stage).as_posix()
                    rows[relative] = (relative, "", "")
        record = f"{info.name}/RECORD"
        rows[record] = (record, "", "")
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows[key] for key in sorted(rows))
        (info / "RECORD").write_text(out.getvalue(), encoding="utf-8")


def _digest(data: bytes) -> str:
    """A RECORD hash, as pip writes it: ``sha256=`` and the urlsafe base64 digest, unpadded."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


# --- the zip -------------------------------------------------------------------------------------


def _files(stage: Path) -> list[tuple[str, Path, int]]:
    """(archive name, path, size) of every file, sorted by archive name."""
    found = [
        (path.relative_to(stage).as_posix(), path, path.stat().st_size)
        for path in stage.rglob("*")
        if path.is_file() and not path.is_symlink()
    ]
    return sorted(found, key=lambda item: item[0])


def _write_zip(target: Path, files: list[tuple[str, Path, int]], comment: bytes) -> dict[str, int]:
    """Write a reproducible zip; return the compressed size of each entry."""
    compressed: dict[str, int] = {}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, path, _ in files:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3  # Unix, so external_attr carries permissions
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
            compressed[name] = archive.getinfo(name).compress_size
        archive.comment = comment
    return compressed


def _top_level(
    files: list[tuple[str, Path, int]], compressed: dict[str, int]
) -> tuple[tuple[str, int, int], ...]:
    sizes: dict[str, list[int]] = {}
    for name, _, size in files:
        top = name.split("/", 1)[0]
        key = "*.dist-info (metadata)" if top.endswith(".dist-info") else top
        entry = sizes.setdefault(key, [0, 0])
        entry[0] += size
        entry[1] += compressed[name]
    return tuple(sorted(((key, u, z) for key, (u, z) in sizes.items()), key=lambda item: (-item[1], item[0])))


def _distributions(stage: Path) -> tuple[tuple[str, str], ...]:
    result = []
    for info in sorted(stage.glob("*.dist-info")):
        headers = dict(
            line.split(":", 1)
            for line in (info / "METADATA").read_text(encoding="utf-8", errors="replace").splitlines()[:20]
            if ":" in line
        )
        result.append((headers.get("Name", info.name).strip(), headers.get("Version", "?").strip()))
    return tuple(sorted(result, key=lambda item: _normalize(item[0])))


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB"
