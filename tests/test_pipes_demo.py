"""``fhirpipes demo`` runs on its own, shows the whole flow, exits 0 and leaves nothing behind."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

FHIRPIPES = Path(sys.executable).with_name("fhirpipes")


@pytest.mark.slow
def test_demo_runs_to_the_end_and_leaves_no_server(tmp_path: Path) -> None:
    completed = subprocess.run(
        [str(FHIRPIPES), "demo", "--brief"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_PROFILE": "not-configured"},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    for line in (
        r"PUT +Patient/abc",
        r"PUT +Practitioner/pr-0001",
        r"DELETE +Patient/p-0003",
        r"ERROR +conversion-failed at patient\.json\.j2",
        r"ERROR +conversion-failed at practitioner\.json\.j2",
        r"run ended: every stream read to its end",
    ):
        assert re.search(line, out), line
    total = next(line for line in out.splitlines() if line.startswith("total"))
    # read 11, filtered 0, mapped 8, skipped 1 (the change FHIR doesn't show), failed 2, delivered 10,
    # dead-lettered 0
    assert total.split()[1:] == ["11", "0", "8", "1", "2", "10", "0"]
    assert list(tmp_path.iterdir()) == []  # no checkpoint file, nothing written in the working folder

    endpoint = re.search(r"at http://127\.0\.0\.1:(\d+)", out)
    assert endpoint is not None
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", int(endpoint.group(1))))


@pytest.mark.slow
def test_the_demo_flows_into_a_fhir_server_when_asked() -> None:
    from click.testing import CliRunner
    from medplum import medplum

    from fhirpipes.cli import main

    with medplum() as url:
        result = CliRunner().invoke(main, ["demo", "--brief", "--fhir-url", url])
    assert result.exit_code == 0, result.output
    assert "-> fhir:" in result.output
    # The inserted-then-deleted patient is gone; the broken items went to the dead letters, not the store.
    assert "Patient/p-0002" in result.output and "Patient/p-0003" not in result.output
    assert "Practitioner/pr-0001" in result.output and "Practitioner/pr-0003" not in result.output


def test_a_bad_fhir_url_is_refused_before_anything_starts() -> None:
    from click.testing import CliRunner

    from fhirpipes.cli import main

    result = CliRunner().invoke(main, ["demo", "--fhir-url", "ftp://nowhere"])
    assert result.exit_code != 0
    assert result.output.startswith("Error: ") and "embedded" not in result.output
