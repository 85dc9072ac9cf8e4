"""The Lambda handler as Lambda runs it: request id and cold start on every line, EMF metrics, no PHI.

Each test imports a fresh copy of ``fhirpipes.handler`` (as a new execution environment does,
settings read at that import) without touching the module other tests import.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from emf_spec import check_line, metric_names

from fhirpipes import Mapper, logs, metrics
from fhirpipes.deploy.cloudformation import build_template
from fhirpipes.errors import ConfigurationError, RecordError
from fhirpipes.plugins import load_registry
from fhirpipes.testing.stream import make_record

ENVIRONMENT = (
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_LOG_LEVEL", "AWS_LAMBDA_LOG_FORMAT", "FHIRPIPES_METRICS",
    "FHIRPIPES_ON_ERROR", "FHIRPIPES_LOG_LEVEL", "FHIRPIPES_PLUGINS",
)  # fmt: skip


def context(request_id: str) -> SimpleNamespace:
    """The attributes of Lambda's context object that matter here."""
    return SimpleNamespace(
        aws_request_id=request_id,
        function_name="fhirpipes-enrichment",
        memory_limit_in_mb=512,
        invoked_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:fhirpipes-enrichment",
    )


class Run:
    """A fresh handler module, its log lines (DEBUG, all of them) and what it wrote to stdout."""

    def __init__(self, module: ModuleType, logs_stream: io.StringIO, capsys: pytest.CaptureFixture[str]):
        self.module, self._logs, self._capsys = module, logs_stream, capsys

    def __call__(self, batch: Any, request_id: str) -> tuple[Any, list[dict[str, Any]], list[str]]:
        """Invoke; return the result (or the exception raised), the log lines and the stdout lines."""
        self._logs.seek(0)
        self._logs.truncate()
        self._capsys.readouterr()
        try:
            result: Any = self.module.handler(batch, context(request_id))
        except Exception as exc:
            result = exc
        lines = [json.loads(line) for line in self._logs.getvalue().splitlines()]
        return result, lines, self._capsys.readouterr().out.splitlines(keepends=True)


@pytest.fixture
def fresh(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., Run]]:
    def load(**environ: str) -> Run:
        for name in ENVIRONMENT:
            monkeypatch.delenv(name, raising=False)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        spec = importlib.util.find_spec("fhirpipes.handler")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # the cold start: settings, logging, registry
        stream = io.StringIO()
        logs.configure("DEBUG", stream)
        return Run(module, stream, capsys)

    yield load
    logs.configure("INFO")


IN_LAMBDA = {"AWS_LAMBDA_FUNCTION_NAME": "fhirpipes-enrichment"}


def mixed_batch() -> list[dict[str, Any]]:
    return [
        make_record("Patients", {"id": "p1", "lastName": "Doe"}, event_id="ok"),
        make_record("Patients", {"id": "p2", "birthDate": "31/12/1990"}, event_id="bad-date"),
        make_record("Practitioners", {"id": "d1", "npi": "1234567893"}, event_id="doctor"),
        make_record("Nowhere", {"id": "n1"}, event_id="no-mapper"),
    ]


def test_every_line_of_an_invocation_carries_its_request_id_and_cold_start(fresh: Callable[..., Run]) -> None:
    run = fresh(**IN_LAMBDA)
    for request_id, cold in (("req-1", True), ("req-2", False), ("req-3", False)):
        events, lines, out = run(mixed_batch(), request_id)
        assert [e["details"]["command"] for e in events] == ["PUT", "ERROR", "PUT", "ERROR"]
        assert len(lines) == 5  # DEBUG: one per record, and the batch's
        documents = [check_line(line) for line in out]
        assert {d["Table"] for d in documents} == {"Patients", "Practitioners", "Nowhere"}
        for line in [*lines, *documents]:
            assert (line["function_request_id"], line["cold_start"]) == (request_id, cold), line
    assert logs.invocation_keys() == {}  # nothing leaks past the invocation


