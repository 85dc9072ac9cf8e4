"""Structured JSON logs, one line per record outcome, for CloudWatch Logs Insights.

Only *where* goes into a log line (table, eventID, sequence number, template, line, path,
error code), never a record value: records are PHI. Fields are passed as ``extra={"fhirpipes":
{...}}`` and the formatter writes them as top-level JSON keys.

During a Lambda invocation every line also carries the invocation's keys, as Powertools'
``Logger.inject_lambda_context`` adds them: ``function_request_id`` (the context's
``aws_request_id``) and ``cold_start`` (true on the first invocation of the process only).
The handler binds them with `bind_invocation` and unbinds them when the invocation ends.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar, Token
from typing import IO, Any

LOGGER_NAME = "fhirpipes"
logger = logging.getLogger(LOGGER_NAME)

# A ContextVar rather than state on the formatter (Powertools' ``append_keys``): Lambda runs one
# invocation at a time per process, but a ContextVar stays right if invocations ever share one.
_invocation: ContextVar[dict[str, Any] | None] = ContextVar("fhirpipes_invocation", default=None)


def bind_invocation(request_id: str | None, cold_start: bool) -> Token[dict[str, Any] | None]:
    """Put the invocation's keys on every log line until `unbind_invocation` with the token returned."""
    keys: dict[str, Any] = {"function_request_id": request_id} if request_id else {}
    keys["cold_start"] = cold_start
    return _invocation.set(keys)


def unbind_invocation(token: Token[dict[str, Any] | None]) -> None:
    """End the invocation `bind_invocation` began: later lines carry no invocation keys."""
    _invocation.reset(token)


def invocation_keys() -> dict[str, Any]:
    """The keys of the invocation under way (empty outside one); don't change the dict returned."""
    return _invocation.get() or {}


def rfc3339(seconds: float) -> str:
    """``2024-05-01T12:00:00.123Z``: UTC to the millisecond, as Lambda's JSON log format reads it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """``{"timestamp", "level", "logger", "message", ...invocation keys, ...fields}`` as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        keys = _invocation.get()
        if keys:
            line.update(keys)
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
