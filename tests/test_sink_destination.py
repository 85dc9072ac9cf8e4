"""Where refused resources go (`fhirpipes.sink.destination`), the parts that need no queue."""

from __future__ import annotations

import json

from fhirpipes.sink.destination import issues_of


def test_operation_outcome_issues_keep_where_and_drop_text() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "Smith is not allowed",
                "details": {"text": "Smith", "coding": [{"system": "s", "code": "X1", "display": "Smith"}]},
                "expression": ["Patient.name[0].family"],
                "location": ["/f:Patient/f:name[1]"],
            },
            "not an issue",
        ],
    }
    issues = issues_of(outcome)
    assert issues == (
        {
            "severity": "error",
            "code": "invalid",
            "expression": ["Patient.name[0].family"],
            "location": ["/f:Patient/f:name[1]"],
            "details": ["X1"],
        },
    )
    assert "Smith" not in json.dumps(issues)
    assert issues_of({"resourceType": "Patient"}) == ()
