"""Targets of the local Pipe: batch limits, retries, partial failures, refusals, never a silent drop."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from fhirpipes.errors import ConfigurationError
from fhirpipes.pipes.targets import (
    CLOUDWATCH_MAX_BYTES,
    CLOUDWATCH_MAX_EVENTS,
    SQS_MAX_BYTES,
    CloudWatchLogsTarget,
    DeliveryError,
    FileTarget,
    SqsTarget,
    StreamTarget,
    Target,
    deliver,
    parse_target,
    to_message,
)

SECRET = "Jane-Doe-1970"  # stands for a record value: must never reach an error message


class ClientError(Exception):
    """Shaped like botocore's ClientError (a ``response`` with an error code)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"An error occurred ({code}) with {SECRET}")
        self.response = {"Error": {"Code": code}}


class _Exceptions:
    class ResourceAlreadyExistsException(Exception):
        pass

    class QueueDoesNotExist(Exception):
        pass


class FakeLogs:
    exceptions = _Exceptions

    def __init__(self, fail_times: int = 0) -> None:
        self.fail_times = fail_times
        self.calls: list[list[dict[str, Any]]] = []
        self.groups: set[str] = set()
        self.streams: set[tuple[str, str]] = set()

    def create_log_group(self, logGroupName: str) -> None:
        if logGroupName in self.groups:
            raise self.exceptions.ResourceAlreadyExistsException()
        self.groups.add(logGroupName)

    def create_log_stream(self, logGroupName: str, logStreamName: str) -> None:
        if (logGroupName, logStreamName) in self.streams:
            raise self.exceptions.ResourceAlreadyExistsException()
        self.streams.add((logGroupName, logStreamName))

    def put_log_events(
        self, logGroupName: str, logStreamName: str, logEvents: list[dict[str, Any]]
    ) -> dict[str, Any]:
        assert (logGroupName, logStreamName) in self.streams
        if self.fail_times:
            self.fail_times -= 1
            raise ClientError("ServiceUnavailableException")
        self.calls.append(logEvents)
        return {"nextSequenceToken": "x"}


class FakeSqs:
    exceptions = _Exceptions

    def __init__(self, reject: dict[int, bool] | None = None) -> None:
        # reject: index within the first call -> SenderFault
        self.reject = dict(reject or {})
        self.calls: list[list[dict[str, Any]]] = []
        self.delivered: list[str] = []
        self.queues: dict[str, str] = {}

    def get_queue_url(self, QueueName: str) -> dict[str, str]:
        if QueueName not in self.queues:
            raise self.exceptions.QueueDoesNotExist()
        return {"QueueUrl": self.queues[QueueName]}

    def create_queue(self, QueueName: str, Attributes: dict[str, str]) -> dict[str, str]:
        self.queues[QueueName] = f"https://sqs.example/{QueueName}"
        return {"QueueUrl": self.queues[QueueName]}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        failed = []
        for entry in Entries:
            index = int(entry["Id"])
            if len(self.calls) == 1 and index in self.reject:
                failed.append({"Id": entry["Id"], "Code": "Boom", "SenderFault": self.reject[index]})
            else:
                self.delivered.append(entry["MessageBody"])
        return {"Successful": [], "Failed": failed}


def no_sleep(seconds: float) -> None:
    pass


class LongestWait:
    """A jitter source that always picks the longest wait (so the backoff's ceilings show)."""

    def uniform(self, low: float, high: float) -> float:
        return high


def test_to_message_is_one_json_line_and_strings_pass_as_they_are() -> None:
    assert to_message({"a": "é\nb"}) == '{"a":"é\\nb"}'
    assert to_message("plain text") == "plain text"


def test_cloudwatch_chunks_respect_the_event_count_limit() -> None:
    target = CloudWatchLogsTarget(FakeLogs(), "g")
    chunks = list(target.chunks(["x"] * (CLOUDWATCH_MAX_EVENTS + 5)))
    assert [len(chunk) for chunk in chunks] == [CLOUDWATCH_MAX_EVENTS, 5]


