"""What the deployment zip holds: which distributions, and what of them is left out.

* fhirpipes and every distribution that provides an entry point in the ``fhirpipes`` group
  (or the ones ``plugins`` names), with their dependencies.
* Not boto3, botocore, s3transfer, jmespath (`RUNTIME_PROVIDED`: the runtime has them), nor what
  only they need (`DEPENDENCIES_LEFT_OUT`: nor what only the left-out command line needs).
* Not what the handler never imports (`LEFT_OUT`: fhirpipes' command line, local Pipe, deploy
  and plugin authors' kit, and so click; pydantic's 1.x API; test data), and no entry point
  that names a module left out.
* ``fhir.resources`` keeps only the FHIR versions asked for (default: the ones the registered
  mappers declare; one of `fhirpipes.fhirversion.FHIR_VERSIONS`): R5 is its top-level modules, R4B and
  STU3 its subpackages (`FHIR_LAYOUT`; STU3, which no mapper can declare, never ships).

The functions that take a ``stage`` edit the folder pip installed into, in place.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from fhirpipes.deploy import DeployError
from fhirpipes.deploy.distinfo import dist_infos, normalize, record_rows, requires
from fhirpipes.fhirversion import FHIR_VERSIONS, model_folder
from fhirpipes.plugins import ENTRY_POINT_GROUP

CORE_DISTRIBUTION = "fhirpipes"
RUNTIME_PROVIDED: tuple[str, ...] = ("boto3", "botocore", "jmespath", "s3transfer")
"""On every Lambda Python runtime already; left out even when a plugin depends on them."""
FHIR_LAYOUT: dict[str, str] = {
    **{version: model_folder(version) for version in FHIR_VERSIONS},
    "STU3": "STU3",
}
"""FHIR version -> its place in ``fhir/resources`` ("" = the top-level modules): `FHIR_VERSIONS`, and
STU3, which fhir.resources has and no mapper can declare (always removed)."""
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
DEPENDENCIES_LEFT_OUT: dict[str, frozenset[str]] = {CORE_DISTRIBUTION: frozenset({"click", "rich"})}
"""Dependencies not followed: fhirpipes needs click and rich only for its command line (left out). Another
distribution that depends on click still gets it."""


# --- which distributions ---------------------------------------------------------------------------


def plugins_and_mappers(plugins: Sequence[str] | None) -> tuple[list[str], tuple[str, ...], set[str]]:
    """Selected entry-point names, the tables their mappers map, and the FHIR versions they declare."""
    from fhirpipes.errors import FhirpipesError
    from fhirpipes.plugins import load_registry

    installed = sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})
    if not installed:
        raise DeployError(
            f"no plugins installed: no distribution provides an entry point in the {ENTRY_POINT_GROUP!r} group"
        )
    names = sorted(set(plugins)) if plugins else installed
    unknown = [name for name in names if name not in installed]
    if unknown:
        raise DeployError(
            f"no entry point in the {ENTRY_POINT_GROUP!r} group for plugin {', '.join(unknown)} "
            f"(installed: {', '.join(installed)})"
        )
    try:
        registry = load_registry(only=names)
    except FhirpipesError as exc:
        raise DeployError(f"the plugins don't load: {exc}") from exc
    return names, tuple(registry.tables), {mapper.fhir_version for mapper in registry.mappers}


def kept_fhir_versions(asked: Sequence[str] | None, declared: set[str]) -> tuple[str, ...]:
    """The FHIR versions to keep: those ``asked`` for (all ``declared`` among them), else ``declared``."""
    if not asked:
        return tuple(sorted(declared))
    unknown = sorted(set(asked) - set(FHIR_VERSIONS))
    if unknown:
        raise DeployError(f"unknown FHIR version {', '.join(unknown)} (known: {', '.join(FHIR_VERSIONS)})")
    missing = sorted(declared - set(asked))
    if missing:
        raise DeployError(f"--fhir-versions leaves out {', '.join(missing)}, which a registered mapper uses")
    return tuple(sorted(set(asked)))


def shipped_distributions(entry_point_names: Iterable[str]) -> list[importlib.metadata.Distribution]:
    """fhirpipes plus the distributions providing the selected entry points, each once, by name."""
    wanted = set(entry_point_names)
    dists: dict[str, importlib.metadata.Distribution] = {}
    try:
        core = importlib.metadata.distribution(CORE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise DeployError("fhirpipes itself is not installed as a distribution (pip install it)") from exc
    dists[normalize(core.metadata["Name"])] = core
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in wanted:
            continue
        if ep.dist is None:
            raise DeployError(f"plugin {ep.name!r} has no distribution metadata to package it from")
        dists.setdefault(normalize(ep.dist.metadata["Name"]), ep.dist)
    return [dists[key] for key in sorted(dists)]


# --- what of them is left out -----------------------------------------------------------------------


def remove_runtime_provided(stage: Path, roots: set[str]) -> list[str]:
    """Remove boto3 & co and whatever is installed only because of them; return what was removed."""
    infos = dist_infos(stage)
    excluded = {normalize(name) for name in RUNTIME_PROVIDED}
    reachable: set[str] = set()
    pending = [root for root in roots if root in infos]
    while pending:
        name = pending.pop()
        if name in reachable or name in excluded:
            continue
        reachable.add(name)
        not_followed = DEPENDENCIES_LEFT_OUT.get(name, frozenset())
        pending.extend(dep for dep in requires(infos[name]) if dep in infos and dep not in not_followed)
    removed = sorted(name for name in infos if name not in reachable)
    for name in removed:
        _remove_distribution(stage, infos[name])
    return removed


def _remove_distribution(stage: Path, info: Path) -> None:
    for path, _, _ in record_rows(info):
        target = stage / path
        if ".." not in Path(path).parts and target.is_file():
            target.unlink()
    shutil.rmtree(info, ignore_errors=True)
    _remove_empty_dirs(stage)


def tidy(stage: Path) -> None:
    """Drop what only makes sense on this machine: console scripts, install-time provenance, caches."""
    shutil.rmtree(stage / "bin", ignore_errors=True)
    for direct_url in stage.glob("*.dist-info/direct_url.json"):
        direct_url.unlink()  # names a temporary wheel path: neither useful nor reproducible
    for cache in sorted(stage.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)


def leave_out(stage: Path) -> None:
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


def prune_fhir(stage: Path, keep: Iterable[str]) -> None:
    """Remove the FHIR versions of fhir.resources not in ``keep``."""
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
