"""Progress bars and colour: on a terminal only, so CI logs and files stay clean; ``NO_COLOR`` respected."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhirpipes.cli import MAP_BAR_RECORDS, main
from fhirpipes.progress import ProgressBar, is_terminal, show_bar, wants_color
from fhirpipes.testing import make_batch

BAR_CHARACTERS = ("━", "\x1b[")


class Tty(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_terminal_is_a_tty_that_is_not_dumb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert is_terminal(Tty()) and not is_terminal(io.StringIO())
    monkeypatch.setenv("TERM", "dumb")
    assert not is_terminal(Tty())
    closed = Tty()
    closed.close()
    assert not is_terminal(closed)


def test_colour_needs_a_terminal_and_no_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_color(Tty()) and not wants_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_color(Tty())
    monkeypatch.setenv("NO_COLOR", "")  # https://no-color.org: set *and* not empty
    assert wants_color(Tty())


def test_a_bar_is_shown_when_asked_else_when_stderr_is_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert show_bar(None) is False and show_bar(True) is True
    monkeypatch.setattr(sys, "stderr", Tty())
    assert show_bar(None) is True and show_bar(False) is False


def test_a_disabled_bar_counts_and_prints_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressBar("things", 3, enabled=False, unit="things", errors=True) as bar:
        bar.advance(2, errors=1)
        bar.describe("things: step two")
        bar.echo("a line for people")
        bar.advance()
    assert (bar.done, bar.errors, bar.label) == (3, 1, "things: step two")
    captured = capsys.readouterr()
    assert captured.err == "a line for people\n" and captured.out == ""


def test_conformance_draws_no_bar_and_no_colour_off_a_terminal() -> None:
    result = CliRunner().invoke(main, ["conformance", "practitioner", "-k", "pipe_filter"])
    assert result.exit_code == 0, result.output
    assert not any(mark in result.output for mark in BAR_CHARACTERS)


def test_map_of_many_records_draws_no_bar_off_a_terminal(tmp_path: Path) -> None:
    batch = make_batch(
        "Practitioners", [{"id": f"x-{n}", "npi": "1234567893"} for n in range(MAP_BAR_RECORDS + 1)]
    )
    source = tmp_path / "batch.json"
    source.write_text(json.dumps(batch), encoding="utf-8")
    result = CliRunner().invoke(main, ["map", str(source), "--indent", "0"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == MAP_BAR_RECORDS + 1
    assert not any(mark in result.stderr for mark in BAR_CHARACTERS)


def _on_a_terminal(args: list[str], env: dict[str, str], out: Path) -> tuple[str, str]:
    """Run ``fhirpipes ARGS`` with stderr on a pseudo-terminal: (stdout, what the terminal got)."""
    controller, terminal = pty.openpty()
    try:
        with out.open("wb") as stdout:  # a file, not a pipe: nobody reads a pipe while the pty is read
            process = subprocess.Popen(
                [sys.executable, "-m", "fhirpipes", *args],
                stdout=stdout,
                stderr=terminal,
                env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", **env},
            )
            os.close(terminal)
            screen = bytearray()
            while True:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the process closed its end
                    break
                if not chunk:
                    break
                screen += chunk
            process.wait(timeout=60)
    finally:
        os.close(controller)
    assert process.returncode == 0, screen.decode(errors="replace")
    return out.read_text(encoding="utf-8"), screen.decode(errors="replace")


@pytest.mark.slow  # two subprocesses on a pseudo-terminal
def test_map_of_many_records_draws_a_bar_on_a_terminal_in_colour_unless_no_color(tmp_path: Path) -> None:
    batch = make_batch(
        "Practitioners", [{"id": f"x-{n}", "npi": "1234567893"} for n in range(MAP_BAR_RECORDS + 1)]
    )
    source = tmp_path / "batch.json"
    source.write_text(json.dumps(batch), encoding="utf-8")
    env = {"FHIRPIPES_LOG_LEVEL": "WARNING", "NO_COLOR": ""}
    stdout, screen = _on_a_terminal(["map", str(source), "--indent", "0"], env, tmp_path / "out")
    assert len(json.loads(stdout)) == MAP_BAR_RECORDS + 1  # the results are not on the terminal's stream
    assert f"{MAP_BAR_RECORDS + 1}/{MAP_BAR_RECORDS + 1}" in screen and "records" in screen
    assert "\x1b[32m" in screen  # rich's colours
    _, plain = _on_a_terminal(
        ["map", str(source), "--indent", "0"], {**env, "NO_COLOR": "1"}, tmp_path / "out"
    )
    assert f"{MAP_BAR_RECORDS + 1}/{MAP_BAR_RECORDS + 1}" in plain
    assert "\x1b[32m" not in plain and "\x1b[35m" not in plain


@pytest.mark.slow  # a subprocess
def test_a_disabled_bar_never_imports_rich() -> None:
    code = (
        "import sys\n"
        "from fhirpipes.progress import ProgressBar\n"
        "with ProgressBar('x', 2, enabled=False) as bar:\n"
        "    bar.advance(2)\n"
        "assert 'rich' not in sys.modules, 'rich imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
