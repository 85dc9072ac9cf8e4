"""The EMF documents and their writer: the specification's shape, per-table lines, the 100-metric cap."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import pytest
from builders import plugin, raw_mapper
from emf_spec import check_line, metric_names

from fhirpipes import logs, metrics
from fhirpipes.dispatch import Dispatcher
from fhirpipes.metrics import EmfWriter, batch_documents, documents, line_level
from fhirpipes.plugins import load_registry
from fhirpipes.testing.stream import make_record

NOW = 1_796_162_778.906  # 2026-12-01T22:06:18.906Z


def lines_of(tally: dict[tuple[str | None, str], int], seconds: float = 0.0125, **writer: Any) -> list[str]:
    stream = io.StringIO()
    EmfWriter(stream, **writer)(tally, seconds)
    return stream.getvalue().splitlines(keepends=True)


def test_a_batch_gives_exactly_this_document() -> None:
    tally = {("Patients", "mapped"): 397, ("Patients", "failed"): 2, ("Patients", "skipped"): 1}
    (document,) = batch_documents(tally, 0.0125, NOW, {"cold_start": False})
    assert document == {
        "cold_start": False,
        "Table": "Patients",
        "RecordsMapped": 397,
        "RecordsSkipped": 1,
        "RecordsFailed": 2,
        "RecordsDropped": 0,
        "BatchSize": 400,
        "BatchDuration": 12.5,
        "_aws": {
            "Timestamp": 1_796_162_778_906,
            "CloudWatchMetrics": [
                {
                    "Namespace": "fhirpipes",
                    "Dimensions": [["Table"]],
                    "Metrics": [
                        {"Name": "RecordsMapped", "Unit": "Count"},
                        {"Name": "RecordsSkipped", "Unit": "Count"},
                        {"Name": "RecordsFailed", "Unit": "Count"},
                        {"Name": "RecordsDropped", "Unit": "Count"},
                        {"Name": "BatchSize", "Unit": "Count"},
                        {"Name": "BatchDuration", "Unit": "Milliseconds"},
                    ],
                }
            ],
        },
    }


def test_the_written_line_is_a_valid_emf_document_with_the_log_keys() -> None:
    token = logs.bind_invocation("req-7", True)
    try:
        (line,) = lines_of({("Patients", "mapped"): 3})
    finally:
        logs.unbind_invocation(token)
    document = check_line(line)
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == metrics.NAMESPACE
    assert metric_names(document) == [*metrics.RECORD_METRICS, metrics.BATCH_SIZE, metrics.BATCH_DURATION]
    assert (document["function_request_id"], document["cold_start"]) == ("req-7", True)
    assert document["level"] == "INFO" and document["logger"] == "fhirpipes.metrics"
    assert document["timestamp"].endswith("Z") and "T" in document["timestamp"]


def test_each_table_gets_its_own_line_and_dimension_value() -> None:
    tally = {("Patients", "mapped"): 2, ("Practitioners", "failed"): 1, ("Patients", "dropped"): 1}
    by_table = {d["Table"]: d for d in map(check_line, lines_of(tally, seconds=0.002))}
    assert set(by_table) == {"Patients", "Practitioners"}
    patients, practitioners = by_table["Patients"], by_table["Practitioners"]
    assert (patients["RecordsMapped"], patients["RecordsDropped"], patients["BatchSize"]) == (2, 1, 3)
    assert (practitioners["RecordsFailed"], practitioners["RecordsMapped"], practitioners["BatchSize"]) == (
        1,
        0,
        1,
    )
    assert patients["BatchDuration"] == practitioners["BatchDuration"] == 2.0  # the batch's, on each line
    for document in (patients, practitioners):
        assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Table"]]


def test_records_with_no_table_or_an_impossible_one_share_one_dimension_value() -> None:
    tally = {
        (None, "failed"): 2,
        ("bad table\n", "failed"): 1,
        ("é" * 5, "failed"): 1,
        ("x" * 256, "failed"): 1,
    }
    (document,) = map(check_line, lines_of(tally))
    assert (document["Table"], document["RecordsFailed"]) == (metrics.UNKNOWN_TABLE, 5)
    # Real DynamoDB names pass unchanged, at both ends of the allowed length.
    for table in ("abc", "clinic-data.v2", "My_Table-1.x", "t" * 255):
        assert metrics.dimension_table(table) == table


def test_no_line_holds_more_than_100_metrics() -> None:
    values = [(f"M{i}", "Count", float(i)) for i in range(250)]
    docs = documents({"Table": "Patients"}, values, int(NOW * 1000), namespace="fhirpipes")
    assert [len(metric_names(d)) for d in docs] == [100, 100, 50]
    lines = [json.dumps(d) + "\n" for d in docs]
    seen = {}
    for line in lines:
        document = check_line(line, now_ms=NOW * 1000)
        assert document["Table"] == "Patients"
        seen.update((name, document[name]) for name in metric_names(document))
    assert seen == {name: value for name, _, value in values}
    assert documents({"Table": "Patients"}, [], 0) == []


def test_nothing_is_written_for_an_empty_batch() -> None:
    assert lines_of({}) == []


@pytest.mark.parametrize(
    ("lambda_level", "level"),
    [(None, "INFO"), ("", "INFO"), ("TRACE", "INFO"), ("DEBUG", "INFO"), ("INFO", "INFO"),
     ("WARN", "WARN"), ("error", "ERROR"), ("FATAL", "FATAL")],
)  # fmt: skip
def test_the_line_level_is_one_lambdas_log_level_filter_keeps(lambda_level: str | None, level: str) -> None:
    assert line_level(lambda_level) == level
    (line,) = lines_of({("Patients", "mapped"): 1}, level=line_level(lambda_level))
    assert json.loads(line)["level"] == level
    assert lambda_keeps(json.loads(line), lambda_level or "INFO")


LAMBDA_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


def lambda_keeps(line: dict[str, Any], application_level: str) -> bool:
    """Lambda's log-level filtering with the JSON log format, as its documentation describes it:
    a JSON line's ``level`` counts if it is valid and the line has an RFC 3339 ``timestamp``,
    otherwise the line is INFO; lines below the application log level are dropped."""
    import datetime

    level = str(line.get("level", "")).upper()
    try:
        datetime.datetime.fromisoformat(str(line.get("timestamp")).replace("Z", "+00:00"))
    except ValueError:
        level = "INFO"
    if level not in LAMBDA_LEVELS:
        level = "INFO"
    return LAMBDA_LEVELS.index(level) >= LAMBDA_LEVELS.index(application_level.upper())


def test_without_its_level_a_metrics_line_would_be_dropped_at_warn() -> None:
    # What line_level guards against: the filter above drops an INFO line at WARN.
    (line,) = lines_of({("Patients", "mapped"): 1})
    assert not lambda_keeps(json.loads(line), "WARN")
    (line,) = lines_of({("Patients", "mapped"): 1}, level=line_level("WARN"))
    assert lambda_keeps(json.loads(line), "WARN")


class Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("stdout is gone")


def test_a_broken_stdout_does_not_fail_the_batch() -> None:
    stream = io.StringIO()
    logs.configure("INFO", stream)
    try:
        EmfWriter(Broken())({("Patients", "mapped"): 1}, 0.001)
    finally:
        logs.configure("INFO")
    (warning,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert (warning["level"], warning["error"]) == ("WARNING", "OSError")


def test_the_writer_writes_to_whatever_stdout_is_when_the_batch_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    EmfWriter()({("Patients", "mapped"): 1}, 0.001)
    captured = capsys.readouterr()
    assert check_line(captured.out)["RecordsMapped"] == 1
    assert captured.err == ""


def raw_dispatcher(**mapper: Any) -> Dispatcher:
    return Dispatcher(load_registry(modules={"test": plugin(raw_mapper(**mapper))}))


def test_a_failure_that_fails_the_batch_counts_its_record_as_failed() -> None:
    def lookup(record: Any) -> Mapping[str, Any]:
        raise TimeoutError("lookup timed out")  # not the record's fault: the batch fails

    seen: list[tuple[dict[tuple[str | None, str], int], float]] = []
    batch = [make_record("Raw", {"id": "1"}), make_record("Raw", {"id": "2"})]
    with pytest.raises(TimeoutError):
        raw_dispatcher(context=lookup).map_batch(batch, observe=lambda tally, s: seen.append((tally, s)))
    ((tally, seconds),) = seen
    assert tally == {("Raw", "failed"): 1} and seconds > 0


def test_observe_is_optional_and_a_record_with_no_table_counts_under_none() -> None:
    batch = [make_record("Raw", {"id": "1"})]
    assert len(raw_dispatcher().map_batch(batch)) == 1  # the local runner's and the kit's call
    seen: list[dict[tuple[str | None, str], int]] = []
    raw_dispatcher().map_batch([*batch, "not a record"], observe=lambda tally, s: seen.append(tally))
    assert seen == [{("Raw", "mapped"): 1, (None, "failed"): 1}]
