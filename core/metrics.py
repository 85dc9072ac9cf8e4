"""The function's CloudWatch metrics, written in the Embedded Metric Format (EMF) as log lines.

One contract for the emitter and the stack's alarms: the template
(`fhirpipes.deploy.cloudformation`) alarms on these names, and both import them from here, so a
rename can't leave an alarm watching a metric nobody writes.

Per batch, one line per source table in it (a Pipe's batch is one table's: one line), in
namespace `NAMESPACE`, with the single dimension `TABLE_DIMENSION` = the table's name as in the
stream ARN: the four record counts (``Count``, zeros included, so an alarm sees "no failures"
rather than no data), `BATCH_SIZE` (that table's records in the batch) and `BATCH_DURATION`
(the whole batch, ``Milliseconds``). Counts are per invocation: a batch the Pipe retries counts
again. CloudWatch Logs turns the lines into metrics; no API call, no dependency.

The line goes to stdout, where Lambda's EMF integration reads it, as one JSON object with
nothing before or after it (the EMF specification's root node), so it holds in both of Lambda's
log formats: with ``Text`` the runtime prefixes only what goes through the root logger, not
stdout; with ``JSON`` Lambda keeps a line that is already a JSON object as it is. It carries
``timestamp`` (RFC 3339) and a ``level`` that Lambda's log-level filtering lets through (the
application log level if that is above INFO): a JSON line without a valid level or timestamp
counts as INFO, and an application log level of WARN would drop the metrics.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from fhirpipes.logs import invocation_keys, logger, rfc3339

NAMESPACE = "fhirpipes"
TABLE_DIMENSION = "Table"

RECORDS_MAPPED = "RecordsMapped"
"""Records that gave an event (PUT or DELETE)."""
RECORDS_SKIPPED = "RecordsSkipped"
"""Records that gave nothing by design (an unchanged MODIFY, an ignored REMOVE, no matching mapper)."""
RECORDS_FAILED = "RecordsFailed"
"""Records that could not be mapped (an error event, or the batch failed with ``raise``)."""
RECORDS_DROPPED = "RecordsDropped"
"""Failed records left out (``FHIRPIPES_ON_ERROR=drop``)."""

RECORD_METRICS: tuple[str, ...] = (RECORDS_MAPPED, RECORDS_SKIPPED, RECORDS_FAILED, RECORDS_DROPPED)

BATCH_SIZE = "BatchSize"
"""The table's records in the batch (``Count``; chart its average or maximum)."""
BATCH_DURATION = "BatchDuration"
"""How long the function took over the batch, mapping to response (``Milliseconds``)."""

OUTCOME_METRICS: Mapping[str, str] = {
    "mapped": RECORDS_MAPPED,
    "skipped": RECORDS_SKIPPED,
    "failed": RECORDS_FAILED,
    "dropped": RECORDS_DROPPED,
}
"""`fhirpipes.dispatch.Outcome` status -> metric name."""

UNKNOWN_TABLE = "(unknown)"
"""The dimension value for records with no table, or one no DynamoDB table can be named (a
record's ARN is input: this keeps a dimension value CloudWatch accepts, and keeps junk from
making a custom metric per value). Parentheses can't be in a table name: no clash."""

MAX_METRICS_PER_LINE = 100
"""The EMF specification: a MetricDirective holds at most 100 metric definitions."""

# DynamoDB's rule for table names: 3 to 255 of these (checked without a regex: compiling one
# would cost the cold start more than all the rest of this module).
_TABLE_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
_LAMBDA_LEVELS_ABOVE_INFO = ("WARN", "ERROR", "FATAL")


def documents(
    dimensions: Mapping[str, str],
    values: Sequence[tuple[str, str, float]],
    timestamp_ms: int,
    properties: Mapping[str, Any] | None = None,
    namespace: str = NAMESPACE,
) -> list[dict[str, Any]]:
    """EMF documents for ``values`` (name, unit, value) under one dimension set, 100 metrics at most each.

    The dimension values and metric values are top-level members, as the specification wants
    of every name a directive refers to; ``properties`` are further top-level members.
    """
    out = []
    for start in range(0, len(values), MAX_METRICS_PER_LINE):
        chunk = values[start : start + MAX_METRICS_PER_LINE]
        directive = {
            "Namespace": namespace,
            "Dimensions": [list(dimensions)],
            "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in chunk],
        }
        document: dict[str, Any] = {**(properties or {}), **dimensions}
        document.update((name, value) for name, _, value in chunk)
        document["_aws"] = {"Timestamp": timestamp_ms, "CloudWatchMetrics": [directive]}
        out.append(document)
    return out


def dimension_table(table: str | None) -> str:
    """The ``Table`` dimension value for a record's table (`UNKNOWN_TABLE` if it names none)."""
    if table is None or not 3 <= len(table) <= 255 or table.strip(_TABLE_CHARACTERS):
        return UNKNOWN_TABLE  # stripping the allowed characters off both ends leaves any other
    return table


def batch_documents(
    tally: Mapping[tuple[str | None, str], int],
    seconds: float,
    now: float,
    properties: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One batch's documents: per table, the outcome counts, its batch size and the batch's duration.

    ``tally`` counts records by (table, `fhirpipes.dispatch.Outcome` status), as
    `Dispatcher.map_batch` gives it; ``seconds`` is the batch's duration, ``now`` the epoch time.
    """
    tables: dict[str, dict[str, int]] = {}
    for (table, status), count in tally.items():
        counts = tables.setdefault(dimension_table(table), dict.fromkeys(OUTCOME_METRICS, 0))
        counts[status] += count
    duration_ms = round(seconds * 1000, 3)
    timestamp_ms = int(now * 1000)
    out = []
    for table, counts in tables.items():
        values: list[tuple[str, str, float]] = [
            (OUTCOME_METRICS[status], "Count", count) for status, count in counts.items()
        ]
        values.append((BATCH_SIZE, "Count", sum(counts.values())))
        values.append((BATCH_DURATION, "Milliseconds", duration_ms))
        out += documents({TABLE_DIMENSION: table}, values, timestamp_ms, properties)
    return out


def line_level(lambda_log_level: str | None) -> str:
    """The ``level`` of a metrics line: Lambda's application log level (``AWS_LAMBDA_LOG_LEVEL``,
    set with the JSON log format) when it is above INFO, so that its filtering keeps the line."""
    level = (lambda_log_level or "").strip().upper()
    return level if level in _LAMBDA_LEVELS_ABOVE_INFO else "INFO"


class EmfWriter:
    """Writes a batch's metrics as EMF lines: the ``observe`` callback of `Dispatcher.map_batch`."""

    def __init__(self, stream: IO[str] | None = None, level: str = "INFO") -> None:
        self.stream = stream
        self.level = level

    def __call__(self, tally: Mapping[tuple[str | None, str], int], seconds: float) -> None:
        now = time.time()
        properties = {
            "timestamp": rfc3339(now),
            "level": self.level,
            "logger": f"{logger.name}.metrics",
            "message": "batch metrics",
            **invocation_keys(),
        }
        text = "".join(
            json.dumps(document, separators=(",", ":")) + "\n"
            for document in batch_documents(tally, seconds, now, properties)
        )
        if not text:
            return
        stream = self.stream or sys.stdout  # looked up per batch: whatever stdout is now
        try:
            stream.write(text)  # one write: the lines stay whole
            stream.flush()
        except (OSError, ValueError) as exc:  # a closed or broken stdout must not fail the batch
            logger.warning(
                "the batch's metrics could not be written", extra={"fhirpipes": {"error": type(exc).__name__}}
            )
