"""Compiled templates kept beside their sources, like ``__pycache__`` for Python.

Compiling a template needs Jinja's parser (about 10 ms of imports) plus the compile itself; a
cold start that finds the compiled code here needs neither: it reads the source (to check the
checksum), reads the entry, and ``marshal``-loads the code. Entries are keyed by template
package and name (not by path, which differs between the build machine and ``/var/task``) and
checked against the engine version, the Python version and the source's checksum, so a stale
entry is never used. ``fhirpipes package`` fills them in the zip (``/var/task`` is read-only); a
writable install fills them on first use; a folder that can't be written is simply not written.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import marshal
import os
from pathlib import Path
from types import CodeType

CACHE_DIR = "__fhirpipes_cache__"
ENGINE_VERSION = "4"
"""Bump when the compiler's output changes: entries of another version are never used."""

_MAGIC = importlib.util.MAGIC_NUMBER.hex()


def checksum(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


def _entry(root: Path, package: str, name: str) -> Path:
    key = hashlib.sha1(f"{package}|{name}".encode(), usedforsecurity=False).hexdigest()
    return root / CACHE_DIR / f"{key}.bin"


def _header(digest: str) -> bytes:
    return f"fhirpipes-template {ENGINE_VERSION} {_MAGIC} {digest}\n".encode()


def read(root: Path, package: str, name: str, digest: str) -> CodeType | None:
    """The cached code of a template, if there is a fresh entry."""
    try:
        data = _entry(root, package, name).read_bytes()
    except OSError:
        return None
    header = _header(digest)
    if not data.startswith(header):
        return None
    try:
        code = marshal.loads(data[len(header) :])
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def write(root: Path, package: str, name: str, digest: str, code: CodeType) -> bool:
    """Store an entry atomically (a reader never sees half a file); False if the folder can't be written."""
    import tempfile  # only when writing: its import costs a cold start more than the cache saves

    path = _entry(root, package, name)
    try:
        path.parent.mkdir(exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return False
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(_header(digest) + marshal.dumps(code))
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return False
    return True
