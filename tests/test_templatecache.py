"""Compiled templates cached beside their sources: used when fresh, ignored when stale, optional."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fhirpipes.render import TemplateEnvironment
from fhirpipes.templatecache import CACHE_DIR


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache_probe_templates"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "t.json.j2").write_text('{"a": {{ v }}}\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    yield folder
    sys.modules.pop("cache_probe_templates", None)


def test_a_compiled_template_is_cached_and_reused(package: Path) -> None:
    first = TemplateEnvironment("cache_probe_templates")
    assert first.get_template("t.json.j2").render(v=1) == '{"a": 1}\n'
    assert len(list((package / CACHE_DIR).glob("*.cache"))) == 1

    second = TemplateEnvironment("cache_probe_templates")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again")

    second.compile = refuse  # type: ignore[method-assign]
    assert second.get_template("t.json.j2").render(v=2) == '{"a": 2}\n'


def test_a_changed_template_is_compiled_again(package: Path) -> None:
    TemplateEnvironment("cache_probe_templates").get_template("t.json.j2")
    (package / "t.json.j2").write_text('{"b": {{ v }}}\n')
    assert TemplateEnvironment("cache_probe_templates").get_template("t.json.j2").render(v=3) == '{"b": 3}\n'


def test_an_unwritable_cache_is_no_error(package: Path) -> None:
    (package / CACHE_DIR).write_text("a file where the folder would go")
    assert TemplateEnvironment("cache_probe_templates").get_template("t.json.j2").render(v=4) == '{"a": 4}\n'
