"""``fhirpipes conformance`` (`fhirpipes.testing.cli`): the kit over installed plugins."""

from __future__ import annotations

from click.testing import CliRunner


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
