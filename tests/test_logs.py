"""Log lines: JSON, and an invocation's keys on every line of it (as Powertools' Logger puts them)."""

from __future__ import annotations

import datetime
import io
import json
import logging
import sys
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


# ---------------------------------------------------------------- text lines for people (a terminal)


class Tty(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def text_line(color: bool = False, **fields: object) -> str:
    record = logging.LogRecord("fhirpipes", logging.WARNING, __file__, 1, "record refused", None, None)
    record.fhirpipes = fields
    return logs.TextFormatter(color=color).format(record)


def test_a_text_line_has_level_message_and_fields_as_key_value() -> None:
    line = text_line(table="Patients", eventID="e-1", line=4, skipped=False, path=None)
    assert (
        line.split(" ", 1)[1] == "WARNING  record refused  table=Patients  eventID=e-1  line=4  skipped=false"
    )
    assert "\x1b[" not in line  # no colour unless asked


def test_a_text_value_that_would_split_is_quoted() -> None:
    line = text_line(message="two words", formula="a=b", quote='say "x"')
    assert 'message="two words"' in line and 'formula="a=b"' in line and r'quote="say \"x\""' in line


def test_a_text_line_is_coloured_by_level_when_asked() -> None:
    line = text_line(color=True, table="Patients")
    assert "\x1b[33mWARNING" in line and "table=\x1b[0mPatients" in line


def test_a_text_line_names_an_exception_by_its_type_only() -> None:
    try:
        raise KeyError("Okafor")  # a record value, in the exception's text
    except KeyError:
        record = logging.LogRecord(
            "fhirpipes", logging.ERROR, __file__, 1, "batch failed", None, sys.exc_info()
        )
    line = logs.TextFormatter().format(record)
    assert line.endswith("batch failed  exception=KeyError") and "Okafor" not in line


@pytest.mark.parametrize(
    ("stream", "no_color", "expected"),
    [
        (io.StringIO, "", "json"),  # not a terminal: JSON, whatever was asked of colour
        (Tty, "", "text+color"),
        (Tty, "1", "text"),  # NO_COLOR: text without colour
    ],
)
def test_auto_writes_text_on_a_terminal_and_json_elsewhere(
    monkeypatch: pytest.MonkeyPatch, stream: type[io.StringIO], no_color: str, expected: str
) -> None:
    from fhirpipes.pipes.cli import logging_to

    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("NO_COLOR", no_color)
    out = stream()
    with logging_to("INFO", out, "auto"):
        logs.logger.warning("record refused", extra={"fhirpipes": {"table": "Patients"}})
    written = out.getvalue()
    if expected == "json":
        assert json.loads(written)["table"] == "Patients"
    else:
        assert "WARNING" in written and "table=" in written and not written.startswith("{")
        assert ("\x1b[" in written) is (expected == "text+color")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_format_asked_is_the_format_written(log_format: str) -> None:
    from fhirpipes.pipes.cli import logging_to

    out = Tty()
    with logging_to("INFO", out, log_format):
        logs.logger.info("batch mapped", extra={"fhirpipes": {"records": 2}})
    assert out.getvalue().startswith("{") is (log_format == "json")


def test_a_text_line_of_a_refused_record_holds_no_value() -> None:
    from fhirpipes.dispatch import Dispatcher
    from fhirpipes.plugins import load_registry
    from fhirpipes.testing import make_record

    out = io.StringIO()
    logs.configure("DEBUG", out, log_format="text")
    try:
        secret = "Zyxwvut-Okafor"
        raw = make_record("Practitioners", {"id": "x-1", "npi": secret})  # not a valid NPI: refused
        outcome = Dispatcher(load_registry(), Settings()).map_record(raw)
    finally:
        logs.configure("INFO")
    assert outcome.error is not None
    written = out.getvalue()
    assert "table=Practitioners" in written and f"code={outcome.error.code}" in written
    assert secret not in written


def test_configure_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="json, text"):
        logs.configure("INFO", io.StringIO(), log_format="yaml")
