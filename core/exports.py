"""Lazy re-exports for packages whose public names live in costly submodules.

``fhirpipes.pipes`` and ``fhirpipes.testing`` re-export names that need boto3, moto or the
conformance kit; importing them eagerly would slow every ``import fhirpipes.pipes`` (and, for
the kit, every pytest run, which loads the pytest11 plugin). Each such package keeps a dict of
name -> submodule and gets its module ``__getattr__`` and ``__dir__`` from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, importing each exported name on first use."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value  # from now on a plain module global
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