def test_cloudwatch_chunks_respect_the_byte_limit_with_the_per_event_overhead() -> None:
    target = CloudWatchLogsTarget(FakeLogs(), "g")
    message = "x" * (100_000 - 26)  # exactly 100,000 bytes counted per event
    chunks = list(target.chunks([message] * 25))
    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    for chunk in chunks:
        assert sum(len(m) + 26 for m in chunk) <= CLOUDWATCH_MAX_BYTES


def test_cloudwatch_refuses_an_event_over_its_size_limit_and_sends_the_others() -> None:
    logs = FakeLogs()
    target = CloudWatchLogsTarget(logs, "g")
    delivery = deliver(target, ["small", SECRET * 30_000, "after"], sleep=no_sleep)
    assert delivery.delivered == 2
    [(index, reason)] = delivery.refused
    assert index == 1
    assert reason == "the message is 390000 bytes, over the CloudWatch Logs limit of 262118 per message"
    assert [e["message"] for call in logs.calls for e in call] == ["small", "after"]


def test_cloudwatch_creates_the_group_and_stream_once_and_sends_every_event() -> None:
    logs = FakeLogs()
    logs.groups.add("g")  # the group exists already, the stream doesn't
    target = CloudWatchLogsTarget(logs, "g", "s")
    assert deliver(target, [{"n": 1}, {"n": 2}], sleep=no_sleep).delivered == 2
    assert deliver(target, [{"n": 3}], sleep=no_sleep).delivered == 1
    assert logs.streams == {("g", "s")}
    assert [json.loads(e["message"])["n"] for call in logs.calls for e in call] == [1, 2, 3]


def test_a_failed_delivery_is_retried_with_backoff() -> None:
    logs = FakeLogs(fail_times=1)
    sleeps: list[float] = []
    delivery = deliver(
        CloudWatchLogsTarget(logs, "g"), [{"n": 1}], sleep=sleeps.append, backoff=0.5, rng=LongestWait()
    )
    assert delivery.delivered == 1
    assert sleeps == [0.5]
    assert len(logs.calls) == 1


def test_retries_exhausted_raise_and_name_no_value(caplog: pytest.LogCaptureFixture) -> None:
    logs = FakeLogs(fail_times=10)
    sleeps: list[float] = []
    with pytest.raises(DeliveryError) as raised:
        deliver(
            CloudWatchLogsTarget(logs, "g"),
            [{"name": SECRET}],
            attempts=3,
            sleep=sleeps.append,
            backoff=1,
            rng=LongestWait(),
        )
    assert sleeps == [1, 2]
    assert "ServiceUnavailableException" in str(raised.value)
    assert "after 3 attempts" in str(raised.value)
    assert SECRET not in str(raised.value)
    assert SECRET not in caplog.text
    assert logs.calls == []


def test_sqs_chunks_respect_ten_messages_and_256_kb() -> None:
    target = SqsTarget(FakeSqs(), "https://sqs.example/q")
    assert [len(c) for c in target.chunks(["m"] * 23)] == [10, 10, 3]
    big = "x" * 100_000
    chunks = list(target.chunks([big] * 5))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert all(sum(len(m) for m in c) <= SQS_MAX_BYTES for c in chunks)
    assert target.refuse("y" * SQS_MAX_BYTES) is None
    assert target.refuse("y" * (SQS_MAX_BYTES + 1)) == (
        f"the message is {SQS_MAX_BYTES + 1} bytes, over the SQS limit of {SQS_MAX_BYTES} per message"
    )