def test_the_batch_metrics_count_what_became_of_each_record(fresh: Callable[..., Run]) -> None:
    run = fresh(**IN_LAMBDA)
    batch = [*mixed_batch(), make_record("Patients", {"id": "p3"}, event_id="del", event_name="REMOVE")]
    _, lines, out = run(batch, "req-1")
    by_table = {d["Table"]: d for d in map(check_line, out)}
    patients = by_table["Patients"]
    assert [patients[name] for name in metrics.RECORD_METRICS] == [2, 0, 1, 0]  # PUT + DELETE, 1 failed
    assert (patients["BatchSize"], by_table["Practitioners"]["RecordsMapped"]) == (3, 1)
    assert by_table["Nowhere"]["RecordsFailed"] == 1
    assert 0 < patients["BatchDuration"] == by_table["Nowhere"]["BatchDuration"] < 60_000
    (summary,) = [line for line in lines if line["message"] == "batch mapped"]
    assert sum(d["BatchSize"] for d in by_table.values()) == summary["records"] == 5


def test_a_batch_failed_with_raise_still_counts_its_failed_record(fresh: Callable[..., Run]) -> None:
    run = fresh(**IN_LAMBDA, FHIRPIPES_ON_ERROR="raise")
    result, lines, out = run(mixed_batch(), "req-raise")
    assert isinstance(result, RecordError)
    (document,) = map(check_line, out)
    assert (document["Table"], document["RecordsMapped"], document["RecordsFailed"]) == ("Patients", 1, 1)
    assert all(line["function_request_id"] == "req-raise" for line in lines)
    assert logs.invocation_keys() == {}


def test_drop_counts_dropped_not_failed(fresh: Callable[..., Run]) -> None:
    run = fresh(**IN_LAMBDA, FHIRPIPES_ON_ERROR="drop")
    events, _, out = run(mixed_batch()[:2], "req-drop")
    assert len(events) == 1
    (document,) = map(check_line, out)
    assert (document["RecordsDropped"], document["RecordsFailed"]) == (1, 0)


@pytest.mark.parametrize(
    ("environ", "emitted"),
    [
        ({}, False),  # outside Lambda stdout is someone's output: off unless asked
        ({"FHIRPIPES_METRICS": "on"}, True),
        (IN_LAMBDA, True),
        ({**IN_LAMBDA, "FHIRPIPES_METRICS": "off"}, False),
        ({**IN_LAMBDA, "FHIRPIPES_METRICS": " OFF "}, False),
        ({**IN_LAMBDA, "FHIRPIPES_METRICS": "false"}, False),
    ],
)
def test_one_switch_turns_the_metrics_off(
    fresh: Callable[..., Run], environ: dict[str, str], emitted: bool
) -> None:
    events, lines, out = fresh(**environ)(mixed_batch(), "req-1")
    assert len(events) == 4 and lines
    assert bool(out) is emitted


def test_a_bad_switch_fails_the_cold_start_naming_it(fresh: Callable[..., Run]) -> None:
    with pytest.raises(ConfigurationError, match=r"^FHIRPIPES_METRICS must be on or off$"):
        fresh(**IN_LAMBDA, FHIRPIPES_METRICS="sometimes")


SECRETS = [f"PHI-CANARY-{n}-Qx" for n in range(14)]


def poison_batch() -> list[Any]:
    s = SECRETS
    return [
        make_record("Patients", {"id": s[0], "lastName": s[1], "birthDate": s[2]}),  # conversion error
        make_record("Patients", {"id": s[3], "gender": s[4], "firstName": s[5]}),  # code map error
        make_record("Practitioners", {"id": s[6], "npi": s[7], "gender": s[8]}),
        make_record("Nowhere", {"id": s[9], "note": s[10]}),  # unknown table
        {**make_record("Patients", {"id": s[11]}), "eventName": s[12]},  # malformed record
        make_record("Patients", {"id": s[13], "mrn": {"N": "x"}}),  # nested value of the wrong type
    ]


@pytest.mark.parametrize("on_error", ["emit", "drop", "raise"])
def test_no_record_value_reaches_a_log_line_or_a_metrics_line(
    fresh: Callable[..., Run], on_error: str
) -> None:
    run = fresh(**IN_LAMBDA, FHIRPIPES_ON_ERROR=on_error)
    result, lines, out = run(poison_batch(), "req-phi")
    if on_error == "emit":
        assert [e["details"]["command"] for e in result] == ["ERROR"] * 6
        assert all(secret in json.dumps(result) for secret in SECRETS)  # they did reach the handler
    told = json.dumps(lines) + "".join(out)
    if isinstance(result, Exception):
        told += str(result) + repr(result) + repr(result.__cause__) + repr(result.__context__)
    assert out and lines
    for secret in SECRETS:
        assert secret not in told
    assert "PHI-CANARY" not in told and "Qx" not in told


