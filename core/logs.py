"""Structured JSON logs, one line per record outcome, for CloudWatch Logs Insights.

Only *where* goes into a log line (table, eventID, sequence number, template, line, path,
error code), never a record value: records are PHI. Fields are passed as ``extra={"fhirpipes":
{...}}`` and the formatter writes them as top-level JSON keys.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

LOGGER_NAME = "fhirpipes"
logger = logging.getLogger(LOGGER_NAME)


class JsonFormatter(logging.Formatter):
    """``{"timestamp", "level", "logger", "message", ...fields}`` as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fhirpipes", None)
        if fields:
            line.update((key, value) for key, value in fields.items() if value is not None)
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception text may quote record values.
            line["exception"] = record.exc_info[0].__name__
        return json.dumps(line, default=str)


def configure(level: str, stream: IO[str] | None = None) -> logging.Logger:
    """Give the ``fhirpipes`` logger one JSON handler at ``level`` (idempotent)."""
    for handler in list(logger.handlers):
        if getattr(handler, "_fhirpipes", False):
            logger.removeHandler(handler)
    # stderr: Lambda sends it to CloudWatch Logs like stdout, and the CLI keeps stdout for results.
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._fhirpipes = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    # Lambda's runtime puts its own handler on the root logger: don't write every line twice.
    logger.propagate = False
    return logger
