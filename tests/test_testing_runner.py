"""The conformance checks without pytest (`fhirpipes.testing.runner`)."""

from __future__ import annotations

from fhirpipes.mapper import Mapper, PipeSpec
from fhirpipes.testing import MapperConformanceTests, run_checks


def test_run_checks_reports_failures_and_skips_without_pytest_machinery() -> None:
    from fhirpipes_practitioner import PRACTITIONER

    broken = Mapper(
        table="Practitioners",
        resource_type="Practitioner",
        template="practitioner.json.j2",
        context=PRACTITIONER.context,
        samples=PRACTITIONER.samples,
        pipe=PipeSpec(filters=({"eventName": ["INSERT"]},)),
    )
    checks = type("Checks", (MapperConformanceTests,), {"mapper": broken, "published": False})
    wanted = {
        "test_pipe_filter_is_valid",
        "test_published_in_entry_point_group",
        "test_samples_map_to_valid_resources",
    }
    results = {result.check: result for result in run_checks(checks, wanted.__contains__)}
    assert set(results) == wanted
    assert results["test_pipe_filter_is_valid"].status == "failed"
    assert "drops its MODIFY" in results["test_pipe_filter_is_valid"].message
    assert results["test_published_in_entry_point_group"].status == "skipped"
    assert results["test_samples_map_to_valid_resources"].status == "passed"
