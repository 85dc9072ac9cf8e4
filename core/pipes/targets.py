"""Where the local Pipe delivers the enrichment's events: stdout, a file, CloudWatch Logs, SQS.

Each event becomes one message: its JSON text on one line (a string, e.g. from a plain-text
target input template, is sent as it is). Error events from the enrichment are events like any
other. `deliver` splits the messages into chunks the target accepts (CloudWatch Logs: 10,000
events and 1,048,576 bytes per PutLogEvents; SQS: 10 messages and 256 KB per SendMessageBatch),
and retries a failed chunk (or the failed entries of a partly accepted one) with exponential
backoff. After the last attempt it raises `DeliveryError`: a message is never dropped silently,
and the runner doesn't advance the checkpoint past a batch that wasn't delivered.

Target specifications (``--target``):

=================================  ===========================================================
``stdout`` (default)               JSON lines on standard output
``file:PATH``                      JSON lines appended to PATH (flushed and fsynced per batch)
``cloudwatch:GROUP[:STREAM]``      CloudWatch Logs; the group and stream are created if missing
                                   (stream default ``fhirpipes``); ``:`` separates them because
                                   log group names may contain ``/``
``sqs:QUEUE``                      an SQS queue URL or name (FIFO queues: ``.fifo``)
=================================  ===========================================================
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from fhirpipes.errors import ConfigurationError, FhirpipesError
from fhirpipes.logs import logger
from fhirpipes.pipes.aws import AwsConfig

CLOUDWATCH_MAX_EVENTS = 10_000
CLOUDWATCH_MAX_BYTES = 1_048_576
CLOUDWATCH_EVENT_OVERHEAD = 26  # bytes PutLogEvents counts per event on top of its message
CLOUDWATCH_MAX_EVENT_BYTES = 256 * 1024 - CLOUDWATCH_EVENT_OVERHEAD
SQS_MAX_MESSAGES = 10
SQS_MAX_BYTES = 256 * 1024
DEFAULT_LOG_STREAM = "fhirpipes"
DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF_SECONDS = 0.5


class DeliveryError(FhirpipesError):
    """A target did not take a batch, after retries (or can never take it, e.g. too large)."""


def to_message(event: Any) -> str:
    """One event as the target's message: JSON text on one line (a string stays as it is)."""
    if isinstance(event, str):
        return event
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


class Target:
    """A destination. Subclasses split messages into `chunks` and `send` one chunk."""

    name = "target"

    def chunks(self, messages: Sequence[str]) -> Iterator[list[str]]:
        """The messages in chunks `send` can take in one call (default: all at once)."""
        if messages:
            yield list(messages)

    def send(self, chunk: list[str]) -> list[str]:
        """Send one chunk; returns the messages not accepted (to retry) or raises for the whole chunk."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the target holds (files, clients)."""


