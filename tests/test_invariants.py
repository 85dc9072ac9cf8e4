"""Datatype invariants at runtime (`fhirpipes.invariants`) and every invariant in the kit (FHIRPath)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirpipes.fhirjson import InvariantError, to_json_value
from fhirpipes.invariants import after
from fhirpipes.mapper import Mapper
from fhirpipes.resource import model_class, validate
from fhirpipes.testing.invariants import evaluate, unavailable_reason

pytest_plugins = ["pytester"]

BROKEN: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("R4B", "Practitioner", {"qualification": [{"code": {"text": "MD"},
                             "period": {"start": "2010-06-01", "end": "2009-01-01"}}]},
     "qualification[0].period", "per-1"),
    ("R5", "Patient", {"address": [{"period": {"start": "2021", "end": "2020-12-31"}}]}, "address[0].period", "per-1"),
    ("R4B", "Observation", {"status": "final", "code": {"text": "t"},
                            "valueQuantity": {"value": 1, "code": "mg"}}, "valueQuantity", "qty-3"),
    ("R4B", "Patient", {"telecom": [{"system": "phone", "value": "1"}, {"value": "2"}]}, "telecom[1]", "cpt-2"),
    ("R4B", "Patient", {"photo": [{"data": "AAEC"}]}, "photo[0]", "att-1"),
    ("R4B", "Observation", {"status": "final", "code": {"text": "t"},
                            "valueRange": {"low": {"value": 5, "unit": "kg"}, "high": {"value": 4, "unit": "kg"}}},
     "valueRange", "rng-2"),
    ("R4B", "Observation", {"status": "final", "code": {"text": "t"}, "valueRatio": {"numerator": {"value": 1}}},
     "valueRatio", "rat-1"),
    ("R4B", "Condition", {"subject": {"reference": "Patient/1"}, "onsetAge": {"value": 3, "unit": "a"}},
     "onsetAge", "age-1"),
    ("R4B", "Observation", {"status": "final", "code": {"text": "t"}, "effectiveTiming": {
        "repeat": {"duration": 2}}}, "effectiveTiming.repeat", "tim-1"),
    ("R5", "Observation", {"status": "final", "code": {"text": "t"}, "subject": {"type": "Patient"}},
     "subject", "ref-2"),
    ("R4B", "Patient", {"name": [{"period": {"extension": []}}]}, "name[0].period", "ele-1"),
]  # fmt: skip


@pytest.mark.parametrize(("version", "resource_type", "data", "path", "key"), BROKEN)
def test_datatype_invariants_are_enforced_at_runtime(
    version: str, resource_type: str, data: dict[str, Any], path: str, key: str
) -> None:
    model = model_class(resource_type, version).model_validate(data)  # fhir.resources accepts it
    with pytest.raises(InvariantError) as caught:
        to_json_value(model)
    assert caught.value.path == path and caught.value.key == key
    assert str(caught.value).startswith(f"breaks FHIR invariant {key}: ")


@pytest.mark.parametrize(("version", "resource_type", "data", "path", "key"), BROKEN[:-1])
def test_the_kit_agrees_on_each(
    version: str, resource_type: str, data: dict[str, Any], path: str, key: str
) -> None:
    if unavailable_reason(version):
        pytest.skip(str(unavailable_reason(version)))
    report = evaluate({"resourceType": resource_type, **data}, version)
    if key in report.not_evaluated:  # R5's lowBoundary(), Quantity comparison: beyond fhirpathpy
        assert (version, key) in {("R5", "per-1"), ("R4B", "rng-2")}
        return
    assert f"{key} at {resource_type}.{path}" in [f"{f.key} at {f.path}" for f in report.failures]


KEPT = [
    {"start": "2020-05", "end": "2020"},  # unknown at differing precisions, not false
    {"start": "2020", "end": "2020-01-01"},
    {"start": "2020-01-01T10:00:00+02:00", "end": "2020-01-01T09:00:00Z"},  # 08:00Z before 09:00Z
    {"start": "2020-01-01", "end": "2020-01-01T00:00:00Z"},
    {"start": "2020-01-01"},
]


@pytest.mark.parametrize("period", KEPT)
def test_periods_that_may_be_right_are_kept(period: dict[str, str]) -> None:
    model = model_class("Patient", "R4B").model_validate({"address": [{"period": period}]})
    assert to_json_value(model)["address"][0]["period"] == period


def test_an_invariant_error_tells_no_value() -> None:
    mapper = Mapper(table="T", resource_type="Patient", template="patient.json.j2")
    resource = {"resourceType": "Patient", "id": "p1",
                "telecom": [{"value": "813-555-0142"}], "name": [{"family": "Garcia"}]}  # fmt: skip
    with pytest.raises(Exception) as caught:
        validate(mapper, resource)
    error = caught.value
    assert error.path == "Patient.telecom[0]" and error.code == "invalid-resource"  # type: ignore[attr-defined]
    assert "cpt-2" in str(error)
    assert not any(value in str(error) or value in json.dumps(error.to_dict()) for value in ("813", "Garcia"))  # type: ignore[attr-defined]
    assert error.__cause__ is None and error.__context__ is None


# ------------------------------------------------------------------ partial dates, against FHIRPath

years = st.integers(1998, 2002).map(str)
dates = st.one_of(
    years,
    st.tuples(years, st.integers(1, 12)).map(lambda t: f"{t[0]}-{t[1]:02d}"),
    st.tuples(years, st.integers(1, 12), st.integers(1, 28)).map(lambda t: f"{t[0]}-{t[1]:02d}-{t[2]:02d}"),
)


def _low_high(text: str) -> tuple[str, str]:
    """The earliest and latest day a partial date can mean (R5's lowBoundary/highBoundary)."""
    parts = text.split("-")
    low = "-".join(parts + ["01"] * (3 - len(parts)))
    high = "-".join(parts + (["12", "31"] if len(parts) == 1 else ["31"] if len(parts) == 2 else []))
    return low, high


@settings(max_examples=300, deadline=None, database=None)
@given(start=dates, end=dates)
def test_per_1_is_broken_exactly_when_start_is_surely_after_end(start: str, end: str) -> None:
    surely_after = _low_high(start)[0] > _low_high(end)[1]
    assert after(start, end) == surely_after
    if unavailable_reason("R4B") is None:  # FHIRPath's verdict on R4B's start <= end, by fhirpathpy
        report = evaluate(
            {"resourceType": "Patient", "address": [{"period": {"start": start, "end": end}}]}, "R4B"
        )
        flagged = any(f.key == "per-1" for f in report.failures)
        # fhirpathpy reads "2020-05" <= "2020" as false (FHIRPath says unknown): it is stricter at
        # differing precisions, never laxer, and agrees exactly at the same precision.
        assert flagged == surely_after if len(start) == len(end) else flagged or not surely_after


# ------------------------------------------------------------------ the kit's check, on a third-party mapper

OBSERVATION = """\
{"resourceType": "Observation", "id": {{ keys.id }}, "status": "final", "code": {"text": "weight"},
 "valueQuantity": {"value": {{ new.kg }}, "unit": "kg"},
 "dataAbsentReason": {"text": {{ new.why | default(none) }}}}
"""


def _plugin(pytester: pytest.Pytester, samples: str) -> None:
    folder = pytester.mkpydir("obs_plugin")
    (folder / "mapper.json.j2").write_text(OBSERVATION)
    (folder / "__init__.py").write_text(
        "import json\nfrom fhirpipes import Mapper\n"
        'MAPPER = Mapper(table="Weights", resource_type="Observation", template="mapper.json.j2",\n'
        f"                template_package=__name__, samples=json.loads({samples!r}))\n"
    )
    pytester.makepyfile(
        test_obs_plugin=(
            "from fhirpipes.testing import MapperConformanceTests\nfrom obs_plugin import MAPPER\n\n"
            "class TestWeights(MapperConformanceTests):\n    mapper = MAPPER\n    published = False\n"
        )
    )
    pytester.syspathinsert()


def test_the_kit_catches_an_observation_invariant(pytester: pytest.Pytester) -> None:
    if unavailable_reason("R4B"):
        pytest.skip(str(unavailable_reason("R4B")))
    model_class("Observation", "R4B")  # imported outside the inner run (it drops what it imported)
    _plugin(pytester, '[{"id": "w-1", "kg": 71.5, "why": "PHI-canary-Garcia"}]')
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q",
                                "-k", "invariants or samples_map")  # fmt: skip
    # The runtime lets obs-6 through (it checks datatypes only); the kit's FHIRPath check does not.
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*sample 0 breaks FHIR invariants: obs-6 at Observation: dataAbsentReason*"])
    assert "PHI-canary" not in result.stdout.str().split("breaks FHIR invariants", 1)[1].split("\n", 1)[0]


def test_the_kit_passes_the_same_mapper_without_it(pytester: pytest.Pytester) -> None:
    if unavailable_reason("R4B"):
        pytest.skip(str(unavailable_reason("R4B")))
    model_class("Observation", "R4B")
    _plugin(pytester, '[{"id": "w-1", "kg": 71.5}]')
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q", "-k", "invariants"
    )
    result.assert_outcomes(passed=1)
