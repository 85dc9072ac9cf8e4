"""The ``*.dist-info`` folders of a package being built: read them, and make each ``RECORD`` true.

The handler finds its plugins through entry points, so the metadata ships. Once files are
dropped and bytecode is compiled, each ``RECORD`` is rewritten to list exactly the files shipped
(dropped files out, the compiled ``.pyc`` and template caches in, without a hash as pip lists
pycs; hashes of edited files recomputed), so the metadata stays consistent.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
from pathlib import Path

from fhirpipes.engine.cache import CACHE_DIR

_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """A distribution's name as packaging compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_infos(stage: Path) -> dict[str, Path]:
    """The ``*.dist-info`` folders in ``stage`` by normalized distribution name."""
    found: dict[str, Path] = {}
    for info in sorted(stage.glob("*.dist-info")):
        metadata = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
        name = next((line[5:].strip() for line in metadata.splitlines() if line.startswith("Name:")), None)
        if name:
            found[normalize(name)] = info
    return found


def requires(info: Path) -> set[str]:
    """Every distribution ``info`` may require (any marker, any extra: over-approximated, to be safe)."""
    names = set()
    for line in (info / "METADATA").read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        if line.startswith("Requires-Dist:"):
            match = _REQUIREMENT_NAME.match(line[len("Requires-Dist:") :])
            if match:
                names.add(normalize(match.group(1)))
    return names


def record_rows(info: Path) -> list[tuple[str, str, str]]:
    """(path, hash, size) of each row of ``info``'s RECORD; none if it has no RECORD."""
    record = info / "RECORD"
    if not record.is_file():
        return []
    rows = csv.reader(io.StringIO(record.read_text(encoding="utf-8")))
    return [(row[0], row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "") for row in rows if row]


def rewrite_records(stage: Path) -> None:
    """Make each RECORD list exactly what ships: drop removed files, add the compiled pycs and
    template caches (generated files, listed without a hash as pip lists pycs)."""
    for info in sorted(stage.glob("*.dist-info")):
        rows: dict[str, tuple[str, str, str]] = {}
        for path, digest, size in record_rows(info):
            if ".." in Path(path).parts or not (stage / path).is_file():
                continue
            if digest:  # recomputed: a file we edited (entry_points.txt) must still match its row
                data = (stage / path).read_bytes()
                digest, size = record_digest(data), str(len(data))
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


def record_digest(data: bytes) -> str:
    """A RECORD hash, as pip writes it: ``sha256=`` and the urlsafe base64 digest, unpadded."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def distributions(stage: Path) -> tuple[tuple[str, str], ...]:
    """(name, version) of every distribution in ``stage``, sorted by normalized name."""
    result = []
    for info in sorted(stage.glob("*.dist-info")):
        headers = dict(
            line.split(":", 1)
            for line in (info / "METADATA").read_text(encoding="utf-8", errors="replace").splitlines()[:20]
            if ":" in line
        )
        result.append((headers.get("Name", info.name).strip(), headers.get("Version", "?").strip()))
    return tuple(sorted(result, key=lambda item: normalize(item[0])))