# --- the stack's alarm watches what the handler emits ---------------------------------------------


def test_the_failed_records_alarm_matches_the_emitted_metric_exactly(fresh: Callable[..., Run]) -> None:
    mappers = [
        *load_registry().mappers,
        Mapper(table="clinic-data.v2", resource_type="Patient", template="patient.json.j2"),
    ]
    template = build_template(mappers)
    alarms = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] != "AWS/SQS"
    ]
    assert len(alarms) == len({m.table for m in mappers}) == 3
    # One poison record per table (clinic-data.v2 has no mapper in the handler: UnknownTableError).
    batch = [make_record(m.table, {"id": "x", "birthDate": "31/12/1990"}) for m in mappers]
    _, _, out = fresh(**IN_LAMBDA)(batch, "req-alarm")
    documents = {d["Table"]: d for d in map(check_line, out)}
    for alarm in alarms:
        names = [dimension["Name"] for dimension in alarm["Dimensions"]]
        (value,) = {dimension["Value"] for dimension in alarm["Dimensions"]}
        document = documents[value]  # the line whose dimension values are the alarm's
        matching = [
            directive
            for directive in document["_aws"]["CloudWatchMetrics"]
            if directive["Namespace"] == alarm["Namespace"]
            and names in directive["Dimensions"]  # the alarm's dimensions are one set, exactly
            and alarm["MetricName"] in [m["Name"] for m in directive["Metrics"]]
        ]
        assert matching, (alarm, document)
        assert all(
            document[name] == dim["Value"] for name, dim in zip(names, alarm["Dimensions"], strict=True)
        )
        unit = next(m.get("Unit") for m in matching[0]["Metrics"] if m["Name"] == alarm["MetricName"])
        assert alarm.get("Unit", unit) == unit == "Count"
        # Sum over the period of what one failed batch emits breaches the alarm's threshold.
        assert alarm["Statistic"] == "Sum" and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert document[alarm["MetricName"]] == 1 > alarm["Threshold"]
        assert alarm["Period"] % 60 == 0  # standard-resolution metrics: whole minutes
    assert metrics.RECORDS_FAILED in metric_names(documents["Patients"])


# --- a real process, as Lambda runs it --------------------------------------------------------------

LAMBDA_PROCESS = """
import json, sys
from types import SimpleNamespace
from fhirpipes.testing.stream import make_record
import fhirpipes.handler as module  # the cold start
batch = [make_record("Patients", {"id": "p1", "lastName": "Doe"}),
         make_record("Patients", {"id": "p2", "birthDate": "31/12/1990"})]
for n in range(3):
    module.handler(batch, SimpleNamespace(aws_request_id=f"req-{n}"))
    sys.stdout.flush(); sys.stderr.flush()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "log_format",
    [
        {},  # Text: no advanced logging controls
        {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "WARN"},  # JSON, filtered at WARN
    ],
)
def test_cold_start_is_true_on_the_first_invocation_of_the_process_only(log_format: dict[str, str]) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    environ.update(IN_LAMBDA, **log_format)
    done = subprocess.run(
        [sys.executable, "-c", LAMBDA_PROCESS],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
        timeout=120,
    )
    documents = [check_line(line) for line in done.stdout.splitlines(keepends=True)]
    assert [(d["function_request_id"], d["cold_start"]) for d in documents] == [
        ("req-0", True), ("req-1", False), ("req-2", False),
    ]  # fmt: skip
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines and all(line["cold_start"] is (line["function_request_id"] == "req-0") for line in lines)
    if log_format:
        # Lambda's WARN is Python's WARNING: the cold start reads it; only WARNING and above log;
        # the metrics lines say WARN, so Lambda's filter keeps them.
        assert {line["level"] for line in lines} == {"ERROR"}
        assert {d["level"] for d in documents} == {"WARN"}
    else:
        assert {line["level"] for line in lines} == {"ERROR", "INFO"}
        assert {d["level"] for d in documents} == {"INFO"}
    assert all(d["RecordsFailed"] == 1 and d["RecordsMapped"] == 1 for d in documents)