def test_sqs_retries_only_the_entries_that_failed() -> None:
    sqs = FakeSqs(reject={1: False})  # a server-side failure of entry 1 in the first call
    sqs.queues["q"] = "https://sqs.example/q"
    sleeps: list[float] = []
    assert deliver(SqsTarget(sqs, "q"), [{"n": n} for n in range(3)], sleep=sleeps.append).delivered == 3
    assert sorted(json.loads(m)["n"] for m in sqs.delivered) == [0, 1, 2]
    assert [len(call) for call in sqs.calls] == [3, 1]
    assert len(sleeps) == 1


def test_sqs_sender_fault_is_not_retried_and_is_refused_not_silent() -> None:
    sqs = FakeSqs(reject={0: True})
    delivery = deliver(SqsTarget(sqs, "https://sqs.example/q"), [{"n": SECRET}, {"n": 2}], sleep=no_sleep)
    assert len(sqs.calls) == 1
    assert delivery.delivered == 1
    assert delivery.refused == ((0, "SQS refused the message (Boom)"),)


def test_sqs_fifo_queues_get_a_group_and_a_deduplication_id_from_the_event_id() -> None:
    sqs = FakeSqs()
    event = {"source": "PatientTable", "eventType": "PatientChange", "eventID": "e1", "at": "10:00"}
    again = {**event, "at": "10:05"}  # the same event read again after a restart, stamped anew
    other = {**event, "eventType": "PractitionerChange"}  # another mapper of the same record
    deliver(SqsTarget(sqs, "https://sqs.example/q.fifo"), [event, again, other, {"n": 1}], sleep=no_sleep)
    entries = sqs.calls[0]
    assert {entry["MessageGroupId"] for entry in entries} == {"fhirpipes"}
    ids = [entry["MessageDeduplicationId"] for entry in entries]
    assert ids[0] == ids[1]
    assert len(set(ids)) == 3 and all(len(i) == 64 for i in ids)


def test_sqs_missing_queue_is_an_error_unless_asked_to_create_it() -> None:
    with pytest.raises(DeliveryError, match="no such queue"):
        deliver(SqsTarget(FakeSqs(), "missing"), [{"n": 1}], sleep=no_sleep)
    sqs = FakeSqs()
    deliver(SqsTarget(sqs, "made", create=True), [{"n": 1}], sleep=no_sleep)
    assert sqs.queues == {"made": "https://sqs.example/made"}


def test_file_target_appends_json_lines(tmp_path: Any) -> None:
    path = tmp_path / "out" / "events.jsonl"
    target = FileTarget(path)
    deliver(target, [{"n": 1}, {"n": 2}])
    deliver(target, [{"n": 3}])
    target.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_stream_target_writes_json_lines() -> None:
    out = io.StringIO()
    assert deliver(StreamTarget(out), [{"n": 1}, "text"]).delivered == 2
    assert out.getvalue() == '{"n":1}\ntext\n'


def test_nothing_to_deliver_calls_nothing() -> None:
    class Exploding(Target):
        def send(self, chunk: list[str]) -> dict[int, str | None]:
            raise AssertionError("called")

    assert deliver(Exploding(), []).delivered == 0


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ("stdout", StreamTarget, "stdout"),
        ("file:out/x.jsonl", FileTarget, "file:out/x.jsonl"),
        ("cloudwatch:/aws/pipes/patients", CloudWatchLogsTarget, "cloudwatch:/aws/pipes/patients:fhirpipes"),
        (
            "cloudwatch:/aws/pipes/patients:events",
            CloudWatchLogsTarget,
            "cloudwatch:/aws/pipes/patients:events",
        ),
        (
            "sqs:https://sqs.us-east-1.amazonaws.com/1/q",
            SqsTarget,
            "sqs:https://sqs.us-east-1.amazonaws.com/1/q",
        ),
    ],
)
def test_parse_target(spec: str, kind: type, name: str) -> None:
    from fhirpipes.pipes.aws import AwsConfig

    target = parse_target(spec, AwsConfig.embedded("http://127.0.0.1:1"))
    assert isinstance(target, kind)
    assert target.name == name


