"""Every package's ``__all__`` is exactly its public names, sorted (the httpx test, made stricter).

A package's public names are the names bound in it that don't start with ``_``, plus the names
it loads on first use (``_EXPORTS``), except what is never API: modules (its submodules, and
modules it imports), ``from __future__`` features, the typing helpers it imports (``Any``,
``Callable``, ``TYPE_CHECKING``) and `fhirpipes.exports.lazy_exports`, the lazy packages'
machinery. So a name imported into a package and left out of ``__all__`` fails, as does a name
in ``__all__`` that the package doesn't have.
"""

from __future__ import annotations
import __future__

import importlib
import subprocess
import sys
import types
from typing import Any

import pytest

from fhirpipes.exports import lazy_exports

FACADES = ["fhirpipes", "fhirpipes.deploy", "fhirpipes.pipes", "fhirpipes.sink", "fhirpipes.testing"]
"""Packages whose ``__init__`` only re-exports (or holds a little glue): ``__all__`` is all of it."""

LAZY = ["fhirpipes", "fhirpipes.pipes", "fhirpipes.testing"]
"""Packages that load some of their names on first use (a module ``__getattr__`` over ``_EXPORTS``)."""

FUTURE_FEATURES = frozenset(__future__.all_feature_names)
TYPING_MODULES = frozenset({"typing", "collections.abc", "typing_extensions"})


def _never_api(name: str, value: Any) -> bool:
    if isinstance(value, types.ModuleType) or value is lazy_exports:
        return True
    if name in FUTURE_FEATURES and isinstance(value, __future__._Feature):
        return True
    return name == "TYPE_CHECKING" or getattr(value, "__module__", None) in TYPING_MODULES


def public_names(package: str) -> list[str]:
    """The names ``package`` offers: bound or loaded on first use, not private, not `_never_api`."""
    module = importlib.import_module(package)
    bound = {name for name, value in vars(module).items() if not name.startswith("_")}
    lazy = set(getattr(module, "_EXPORTS", {}))
    names = {name for name in bound - lazy if not _never_api(name, getattr(module, name))}
    return sorted(names | lazy | ({"__version__"} & set(vars(module))))


@pytest.mark.parametrize("package", FACADES)
def test_all_is_the_public_names_sorted(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == public_names(package)


@pytest.mark.parametrize("package", LAZY)
def test_every_exported_name_loads(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = module.nope


def test_the_local_pipe_offers_its_filters_and_input_templates() -> None:
    import fhirpipes.pipes as pipes

    for required in ("matches", "validate_pattern", "InvalidPattern", "render_input_template"):
        assert required in pipes.__all__


def test_the_engine_exports_what_it_defines() -> None:
    # The engine's __init__ is implementation, not a facade: it imports helpers it doesn't offer.
    import fhirpipes.engine as engine

    defined = {
        name
        for name, value in vars(engine).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == "fhirpipes.engine"
    }
    assert defined <= set(engine.__all__)  # (its order is ruff's RUF022, which lint checks)
    assert all(hasattr(engine, name) for name in engine.__all__)


def test_a_name_missing_from_all_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import fhirpipes

    monkeypatch.setattr(fhirpipes, "Registry", object(), raising=False)  # imported, not exported
    assert "Registry" in public_names("fhirpipes")
    assert fhirpipes.__all__ != public_names("fhirpipes")


def test_what_a_plugin_imports_comes_from_fhirpipes() -> None:
    import fhirpipes
    from fhirpipes.conversions import ConversionError, kind_of
    from fhirpipes.engine.runtime import Missing
    from fhirpipes.records import StreamRecord

    assert fhirpipes.ConversionError is ConversionError
    assert fhirpipes.kind_of is kind_of
    assert fhirpipes.Missing is Missing
    assert fhirpipes.StreamRecord is StreamRecord


@pytest.mark.slow
def test_import_fhirpipes_loads_no_rendering_module() -> None:
    # The CLI imports fhirpipes for every command: its lazy names must stay lazy.
    code = (
        "import sys, fhirpipes;"
        "loaded = sorted(m for m in sys.modules if m.startswith('fhirpipes.'));"
        "assert loaded == ['fhirpipes.errors', 'fhirpipes.fhirversion', 'fhirpipes.hookspecs', 'fhirpipes.mapper'], loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
