"""Bytecode and template caches compiled into the package, for the target Python.

``UNCHECKED_HASH`` pycs: they don't depend on file times, and Lambda's read-only ``/var/task``
can't cache them at cold start. Compiled with ``PYTHONHASHSEED=0``, one file after another, so
the zip is reproducible. Only possible with an interpreter of that version here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from fhirpipes.deploy import DeployError

_COMPILE = """\
import compileall, py_compile, sys
root = sys.argv[1]
ok = compileall.compile_dir(
    root, quiet=1, workers=1, stripdir=root, prependdir="/var/task",
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
sys.exit(0 if ok else 3)
"""


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


def compile_bytecode(stage: Path, interpreter: str) -> list[str]:
    """Compile every module to unchecked-hash pycs, reproducibly (fixed hash seed, one file at a time);
    return the warnings (modules that don't compile for this Python ship as source)."""
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
    `fhirpipes.deploy.distinfo.rewrite_records` lists).
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
