"""Compiled templates cached beside their sources: used when fresh, ignored when stale, optional;
a cold start that finds them never imports Jinja; a template that fails to compile fails its records only."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhirpipes import engine
from fhirpipes.dispatch import Dispatcher
from fhirpipes.engine import cache
from fhirpipes.plugins import load_registry
from fhirpipes.testing.stream import make_record


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "cache_probe_templates"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "t.json.j2").write_text('{"a": {{ v }}}\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(engine, "_loaded", {})
    yield folder
    sys.modules.pop("cache_probe_templates", None)


def test_a_compiled_template_is_cached_and_reused(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine.render("cache_probe_templates", "t.json.j2", {"v": 1}) == {"a": 1}
    assert len(list((package / cache.CACHE_DIR).glob("*.bin"))) == 1

    def refuse(*args: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(engine, "_loaded", {})
    monkeypatch.setattr(engine, "_compile", refuse)
    assert engine.render("cache_probe_templates", "t.json.j2", {"v": 2}) == {"a": 2}


def test_a_changed_template_is_compiled_again(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.load("cache_probe_templates", "t.json.j2")
    (package / "t.json.j2").write_text('{"b": {{ v }}}\n')
    monkeypatch.setattr(engine, "_loaded", {})
    assert engine.render("cache_probe_templates", "t.json.j2", {"v": 3}) == {"b": 3}


def test_an_entry_of_another_engine_version_is_not_used(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.load("cache_probe_templates", "t.json.j2")
    monkeypatch.setattr(engine, "_loaded", {})
    monkeypatch.setattr(cache, "ENGINE_VERSION", cache.ENGINE_VERSION + "-next")
    compiled = []
    real = engine._compile
    monkeypatch.setattr(engine, "_compile", lambda *args: compiled.append(1) or real(*args))
    engine.load("cache_probe_templates", "t.json.j2")
    assert compiled == [1]


def test_an_unwritable_or_corrupt_cache_is_no_error(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (package / cache.CACHE_DIR).write_text("a file where the folder would go")
    assert engine.render("cache_probe_templates", "t.json.j2", {"v": 4}) == {"a": 4}
    (package / cache.CACHE_DIR).unlink()
    engine.load("cache_probe_templates", "t.json.j2")
    for entry in (package / cache.CACHE_DIR).glob("*.bin"):
        entry.write_bytes(entry.read_bytes()[:-5])
    monkeypatch.setattr(engine, "_loaded", {})
    assert engine.render("cache_probe_templates", "t.json.j2", {"v": 5}) == {"a": 5}


# The digest of the compiler's and runtime's sources at the current ENGINE_VERSION: when either
# changes, bump cache.ENGINE_VERSION (entries compiled before must never be used) and update both here.
COMPILER_DIGEST = ("4", "4a80500ebf6856cd")


def test_the_engine_version_changes_with_the_compiler() -> None:
    folder = Path(engine.__file__).parent
    source = (folder / "compiler.py").read_bytes() + (folder / "runtime.py").read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    assert (cache.ENGINE_VERSION, digest) == COMPILER_DIGEST, (
        "the compiler changed: bump fhirpipes.engine.cache.ENGINE_VERSION and set COMPILER_DIGEST "
        f"to ({cache.ENGINE_VERSION!r}, {digest!r})"
    )


COLD_START = """
import sys
from fhirpipes.handler import handler
from fhirpipes.testing.stream import make_record
events = handler([make_record("Patients", {"id": "p1", "lastName": "Smith"}),
                  make_record("Practitioners", {"id": "d1", "lastName": "Jones", "npi": "1234567893"})])
assert [event["details"]["command"] for event in events] == ["PUT", "PUT"], events
print("jinja2" in sys.modules)
"""


@pytest.mark.slow
def test_a_cold_start_with_compiled_templates_never_imports_jinja() -> None:
    engine.precompile({engine.SHARED_TEMPLATES, *(m.template_package for m in load_registry().mappers)})
    done = subprocess.run([sys.executable, "-c", COLD_START], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_template_that_fails_to_compile_fails_only_its_records(monkeypatch: pytest.MonkeyPatch) -> None:
    # Any exception type, not only Jinja's: e.g. what constant folding of {{ 10 ** 5000 }} raised.
    def explode(*args: object) -> None:
        raise ValueError("Exceeds the limit for integer string conversion")

    monkeypatch.setattr(engine, "_loaded", {})
    monkeypatch.setattr(engine.cache, "read", lambda *args: None)
    monkeypatch.setattr("fhirpipes.engine.compiler.compile_template", explode)
    dispatcher = Dispatcher(load_registry())
    events = dispatcher.map_batch([make_record("Patients", {"id": "p1", "lastName": "Smith"})])
    assert [event["details"]["command"] for event in events] == ["ERROR"]
    assert events[0]["details"]["error"]["code"] == "template-compile"