def chunks_within(
    target_name: str,
    messages: Sequence[str],
    *,
    max_count: int,
    max_bytes: int,
    max_message_bytes: int,
    overhead: int = 0,
    service: str,
) -> Iterator[list[str]]:
    """Split ``messages`` into chunks of at most ``max_count`` messages and ``max_bytes`` (each
    message counting its UTF-8 size plus ``overhead``); one over ``max_message_bytes`` can never
    be sent, so it is a `DeliveryError` naming its place in the batch."""
    chunk: list[str] = []
    size = 0
    for index, message in enumerate(messages):
        length = len(message.encode("utf-8"))
        if length > max_message_bytes:
            raise DeliveryError(
                f"{target_name}: message {index} of the batch is {length} bytes, "
                f"over the {service} limit of {max_message_bytes} per message"
            )
        if chunk and (len(chunk) == max_count or size + length + overhead > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += length + overhead
    if chunk:
        yield chunk


def deliver(
    target: Target,
    events: Sequence[Any],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = DEFAULT_BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Deliver ``events`` to ``target`` in chunks, retrying failures; returns how many were delivered.

    Raises `DeliveryError` when a chunk is still not accepted after ``attempts`` tries (the
    chunks before it were delivered: the caller must not checkpoint the batch).
    """
    messages = [to_message(event) for event in events]
    for chunk in target.chunks(messages):
        pending = chunk
        for attempt in range(1, attempts + 1):
            failure: str
            try:
                pending = target.send(pending)
            except DeliveryError:
                raise
            except Exception as exc:  # the target's client error: retried, then reported by type only
                failure = type(exc).__name__
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code:
                    failure = f"{failure} ({code})"
            else:
                if not pending:
                    break
                failure = f"{len(pending)} of {len(chunk)} messages not accepted"
            if attempt == attempts:
                raise DeliveryError(
                    f"{target.name}: delivery failed after {attempts} attempts ({failure}); "
                    f"the batch is not checkpointed and will be read again"
                )
            logger.warning(
                "delivery failed; retrying",
                extra={
                    "fhirpipes": {
                        "target": target.name,
                        "attempt": attempt,
                        "messages": len(pending),
                        "error": failure,
                    }
                },
            )
            sleep(backoff * 2 ** (attempt - 1))
    return len(messages)


class StreamTarget(Target):
    """JSON lines on a text stream (standard output by default)."""

    name = "stdout"

    def __init__(
        self, stream: IO[str] | None = None, *, before_write: Callable[[], None] | None = None
    ) -> None:
        self._stream = stream
        # e.g. erase the live status line when both share a terminal
        self.before_write = before_write

    def send(self, chunk: list[str]) -> list[str]:
        stream = self._stream or sys.stdout
        if self.before_write is not None:
            self.before_write()
        stream.write("".join(f"{message}\n" for message in chunk))
        stream.flush()
        return []


class FileTarget(Target):
    """JSON lines appended to a file, flushed and fsynced before the batch counts as delivered."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self._handle: IO[str] | None = None

    def send(self, chunk: list[str]) -> list[str]:
        if self._handle is None:
            if self.path.parent != Path():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write("".join(f"{message}\n" for message in chunk))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return []

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class CloudWatchLogsTarget(Target):
    """CloudWatch Logs: one log event per message (the Pipe target of the original implementation)."""

    def __init__(
        self, client: Any, group: str, stream: str = DEFAULT_LOG_STREAM, *, create: bool = True
    ) -> None:
        self.client = client
        self.group = group
        self.stream = stream
        self.create = create
        self.name = f"cloudwatch:{group}:{stream}"
        self._ready = False

    def chunks(self, messages: Sequence[str]) -> Iterator[list[str]]:
        return chunks_within(
            self.name,
            messages,
            max_count=CLOUDWATCH_MAX_EVENTS,
            max_bytes=CLOUDWATCH_MAX_BYTES,
            max_message_bytes=CLOUDWATCH_MAX_EVENT_BYTES,
            overhead=CLOUDWATCH_EVENT_OVERHEAD,
            service="CloudWatch Logs",
        )

    def send(self, chunk: list[str]) -> list[str]:
        if not self._ready:
            self._ensure_stream()
        now = int(time.time() * 1000)  # one timestamp: events of a call must be in time order
        response = self.client.put_log_events(
            logGroupName=self.group,
            logStreamName=self.stream,
            logEvents=[{"timestamp": now, "message": message} for message in chunk],
        )
        rejected = response.get("rejectedLogEventsInfo")
        if rejected:
            raise DeliveryError(
                f"{self.name}: CloudWatch Logs rejected events ({', '.join(sorted(rejected))})"
            )
        return []

    def _ensure_stream(self) -> None:
        if self.create:
            exists = self.client.exceptions.ResourceAlreadyExistsException
            with contextlib.suppress(exists):
                self.client.create_log_group(logGroupName=self.group)
            with contextlib.suppress(exists):
                self.client.create_log_stream(logGroupName=self.group, logStreamName=self.stream)
        self._ready = True


class SqsTarget(Target):
    """An SQS queue: SendMessageBatch of at most 10 messages and 256 KB."""

    def __init__(self, client: Any, queue: str, *, create: bool = False) -> None:
        self.client = client
        self.queue = queue
        self.create = create
        self.name = f"sqs:{queue}"
        self._url: str | None = queue if queue.startswith(("https://", "http://")) else None

    @property
    def fifo(self) -> bool:
        return self.queue.endswith(".fifo")

    def chunks(self, messages: Sequence[str]) -> Iterator[list[str]]:
        return chunks_within(
            self.name,
            messages,
            max_count=SQS_MAX_MESSAGES,
            max_bytes=SQS_MAX_BYTES,
            max_message_bytes=SQS_MAX_BYTES,
            service="SQS",
        )

    def send(self, chunk: list[str]) -> list[str]:
        url = self._url or self._resolve()
        entries = []
        for index, message in enumerate(chunk):
            entry = {"Id": str(index), "MessageBody": message}
            if self.fifo:
                entry["MessageGroupId"] = "fhirpipes"  # one group: the stream's order is kept
                entry["MessageDeduplicationId"] = hashlib.sha256(message.encode("utf-8")).hexdigest()
            entries.append(entry)
        response = self.client.send_message_batch(QueueUrl=url, Entries=entries)
        failed = response.get("Failed") or []
        for entry in failed:
            if entry.get("SenderFault"):
                raise DeliveryError(
                    f"{self.name}: SQS refused a message ({entry.get('Code', 'SenderFault')}); "
                    "retrying can't help"
                )
        return [chunk[int(entry["Id"])] for entry in failed]

    def _resolve(self) -> str:
        errors = self.client.exceptions
        try:
            url = self.client.get_queue_url(QueueName=self.queue)["QueueUrl"]
        except errors.QueueDoesNotExist as exc:
            if not self.create:
                raise DeliveryError(f"{self.name}: no such queue") from exc
            attributes = {"FifoQueue": "true"} if self.fifo else {}
            url = self.client.create_queue(QueueName=self.queue, Attributes=attributes)["QueueUrl"]
        self._url = str(url)
        return self._url


def parse_target(spec: str, aws: AwsConfig | None = None, *, create_missing: bool = False) -> Target:
    """A `Target` from a ``--target`` specification (see the module docstring).

    ``create_missing`` also creates a missing SQS queue (the embedded server starts empty);
    CloudWatch Logs groups and streams are always created if missing.
    """
    kind, _, rest = spec.partition(":")
    if spec in ("stdout", "-"):
        return StreamTarget()
    if kind == "file" and rest:
        return FileTarget(rest)
    if kind == "cloudwatch" and rest:
        group, _, stream = rest.partition(":")
        if not group:
            raise ConfigurationError("cloudwatch target: name a log group, cloudwatch:GROUP[:STREAM]")
        return CloudWatchLogsTarget((aws or AwsConfig()).client("logs"), group, stream or DEFAULT_LOG_STREAM)
    if kind == "sqs" and rest:
        return SqsTarget((aws or AwsConfig()).client("sqs"), rest, create=create_missing)
    raise ConfigurationError(
        f"unknown target {spec!r}: use stdout, file:PATH, cloudwatch:GROUP[:STREAM] or sqs:QUEUE_URL_OR_NAME"
    )
