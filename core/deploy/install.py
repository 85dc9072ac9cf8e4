"""The pip step of the package: each distribution installed for the Lambda runtime, not this machine.

``pip install --target`` with ``--platform manylinux2014_<arch> --implementation cp
--python-version X.Y --only-binary=:all:`` (plus ``manylinux_2_28`` on the Amazon Linux 2023
runtimes, 3.12 and later). Versions are pinned to the ones installed here (what you tested is
what you ship). A distribution installed from a folder (editable or not) or a VCS is built into
a wheel first (``pip wheel --no-deps``), from a copy of *the files git tracks* in that folder:
an untracked export, a stale ``build/`` or a local ``.env`` never reaches the zip, and the work
tree isn't written to. A folder outside git is refused (build a wheel of it and install that
instead).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from fhirpipes.deploy import DeployError
from fhirpipes.deploy.distinfo import normalize
from fhirpipes.deploy.runtime import wheel_platforms

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Source:
    """One distribution to install: from the index (``name==version``) or a local wheel we build."""

    name: str
    version: str
    requirement: str
    """What pip installs: ``name==version``, or the path of the built wheel."""
    local: str | None = None
    """Where a local distribution's source is (folder, archive or VCS URL); None for the index."""


def source_of(dist: importlib.metadata.Distribution) -> Source:
    """Where to install ``dist`` from: the index, or where it was installed from here."""
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


def wheel_of(source: Source, work: Path, say: Log) -> str:
    """Build a local distribution's wheel (no dependencies) and return its path."""
    assert source.local is not None
    location = source.local
    wheels = work / "wheels" / normalize(source.name)
    wheels.mkdir(parents=True)
    if Path(location).is_dir():
        copy = work / "sources" / normalize(source.name)
        count = copy_tracked_files(Path(location), copy)
        location = str(copy)
        say(
            f"building a wheel of {source.name} {source.version} from the {count} files git tracks in {source.local}"
        )
    else:
        say(f"building a wheel of {source.name} {source.version} from {source.local}")
    pip(["wheel", "--no-deps", "--wheel-dir", str(wheels), location], what=f"building {source.name}")
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


def pip_install(
    requirements: list[str], stage: Path, python: str, arch: str, work: Path, sources: list[Source], say: Log
) -> None:
    """Install ``requirements`` into ``stage`` for the Lambda runtime, pinned to what is installed here
    (but ``sources``, which are built here)."""
    platforms = wheel_platforms(python, arch)
    constraints = work / "constraints.txt"
    constraints.write_text(_constraints({normalize(source.name) for source in sources}), encoding="utf-8")
    args = ["install", "--target", str(stage), "--only-binary=:all:", "--implementation", "cp"]
    for platform in platforms:
        args += ["--platform", platform]
    args += ["--python-version", python, "--abi", "cp" + python.replace(".", "")]
    args += ["--no-compile", "--no-warn-script-location", "--constraint", str(constraints), *requirements]
    say(f"installing for python{python} on {arch} ({', '.join(platforms)})")
    pip(args, what=f"installing for python{python} on {arch}")


def _constraints(skip: set[str]) -> str:
    """Pin every distribution installed here (but the ones we build) to its installed version."""
    pins: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalize(name) not in skip and not dist.read_text("direct_url.json"):
            pins[normalize(name)] = dist.version
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def pip(args: list[str], *, what: str) -> None:
    """Run this interpreter's pip; `DeployError` with pip's first error line if it fails."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        reason = errors[0] if errors else (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise DeployError(f"pip failed {what}: {reason.removeprefix('ERROR: ')}")
