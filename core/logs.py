"""Structured JSON logs, one line per record outcome, for CloudWatch Logs Insights.

Only *where* goes into a log line (table, eventID, sequence number, template, line, path,
error code), never a record value: records are PHI. Fields are passed as ``extra={"fhirpipes":
{...}}`` and the formatter writes them as top-level JSON keys.

During a Lambda invocation every line also carries the invocation's keys, as Powertools'
``Logger.inject_lambda_context`` adds them: ``function_request_id`` (the context's
``aws_request_id``) and ``cold_start`` (true on the first invocation of the process only).
The handler binds them with `bind_invocation` and unbinds them when the invocation ends.

On a terminal the command line writes the same lines for people instead (`TextFormatter`: time,
level, message, the fields as ``key=value``, coloured by level); the Lambda always writes JSON.
"""

from __future__ import annotations

import json
import logging
import re
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


LOG_FORMATS = ("json", "text")
"""What `configure` writes: JSON lines (the Lambda, pipes, files) or `TextFormatter`'s (a terminal)."""

# SGR colours by level (the codes every terminal knows; rich is not needed for four colours).
_LEVEL_COLORS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}
_PLAIN_VALUE = re.compile(r"[^\s=\"\\]+")


class TextFormatter(logging.Formatter):
    """``12:00:00.123 WARNING  message  key=value ...`` for people: the JSON line's fields, as logfmt.

    ``color``: the level (and the keys, dimmed) in ANSI colour; the caller decides (a terminal, no
    ``NO_COLOR``). Values with spaces, quotes or ``=`` are JSON-quoted, so a line splits unambiguously.
    """

    def __init__(self, *, color: bool = False) -> None:
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        level = f"{record.levelname:<8}"
        fields: dict[str, Any] = dict(_invocation.get() or {})
        fields.update((k, v) for k, v in (getattr(record, "fhirpipes", None) or {}).items() if v is not None)
        if record.exc_info and record.exc_info[0] is not None:
            fields["exception"] = record.exc_info[0].__name__  # the type only, as in JSON
        pairs = [(key, _logfmt(value)) for key, value in fields.items()]
        if self.color:
            level = f"\x1b[{_LEVEL_COLORS.get(record.levelname, '0')}m{level}\x1b[0m"
            text = "  ".join(f"\x1b[2m{key}=\x1b[0m{value}" for key, value in pairs)
        else:
            text = "  ".join(f"{key}={value}" for key, value in pairs)
        line = f"{when} {level} {record.getMessage()}"
        return f"{line}  {text}" if text else line


def _logfmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if _PLAIN_VALUE.fullmatch(text) else json.dumps(text)


def configure(
    level: str, stream: IO[str] | None = None, *, log_format: str = "json", color: bool = False
) -> logging.Logger:
    """Give the ``fhirpipes`` logger one handler at ``level`` (idempotent).

    ``log_format`` is one of `LOG_FORMATS` (the Lambda's: JSON); ``color`` is `TextFormatter`'s.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
    for handler in list(logger.handlers):
        if getattr(handler, "_fhirpipes", False):
            logger.removeHandler(handler)
    # stderr: Lambda sends it to CloudWatch Logs like stdout, and the CLI keeps stdout for results.
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter(color=color) if log_format == "text" else JsonFormatter())
    handler._fhirpipes = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    # Lambda's runtime puts its own handler on the root logger: don't write every line twice.
    logger.propagate = False
    return logger
