"""Log lines: JSON, and an invocation's keys on every line of it (as Powertools' Logger puts them)."""

from __future__ import annotations

import datetime
import io
import json
import logging
import threading

import pytest

from fhirpipes import logs
from fhirpipes.errors import ConfigurationError
from fhirpipes.settings import Settings


def parsed(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_invocation_keys_are_on_every_line_until_unbound(log_lines: io.StringIO) -> None:
    logs.logger.info("before")
    token = logs.bind_invocation("c6af9ac6-7b61-11e6-9a41-93e812345678", True)
    logs.logger.debug("during", extra={"fhirpipes": {"table": "Patients"}})
    logs.logger.error("also during")
    logs.unbind_invocation(token)
    logs.logger.info("after")
    before, during, also, after = parsed(log_lines)
    for line in (during, also):
        assert line["function_request_id"] == "c6af9ac6-7b61-11e6-9a41-93e812345678"
        assert line["cold_start"] is True
    assert during["table"] == "Patients" and list(during)[:6] == [
        "timestamp", "level", "logger", "message", "function_request_id", "cold_start",
    ]  # fmt: skip
    for line in (before, after):
        assert "function_request_id" not in line and "cold_start" not in line
    assert logs.invocation_keys() == {}


def test_without_a_request_id_the_line_still_says_whether_it_is_a_cold_start(log_lines: io.StringIO) -> None:
    token = logs.bind_invocation(None, False)
    try:
        logs.logger.info("local call")
    finally:
        logs.unbind_invocation(token)
    (line,) = parsed(log_lines)
    assert line["cold_start"] is False and "function_request_id" not in line


def test_an_invocation_in_one_thread_does_not_tag_another_threads_lines(log_lines: io.StringIO) -> None:
    bound, logged = threading.Event(), threading.Event()

    def invocation() -> None:
        token = logs.bind_invocation("req-thread", True)
        bound.set()
        logged.wait(5)
        logs.unbind_invocation(token)

    worker = threading.Thread(target=invocation)
    worker.start()
    bound.wait(5)
    logs.logger.info("main thread")
    logged.set()
    worker.join(5)
    (line,) = parsed(log_lines)
    assert "function_request_id" not in line


def test_the_timestamp_is_rfc3339_utc_to_the_millisecond() -> None:
    for seconds in (0.5, 1_796_162_778.906, 1_796_162_778.0004):
        text = logs.rfc3339(seconds)
        parsed_time = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        assert abs(parsed_time.timestamp() - seconds) < 0.001 and len(text) == 24
    assert logs.rfc3339(1_796_162_778.906) == "2026-12-01T22:06:18.906Z"


@pytest.mark.parametrize(
    ("lambda_level", "level"),
    [("TRACE", "DEBUG"), ("DEBUG", "DEBUG"), ("INFO", "INFO"), ("WARN", "WARNING"), ("ERROR", "ERROR"),
     ("FATAL", "CRITICAL")],
)  # fmt: skip
def test_lambdas_application_log_levels_are_read(lambda_level: str, level: str) -> None:
    # Lambda sets AWS_LAMBDA_LOG_LEVEL with its own names when the log format is JSON.
    assert Settings.from_env({"AWS_LAMBDA_LOG_LEVEL": lambda_level}).log_level == level
    assert logs.configure(Settings.from_env({"AWS_LAMBDA_LOG_LEVEL": lambda_level}).log_level).level == (
        logging.getLevelName(level)
    )
    logs.configure("INFO")


def test_a_bad_log_level_still_fails_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"^FHIRPIPES_LOG_LEVEL must be"):
        Settings.from_env({"FHIRPIPES_LOG_LEVEL": "LOUD"})
