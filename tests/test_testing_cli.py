"""``fhirpipes conformance`` (`fhirpipes.testing.cli`): the kit over installed plugins; rows as checks
finish, one line per cause of failure, a summary."""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpipes.cli import main
from fhirpipes.testing import CheckResult
from fhirpipes.testing.cli import cause_of


def test_conformance_command_prints_a_table_and_exits_zero_on_success() -> None:
    from fhirpipes.cli import main

    result = CliRunner().invoke(main, ["conformance", "practitioner", "-k", "pipe_filter"])
    assert result.exit_code == 0, result.output
    assert "practitioner  Practitioners  pipe_filter_is_valid  PASS" in result.output
    assert "1 passed, 0 failed, 0 skipped" in result.output


def test_conformance_command_refuses_unknown_plugins() -> None:
    from fhirpipes.cli import main

    result = CliRunner().invoke(main, ["conformance", "no-such-plugin"])
    assert result.exit_code != 0
    assert "not installed in the 'fhirpipes' entry-point group: no-such-plugin" in result.output


BROKEN_TEMPLATE = """\
{
  "resourceType": "Patient",
  "id": {{ keys.id }},
  "name": [{"family": {{ new.lastName | no_such_filter }}}]
}
"""


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An installed plugin (a dist-info on sys.path) whose template uses an unknown filter at line 4."""
    package = tmp_path / "fhirpipes_broken_encounter"
    package.mkdir()
    (package / "encounter.json.j2").write_text(BROKEN_TEMPLATE, encoding="utf-8")
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """\
            from fhirpipes import Mapper, hookimpl

            MAPPER = Mapper(
                table="Encounters", resource_type="Patient", template="encounter.json.j2",
                template_package=__name__, samples=[{"id": "e-1", "lastName": "Okafor"}],
            )

            @hookimpl
            def register_mappers(register):
                register(MAPPER)
            """
        ),
        encoding="utf-8",
    )
    info = tmp_path / "fhirpipes_broken_encounter-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fhirpipes-broken-encounter\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[fhirpipes]\nbroken = fhirpipes_broken_encounter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "broken"
    sys.modules.pop("fhirpipes_broken_encounter", None)


def test_a_broken_template_gives_one_failure_line_naming_template_and_line(broken_plugin: str) -> None:
    result = CliRunner().invoke(main, ["conformance", broken_plugin])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    causes = [line for line in lines if "checks failed" in line or "check failed" in line]
    assert len(causes) == 1, result.output
    (cause,) = causes
    failed = sum(line.split()[3:4] == ["FAIL"] for line in lines)
    assert failed >= 10  # nearly every check meets the template
    assert cause == (
        f"[1] broken Encounters: {failed} checks failed: "
        "template encounter.json.j2, line 4: no filter named 'no_such_filter'"
    )
    rows = [line for line in lines if line.startswith("broken  ")]
    assert all(line.endswith("  [1]") for line in rows if "  FAIL" in line)
    assert lines[-1] == f"{len(rows) - failed - 1} passed, {failed} failed, 1 skipped"
    assert "Okafor" not in result.output  # a sample's value is no cause


def test_each_row_is_printed_when_its_check_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    printed_before: list[str] = []

    def run_checks(cls: object, only: object = None) -> Iterator[CheckResult]:
        for name in ("test_first", "test_second"):
            sys.stdout.flush()
            printed_before.append(sys.stdout.buffer.getvalue().decode())  # type: ignore[attr-defined]
            yield CheckResult(name, "passed")

    monkeypatch.setattr("fhirpipes.testing.cli.run_checks", run_checks)
    result = CliRunner().invoke(main, ["conformance", "practitioner", "-k", "pipe_filter"])
    assert result.exit_code == 0, result.output
    assert "first" not in printed_before[0]
    assert re.search(r"first +PASS", printed_before[1])  # printed before the second check ran
    assert re.search(r"second +PASS", result.output)


def test_the_json_output_keeps_every_row() -> None:
    result = CliRunner().invoke(main, ["conformance", "practitioner", "-k", "pipe_filter", "--json"])
    assert result.exit_code == 0, result.output
    assert '"check": "pipe_filter_is_valid"' in result.output and "PASS" not in result.output


def test_failures_at_one_template_line_share_a_cause_whatever_the_check() -> None:
    messages = [
        "the template does not load: no filter named 'f' [template=t.json.j2, line=4]",
        "sample 0: record error template-unsupported: no filter named 'f' "
        "[table=T, eventID=abc, sequenceNumber=1, template=t.json.j2, line=4]",
        "sample 0 did not map: {'code': <ErrorCode.TEMPLATE_UNSUPPORTED: 'template-unsupported'>, "
        "'message': \"no filter named 'f'\", 'path': None, 'template': 't.json.j2', 'line': 4}",
    ]
    keys = {cause_of(message)[0] for message in messages}
    assert keys == {"t.json.j2:4"}
    assert cause_of(messages[1])[1] == (
        "template t.json.j2, line 4: no filter named 'f' (template-unsupported)"
    )
    assert cause_of(messages[0].replace("line=4", "line=5"))[0] == "t.json.j2:5"


def test_other_failures_are_their_own_cause_without_record_ids() -> None:
    first = "sample 0: record error invalid-code: not in the value set [table=T, eventID=a1, path=x.y]"
    second = first.replace("eventID=a1", "eventID=b2")
    assert cause_of(first)[0] == cause_of(second)[0]
    assert cause_of(first)[1] == first  # told whole
    assert cause_of("some check's own message\nmore")[1] == "some check's own message"
