"""The kit's pytest plugin (`fhirpipes.testing.fixtures`): its fixtures, and nothing done at import."""

from __future__ import annotations

import pytest
from builders import PYTESTER_ARGS

pytest_plugins = ["pytester"]


def test_fixtures_build_records_and_map_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_it(make_record, make_batch, map_batch, fhirpipes_log):
            batch = make_batch("Practitioners", [{"id": "x-1", "npi": "1234567893"}])
            batch.append(make_record("Practitioners", None, {"id": "x-1", "npi": "1234567893"}))
            events = map_batch(batch, plugins=["practitioner"])
            assert [event["details"]["command"] for event in events] == ["PUT", "DELETE"]
            assert len(fhirpipes_log) == 3 and "record mapped" in fhirpipes_log[0]
            assert "batch mapped" in fhirpipes_log[-1]
        """
    )
    pytester.runpytest(*PYTESTER_ARGS, "-q").assert_outcomes(passed=1)


def test_the_fixtures_module_has_no_side_effects() -> None:
    import subprocess
    import sys

    code = (
        "import sys, logging; import fhirpipes.testing.fixtures;"
        "assert 'fhirpipes.plugins' not in sys.modules, 'plugins loaded';"
        "assert 'fhirpipes.testing.conformance' not in sys.modules, 'kit imported before rewriting';"
        "assert not any(m.startswith('fhir.resources') for m in sys.modules), 'fhir.resources imported';"
        "assert not logging.getLogger('fhirpipes').handlers, 'logging configured'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
