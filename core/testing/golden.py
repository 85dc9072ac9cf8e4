"""Golden files for mappers: an input batch and the output it must map to, compared as JSON values.

A case is a pair of files in one folder: ``<name>.input.json`` (a Pipe batch: a JSON array of
DynamoDB stream records) and ``<name>.expected.json`` (what the dispatcher returns for it).
Expected files are written only on request, by running the tests with
``FHIRPIPES_REGENERATE_GOLDEN=1``; then review the diff like code::

    FHIRPIPES_REGENERATE_GOLDEN=1 pytest tests/test_practitioner.py && git diff tests/golden/

Usage in a test module::

    CASES = golden.cases(Path(__file__).parent / "golden" / "practitioner")

    @pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
    def test_golden(case):
        golden.check(case, dispatcher.map_batch(case.load_input()))
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

REGENERATE_ENV = "FHIRPIPES_REGENERATE_GOLDEN"
INPUT_SUFFIX = ".input.json"
EXPECTED_SUFFIX = ".expected.json"


@dataclasses.dataclass(frozen=True)
class GoldenCase:
    """One golden case: its name and its two files."""

    name: str
    input_path: Path
    expected_path: Path

    def load_input(self) -> Any:
        """The input batch."""
        return json.loads(self.input_path.read_text(encoding="utf-8"))

    def load_expected(self) -> Any:
        """The expected output (`FileNotFoundError` if it was never generated)."""
        return json.loads(self.expected_path.read_text(encoding="utf-8"))


def cases(directory: Path | str) -> list[GoldenCase]:
    """The cases in ``directory``, by name: one per ``*.input.json``."""
    folder = Path(directory)
    found = []
    for path in sorted(folder.glob(f"*{INPUT_SUFFIX}")):
        name = path.name[: -len(INPUT_SUFFIX)]
        found.append(GoldenCase(name, path, folder / f"{name}{EXPECTED_SUFFIX}"))
    return found


def regenerating(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this run rewrites expected files (``FHIRPIPES_REGENERATE_GOLDEN=1``)."""
    return environ.get(REGENERATE_ENV, "").strip().lower() in ("1", "true", "yes")


def json_value(value: Any) -> Any:
    """``value`` as a plain JSON value (what writing and reading it back would give)."""
    return json.loads(json.dumps(value, default=_default))


def dumps(value: Any) -> str:
    """The text of an expected file: indented, UTF-8, keys in output order, final newline."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=_default) + "\n"


def check(case: GoldenCase, actual: Any) -> None:
    """Assert ``actual`` equals the expected output as JSON values (or rewrite it, when regenerating)."""
    value = json_value(actual)
    if regenerating():
        case.expected_path.write_text(dumps(value), encoding="utf-8")
        return
    if not case.expected_path.exists():
        raise AssertionError(
            f"golden case {case.name!r} has no {case.expected_path.name}: generate it with "
            f"{REGENERATE_ENV}=1 and review it by hand"
        )
    expected = case.load_expected()
    if value != expected:
        diff = "".join(
            difflib.unified_diff(
                dumps(expected).splitlines(keepends=True),
                dumps(value).splitlines(keepends=True),
                fromfile=str(case.expected_path),
                tofile="actual",
            )
        )
        raise AssertionError(
            f"golden case {case.name!r} differs from {case.expected_path.name} "
            f"(if the change is intended: {REGENERATE_ENV}=1, then review the diff):\n{diff}"
        )


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"a {type(value).__name__} has no JSON form")
