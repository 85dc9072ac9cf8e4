"""The documented Glue job (docs/glue-backfill.yaml) passes cfn-lint and checkov, and its arguments are
the Glue entry point's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from cfnlint.api import ManualArgs, lint
from test_deploy_template import checkov_executable

from fhirpipes.backfill.glue import OPTIONS

STACK = Path(__file__).resolve().parents[1] / "docs" / "glue-backfill.yaml"


def test_the_glue_job_passes_cfn_lint() -> None:
    assert lint(STACK.read_text(encoding="utf-8"), config=ManualArgs(regions=["us-east-1"])) == []


def test_the_glue_job_passes_its_arguments_the_entry_point_reads() -> None:
    class Loader(yaml.SafeLoader):
        pass

    for tag in ("!Sub", "!Ref", "!GetAtt"):
        Loader.add_constructor(tag, lambda loader, node: loader.construct_scalar(node))
    stack = yaml.load(STACK.read_text(encoding="utf-8"), Loader=Loader)
    arguments = stack["Resources"]["BackfillJob"]["Properties"]["DefaultArguments"]
    ours = {name[2:] for name in arguments if name[2:].isupper()}
    assert ours and ours <= set(OPTIONS)


@pytest.mark.slow
def test_checkov_finds_nothing_in_the_glue_job(tmp_path: Path) -> None:
    done = subprocess.run(
        [checkov_executable(), "-f", str(STACK), "--framework", "cloudformation", "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    results = json.loads(done.stdout)["results"]
    assert results["failed_checks"] == [], [check["check_id"] for check in results["failed_checks"]]
    assert results["passed_checks"]
