"""The documentation (README.md and the site's docs/*.md) documents every error code, setting, CLI option
and Mapper field (datasette tests its hook docs this way), and the command-line page is current."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from fhirpipes import ErrorCode, Mapper
from fhirpipes.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
# The prose pages: the generated command-line page lists every option by construction.
PROSE = "\n".join(page.read_text(encoding="utf-8") for page in PAGES if page.name != "cli.md")


@pytest.mark.parametrize("code", [code.value for code in ErrorCode])
def test_every_error_code_is_documented(code: str) -> None:
    assert f"`{code}`" in PROSE


def _settings() -> set[str]:
    names: set[str] = set()
    for folder in ("core", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            names.update(re.findall(r"FHIRPIPES_[A-Z][A-Z_]*[A-Z]", path.read_text(encoding="utf-8")))
    return names


@pytest.mark.parametrize("name", sorted(_settings()))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in PROSE


@pytest.mark.parametrize("field", [field.name for field in dataclasses.fields(Mapper)])
def test_every_mapper_field_is_documented(field: str) -> None:
    assert f"`{field}`" in PROSE


def _options() -> list[tuple[str, str, bool]]:
    context = click.Context(main, info_name="fhirpipes")
    found = []
    for name in main.list_commands(context):
        command = main.get_command(context, name)
        assert command is not None
        for parameter in command.params:
            if isinstance(parameter, click.Option):
                long = [option for option in parameter.opts if option.startswith("--")]
                found += [(name, option, bool(parameter.help)) for option in long]
    return found


@pytest.mark.parametrize(("command", "option", "explained"), _options())
def test_every_cli_option_is_documented(command: str, option: str, explained: bool) -> None:
    # docs/cli.md lists every option with its help, which must say something.
    assert explained, f"fhirpipes {command} {option} has no help text"
    assert option in DOCS, f"fhirpipes {command} {option}"


def test_the_command_line_page_is_current() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_cli_docs.py"), "--check"],
        capture_output=True,
        check=False,
    )
    assert check.returncode == 0, "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"


@pytest.mark.parametrize("page", [page.name for page in PAGES if page.name != "README.md"])
def test_every_page_is_in_the_site_navigation(page: str) -> None:
    assert f": {page}" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
