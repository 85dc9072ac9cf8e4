"""Compiled templates kept beside their sources, like ``__pycache__`` for Python.

Compiling a Jinja template costs a Lambda's cold start about 7 ms per template (measured).
Jinja can cache the compiled code; this cache keys it by template *package and name* (not by
file path, which differs between the build machine and Lambda's ``/var/task``), by the versions
of Jinja, fhirpipes' code generator and Python (Jinja's bucket header), and checks the source's
checksum on load, so a stale entry is never used.

Entries live in ``__jinja_cache__/`` beside each package's templates. A writable install (a
checkout, a virtualenv) fills it on first use; ``fhirpipes package`` fills it in the zip, since
``/var/task`` is read-only. A directory that can't be written is simply not written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import jinja2
from jinja2.bccache import Bucket, BytecodeCache

CACHE_DIR = "__jinja_cache__"
GENERATOR_VERSION = "1"
"""Bump when fhirpipes' template code generator changes: old entries then never match."""


class TemplateCache(BytecodeCache):
    """Jinja bytecode for the templates of ``package``, stored under each template root."""

    def __init__(self, package: str, roots: list[Path]) -> None:
        self.package = package
        self.directories = [root / CACHE_DIR for root in roots]

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        text = f"{GENERATOR_VERSION}|{jinja2.__version__}|{self.package}|{name}"
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    def load_bytecode(self, bucket: Bucket) -> None:
        for directory in self.directories:
            try:
                with open(directory / f"{bucket.key}.cache", "rb") as file:
                    bucket.load_bytecode(file)
            except OSError:
                continue
            if bucket.code is not None:
                return

    def dump_bytecode(self, bucket: Bucket) -> None:
        for directory in self.directories:
            with contextlib.suppress(OSError):
                write_entry(directory, bucket)
                return


def write_entry(directory: Path, bucket: Bucket) -> None:
    """Write one entry atomically (a reader never sees half a file); `OSError` if it can't."""
    import tempfile  # only when writing: its import costs a cold start more than the cache saves

    directory.mkdir(exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            bucket.write_bytecode(file)
        os.replace(temporary, directory / f"{bucket.key}.cache")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def precompile(prefix: str = "/var/task") -> int:
    """Fill the caches of every installed template package, as if installed under ``prefix``.

    For ``fhirpipes package``, run by the target runtime's Python with only the staged package
    on ``sys.path``: entries are written beside the staged templates, and the compiled code names
    its templates by their path under ``prefix`` (``/var/task`` in Lambda), so the zip is the same
    wherever it is built. Returns the number of entries written.
    """
    from fhirpipes.plugins import load_registry
    from fhirpipes.render import SHARED_TEMPLATES, environment

    packages = {SHARED_TEMPLATES, *(mapper.template_package for mapper in load_registry().mappers)}
    written = 0
    for package in sorted(packages):
        env = environment(package)
        cache = env.bytecode_cache
        assert isinstance(cache, TemplateCache)
        install_root = _install_root(env.roots[0], package)
        for name in sorted(env.list_templates(filter_func=lambda name: name.endswith(".j2"))):
            source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
            assert filename is not None
            shipped_as = Path(prefix, Path(filename).relative_to(install_root)).as_posix()
            bucket = Bucket(env, cache.get_cache_key(name), cache.get_source_checksum(source))
            bucket.code = env.compile(source, name, shipped_as)
            write_entry(cache.directories[0], bucket)
            written += 1
    return written


def _install_root(template_root: Path, package: str) -> Path:
    """The folder on sys.path that holds ``package`` (``.../fhirpipes/templates`` -> ``...``)."""
    return template_root.parents[package.count(".")]
