"""The package's zip file: written reproducibly, and read back for its manifest.

Entries sorted, timestamps 1980-01-01, permissions 0644 (0755 when executable), no directory
entries, and a JSON comment (python, arch, handler) that ``fhirpipes template --package`` reads.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from fhirpipes.deploy import DeployError

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_COMMENT_KEY = "fhirpipes-package"
"""The key of the manifest in the zip's JSON comment."""

FileEntry = tuple[str, Path, int]
"""(archive name, path, size) of one file to zip."""


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


def stage_files(stage: Path) -> list[FileEntry]:
    """(archive name, path, size) of every file, sorted by archive name."""
    found = [
        (path.relative_to(stage).as_posix(), path, path.stat().st_size)
        for path in stage.rglob("*")
        if path.is_file() and not path.is_symlink()
    ]
    return sorted(found, key=lambda item: item[0])


def write_zip(target: Path, files: list[FileEntry], comment: bytes) -> dict[str, int]:
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


def top_level(files: list[FileEntry], compressed: dict[str, int]) -> tuple[tuple[str, int, int], ...]:
    """(top-level entry, unzipped bytes, zipped bytes), largest first; dist-infos counted together."""
    sizes: dict[str, list[int]] = {}
    for name, _, size in files:
        top = name.split("/", 1)[0]
        key = "*.dist-info (metadata)" if top.endswith(".dist-info") else top
        entry = sizes.setdefault(key, [0, 0])
        entry[0] += size
        entry[1] += compressed[name]
    return tuple(sorted(((key, u, z) for key, (u, z) in sizes.items()), key=lambda item: (-item[1], item[0])))