@pytest.mark.parametrize("spec", ["kafka:x", "file:", "cloudwatch:", "nothing"])
def test_parse_target_refuses_unknown_specs(spec: str) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown target|name a log group"):
        parse_target(spec)


# --- against the embedded server ---------------------------------------------------------------


@pytest.mark.slow
def test_cloudwatch_and_sqs_targets_on_the_embedded_server(embedded: Any) -> None:
    aws = embedded.config
    cloudwatch = parse_target("cloudwatch:/fhirpipes/test-targets:run1", aws)
    events = [{"n": n} for n in range(12)]
    assert deliver(cloudwatch, events).delivered == 12
    logs = aws.client("logs")
    got = logs.get_log_events(
        logGroupName="/fhirpipes/test-targets", logStreamName="run1", startFromHead=True
    )
    assert [json.loads(e["message"]) for e in got["events"]] == events

    sqs_target = parse_target("sqs:target-test", aws, create_missing=True)
    assert deliver(sqs_target, events).delivered == 12
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName="target-test")["QueueUrl"]
    received: list[Any] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            break
        received.extend(json.loads(m["Body"]) for m in batch)
    assert sorted(r["n"] for r in received) == list(range(12))


# --- transient and permanent failures, with botocore's own exception classes -------------------


def botocore_failures() -> list[Exception]:
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    def client_error(code: str, status: int) -> ClientError:
        response: Any = {
            "Error": {"Code": code, "Message": f"refused {SECRET}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return ClientError(response, "PutLogEvents")

    return [
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ConnectionResetError(104, "Connection reset by peer"),
        client_error("ThrottlingException", 400),
        client_error("ServiceUnavailableException", 503),
        client_error("SomethingNew", 500),
        client_error("TooManyRequests", 429),
    ]


class FailingLogs(FakeLogs):
    """PutLogEvents raises each of ``failures`` in turn, then works."""

    def __init__(self, failures: list[Exception]) -> None:
        super().__init__()
        self.failures = list(failures)

    def put_log_events(
        self, logGroupName: str, logStreamName: str, logEvents: list[dict[str, Any]]
    ) -> dict[str, Any]:
        if self.failures:
            raise self.failures.pop(0)
        return super().put_log_events(logGroupName, logStreamName, logEvents)


def test_every_transient_failure_is_retried_with_jittered_backoff(caplog: pytest.LogCaptureFixture) -> None:
    import random

    failures = botocore_failures()
    logs = FailingLogs(failures)
    sleeps: list[float] = []
    delivery = deliver(
        CloudWatchLogsTarget(logs, "g"),
        [{"name": SECRET}],
        attempts=len(failures) + 1,
        backoff=0.5,
        sleep=sleeps.append,
        rng=random.Random(7),
    )
    assert delivery.delivered == 1 and len(logs.calls) == 1
    assert len(sleeps) == len(failures)
    ceilings = [min(20.0, 0.5 * 2**n) for n in range(len(failures))]
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(sleeps, ceilings, strict=True))
    assert len(set(sleeps)) == len(sleeps)  # jittered: no two retries wait alike
    logged = [record.fhirpipes["error"] for record in caplog.records]  # type: ignore[attr-defined]
    assert logged[0] == "ConnectionClosedError"
    assert "ClientError (ThrottlingException)" in logged and "ConnectionResetError (ECONNRESET)" in logged
    assert SECRET not in caplog.text and all(SECRET not in str(r.__dict__) for r in caplog.records)


def test_retries_run_out_in_one_line_with_no_value_and_no_cause() -> None:
    from botocore.exceptions import ConnectionClosedError

    logs = FailingLogs([ConnectionClosedError(endpoint_url="http://127.0.0.1:1")] * 5)
    with pytest.raises(DeliveryError) as raised:
        deliver(CloudWatchLogsTarget(logs, "g", "s"), [{"n": 1}], sleep=no_sleep)
    assert str(raised.value) == (
        "cloudwatch:g:s: delivery failed after 5 attempts (ConnectionClosedError); "
        "the batch is not checkpointed and will be read again"
    )
    assert "\n" not in str(raised.value)


def test_a_permanent_client_error_is_not_retried_and_does_not_quote_the_service() -> None:
    from botocore.exceptions import ClientError

    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": f"no access to {SECRET}"}}, "PutLogEvents"
    )
    logs = FailingLogs([denied])
    sleeps: list[float] = []
    with pytest.raises(DeliveryError) as raised:
        deliver(CloudWatchLogsTarget(logs, "g", "s"), [{"n": 1}], sleep=sleeps.append)
    assert sleeps == []
    assert "ClientError (AccessDeniedException)" in str(raised.value)
    assert "retrying can't fix" in str(raised.value)
    chain: BaseException | None = raised.value
    while chain is not None:  # no cause or context carries the service's message
        assert SECRET not in str(chain)
        chain = chain.__cause__ or chain.__context__ if not chain.__suppress_context__ else chain.__cause__


