"""The CloudWatch Embedded Metric Format specification's rules, as a checker for emitted lines.

From "Specification: Embedded metric format" (CloudWatch User Guide): the log event is one JSON
object with nothing before or after it; ``_aws`` holds ``Timestamp`` (milliseconds since the
epoch) and ``CloudWatchMetrics``, a list of MetricDirectives (``Namespace``, ``Dimensions``: a
list of DimensionSets of at most 30 keys, ``Metrics``: at most 100 MetricDefinitions with a
``Name`` and an optional ``Unit`` among CloudWatch's units); every dimension key and metric name
a directive refers to is a top-level member (a dimension's value a string CloudWatch accepts:
ASCII, not blank, no control characters, at most 1024; a metric's a number or at most 100 of them).
"""

from __future__ import annotations

import json
import time
from typing import Any

UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_line(line: str, *, now_ms: float | None = None) -> dict[str, Any]:
    """Parse one emitted line (with its newline) and assert it is a valid EMF document; return it."""
    assert line.endswith("\n") and "\n" not in line[:-1], "one line, newline-terminated"
    text = line[:-1]
    assert text == text.strip() and text.startswith("{") and text.endswith("}"), "nothing around the object"
    document = json.loads(text)
    assert isinstance(document, dict)
    metadata = document["_aws"]
    assert set(metadata) == {"Timestamp", "CloudWatchMetrics"}
    timestamp = metadata["Timestamp"]
    assert isinstance(timestamp, int) and not isinstance(timestamp, bool)
    # Milliseconds, not seconds: within a minute of now (EMF takes 2 weeks back, 2 hours ahead).
    assert abs(timestamp - (time.time() * 1000 if now_ms is None else now_ms)) < 60_000
    directives = metadata["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str) and directive["Namespace"].strip()
        assert isinstance(directive["Dimensions"], list)
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list) and len(dimension_set) <= 30
            for key in dimension_set:
                value = document[key]
                assert isinstance(value, str) and value.isascii() and value.strip(), (key, value)
                assert len(value) <= 1024 and all(32 <= ord(c) < 127 for c in value), (key, value)
        metrics = directive["Metrics"]
        assert isinstance(metrics, list) and 1 <= len(metrics) <= 100
        names = [definition["Name"] for definition in metrics]
        assert len(set(names)) == len(names)
        for definition in metrics:
            assert set(definition) <= {"Name", "Unit", "StorageResolution"}
            assert definition.get("Unit", "None") in UNITS
            value = document[definition["Name"]]
            assert _number(value) or (
                isinstance(value, list) and len(value) <= 100 and all(map(_number, value))
            ), (definition["Name"], value)
    return document


def metric_names(document: dict[str, Any]) -> list[str]:
    return [m["Name"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
