"""``fhirpipes package``: the Lambda deployment zip of fhirpipes, the installed plugins and what they need.

`build_package` runs the steps, each in its own module:

1. `fhirpipes.deploy.contents`: which distributions ship (fhirpipes and the plugins' distributions)
   and which FHIR versions of fhir.resources;
2. `fhirpipes.deploy.install`: pip installs them for the Lambda runtime, not for this machine,
   pinned to the versions installed here (local ones built into wheels from the files git tracks);
3. `fhirpipes.deploy.contents` again: what the runtime has (boto3 & co), what the handler never
   imports (`LEFT_OUT`) and the FHIR versions not kept are removed;
4. `fhirpipes.deploy.bytecode`: bytecode and template caches compiled for the target Python
   (only possible with an interpreter of that version here; otherwise sources only, with a warning);
5. `fhirpipes.deploy.distinfo`: each ``RECORD`` rewritten to list exactly the files shipped;
6. `fhirpipes.deploy.archive`: the reproducible zip, with its manifest in the zip comment.

The Lambda facts (handler, runtimes, architectures, size limits) are `fhirpipes.deploy.runtime`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fhirpipes.deploy import DeployError
from fhirpipes.deploy.archive import (
    ZIP_COMMENT_KEY,
    ZIP_DATE,
    read_manifest,
    stage_files,
    top_level,
    write_zip,
    zip_name,
)
from fhirpipes.deploy.bytecode import compile_bytecode, find_interpreter, precompile_templates
from fhirpipes.deploy.contents import (
    CORE_DISTRIBUTION,
    DEPENDENCIES_LEFT_OUT,
    FHIR_LAYOUT,
    LEFT_OUT,
    RUNTIME_PROVIDED,
    kept_fhir_versions,
    leave_out,
    plugins_and_mappers,
    prune_fhir,
    remove_runtime_provided,
    shipped_distributions,
    tidy,
)
from fhirpipes.deploy.distinfo import distributions, normalize, rewrite_records
from fhirpipes.deploy.install import Log, Source, copy_tracked_files, pip_install, source_of, wheel_of
from fhirpipes.deploy.runtime import (
    ARCHITECTURES,
    HANDLER,
    MAX_UNZIPPED_BYTES,
    MAX_ZIPPED_BYTES,
    PYTHON_VERSIONS,
)

__all__ = [
    "ARCHITECTURES",
    "CORE_DISTRIBUTION",
    "DEPENDENCIES_LEFT_OUT",
    "FHIR_LAYOUT",
    "HANDLER",
    "LEFT_OUT",
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIPPED_BYTES",
    "PYTHON_VERSIONS",
    "RUNTIME_PROVIDED",
    "ZIP_COMMENT_KEY",
    "ZIP_DATE",
    "Log",
    "PackageResult",
    "Source",
    "build_package",
    "check_size",
    "copy_tracked_files",
    "find_interpreter",
    "precompile_templates",
    "read_manifest",
    "zip_name",
]

# Where a distribution comes from, and building its wheel: build_package calls them by these names,
# so that a test can patch them here (to build each wheel once, or from another checkout).
_source_of = source_of
_wheel_of = wheel_of
# The steps' names from before they had modules of their own (tests/test_deploy_package.py's).
_remove_runtime_provided = remove_runtime_provided
_prune_fhir = prune_fhir
_leave_out = leave_out
_rewrite_records = rewrite_records
_files = stage_files
_write_zip = write_zip


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
    names, tables, declared = plugins_and_mappers(plugins)
    keep = kept_fhir_versions(fhir_versions, declared)
    sources = [_source_of(dist) for dist in shipped_distributions(names)]
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fhirpipes-package-") as scratch:
        work = Path(scratch)
        stage = work / "stage"
        requirements = [
            _wheel_of(source, work, say) if source.local else source.requirement for source in sources
        ]
        pip_install(requirements, stage, python, arch, work, sources, say)
        roots = {normalize(source.name) for source in sources}
        removed = remove_runtime_provided(stage, roots)
        if removed:
            say(
                f"left out (the Lambda runtime has them, or only what is left out needs them): {', '.join(removed)}"
            )
        tidy(stage)
        prune_fhir(stage, keep)
        leave_out(stage)
        interpreter = find_interpreter(python)
        if interpreter:
            say(f"compiling bytecode with {interpreter}")
            warnings.extend(compile_bytecode(stage, interpreter))
            say(f"compiling templates: {precompile_templates(stage, interpreter)} cached")
        else:
            warnings.append(
                f"no Python {python} interpreter here: shipping sources only, so every cold start "
                f"compiles them (slower); build on a machine with python{python} to include bytecode"
            )
        rewrite_records(stage)
        files = stage_files(stage)
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
        compressed = write_zip(partial, files, json.dumps(manifest, sort_keys=True).encode())
        zipped = partial.stat().st_size
        try:
            check_size(zipped=zipped, max_zipped_bytes=max_zipped_bytes)
        except DeployError:
            partial.unlink()
            raise
        os.replace(partial, target)
        dists = distributions(stage)
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
        top_level=top_level(files, compressed),
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


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB"