def test_throttling_from_a_real_boto3_client_is_retried() -> None:
    from botocore.stub import Stubber

    from fhirpipes.pipes.aws import AwsConfig

    client = AwsConfig.embedded("http://127.0.0.1:1").client("logs")
    target = CloudWatchLogsTarget(client, "g", "s", create=False)
    with Stubber(client) as stub:
        stub.add_client_error("put_log_events", "ThrottlingException", http_status_code=400)
        stub.add_client_error("put_log_events", "InternalFailure", http_status_code=500)
        stub.add_response("put_log_events", {"nextSequenceToken": "1"})
        sleeps: list[float] = []
        assert deliver(target, [{"n": 1}], sleep=sleeps.append).delivered == 1
        stub.assert_no_pending_responses()
    assert len(sleeps) == 2


def test_rejected_log_events_are_refused_by_index() -> None:
    class Rejecting(FakeLogs):
        def put_log_events(self, **kwargs: Any) -> dict[str, Any]:
            super().put_log_events(**kwargs)
            return {"rejectedLogEventsInfo": {"tooOldLogEventEndIndex": 0, "tooNewLogEventStartIndex": 2}}

    delivery = deliver(CloudWatchLogsTarget(Rejecting(), "g"), ["a", "b", "c"], sleep=no_sleep)
    assert delivery.delivered == 1
    assert [index for index, _ in delivery.refused] == [0, 2]
    assert "too new" in delivery.refused[1][1]


def test_a_file_target_that_is_a_directory_fails_at_once(tmp_path: Path) -> None:
    sleeps: list[float] = []
    target = FileTarget(tmp_path / "later")
    (tmp_path / "later").mkdir()  # after the checks: found at the first write
    with pytest.raises(DeliveryError, match=r"IsADirectoryError \(EISDIR\), which retrying can't fix"):
        deliver(target, [{"n": 1}], sleep=sleeps.append)
    assert sleeps == []


def test_the_backoff_is_capped() -> None:
    from fhirpipes.pipes.retry import Backoff

    backoff = Backoff(0.5, cap=4)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]


