"""The README documents every error code, setting and Mapper field (datasette tests its hook docs this way)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from fhirpipes import ErrorCode, Mapper

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("code", [code.value for code in ErrorCode])
def test_every_error_code_is_documented(code: str) -> None:
    assert f"`{code}`" in README


def _settings() -> set[str]:
    names: set[str] = set()
    for folder in ("core", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            names.update(re.findall(r"FHIRPIPES_[A-Z][A-Z_]*[A-Z]", path.read_text(encoding="utf-8")))
    return names


@pytest.mark.parametrize("name", sorted(_settings()))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in README


@pytest.mark.parametrize("field", [field.name for field in dataclasses.fields(Mapper)])
def test_every_mapper_field_is_documented(field: str) -> None:
    assert f"`{field}`" in README