# --- checked before anything starts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus", "unknown target 'bogus'"),
        ("cloudwatch:bad group!", "a log group name is"),
        ("cloudwatch:g:bad:stream", "a log stream name is"),
        ("sqs:no spaces", "a queue name is"),
    ],
)
def test_parse_target_checks_names_without_a_client(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_target(spec)


def test_parse_target_checks_a_file_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is a directory"):
        parse_target(f"file:{tmp_path}")
    (tmp_path / "plain").write_text("")
    with pytest.raises(ConfigurationError, match="is not a directory"):
        parse_target(f"file:{tmp_path}/plain/events.jsonl")
    target = parse_target(f"file:{tmp_path}/new/events.jsonl")
    assert isinstance(target, FileTarget)
    assert not (tmp_path / "new").exists()  # checked, not created


# --- the append-only file and its recovery ------------------------------------------------------


def test_recovery_cuts_what_was_written_after_the_saved_length(tmp_path: Path) -> None:
    from fhirpipes.pipes.appendfile import AppendFile

    path = tmp_path / "out.jsonl"
    first = AppendFile(path)
    first.recover(None)
    first.append(b'{"n":1}\n')
    saved = first.state()
    first.append(b'{"n":2}\n{"n":3')  # a batch never checkpointed, ending in a torn line
    first.close()
    again = AppendFile(path)
    again.recover(saved)
    again.close()
    assert path.read_bytes() == b'{"n":1}\n'


def test_recovery_refuses_a_file_changed_outside_the_run(tmp_path: Path) -> None:
    from fhirpipes.pipes.appendfile import AppendFile

    path = tmp_path / "out.jsonl"
    file = AppendFile(path)
    file.append(b'{"n":1}\n{"n":2}\n')
    saved = file.state()
    file.close()
    path.write_bytes(b'{"n":1}\n')
    with pytest.raises(ConfigurationError, match="shorter"):
        AppendFile(path).recover(saved)
    path.write_bytes(b'{"n":9}\n{"n":8}\n{"n":7}\n')
    with pytest.raises(ConfigurationError, match="is not the file the checkpoint recorded"):
        AppendFile(path).recover(saved)


def test_without_a_saved_length_only_a_torn_last_line_is_cut(tmp_path: Path) -> None:
    from fhirpipes.pipes.appendfile import AppendFile

    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"n":1}\n{"n":2')
    file = AppendFile(path)
    file.recover(None)
    file.append(b'{"n":3}\n')
    file.close()
    assert path.read_bytes() == b'{"n":1}\n{"n":3}\n'
    assert oct(path.stat().st_mode & 0o777) in ("0o600", "0o644")  # an existing file keeps its mode


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream`` that closes the first ``drop`` connections as soon
    as a request arrives (the server went away mid-call), and forwards the others."""

    def __init__(self, upstream: str, drop: int) -> None:
        import socket
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.drop = drop
        self.dropped = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.dropped < self.drop:
                self.dropped += 1
                client.recv(65536)
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(2)

    def close(self) -> None:
        self.listener.close()


@pytest.mark.slow
def test_dropped_connections_to_a_real_endpoint_are_retried(embedded: Any) -> None:
    from botocore.config import Config

    aws = embedded.config
    aws.client("sqs").create_queue(QueueName="dropping")
    proxy = DroppingProxy(embedded.endpoint_url, drop=3)
    try:
        # botocore's own retries off: the drops reach fhirpipes' retries, as they do once
        # botocore's are spent.
        session = aws.session()
        client = session.client(
            "sqs", endpoint_url=proxy.url, config=Config(retries={"total_max_attempts": 1})
        )
        target = SqsTarget(client, f"{embedded.endpoint_url}/000000000000/dropping")
        sleeps: list[float] = []
        assert deliver(target, [{"n": n} for n in range(3)], sleep=sleeps.append).delivered == 3
    finally:
        proxy.close()
    assert proxy.dropped == 3 and len(sleeps) == 3
    url = aws.client("sqs").get_queue_url(QueueName="dropping")["QueueUrl"]
    got = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(json.loads(m["Body"])["n"] for m in got) == [0, 1, 2]


def test_a_second_writer_of_the_same_file_is_refused(tmp_path: Path) -> None:
    from fhirpipes.pipes.appendfile import AppendFile

    first = AppendFile(tmp_path / "out.jsonl")
    first.append(b"1\n")
    second = AppendFile(tmp_path / "out.jsonl")
    with pytest.raises(ConfigurationError, match="is being written by another run"):
        second.append(b"2\n")
    first.close()
    second.append(b"2\n")
    second.close()
    assert (tmp_path / "out.jsonl").read_bytes() == b"1\n2\n"
