"""Where the local Pipe delivers the enrichment's events: stdout, a file, CloudWatch Logs, SQS,
a FHIR server.

Each event becomes one message: its JSON text on one line (a string, e.g. from a plain-text
target input template, is sent as it is). Error events from the enrichment are events like any
other. `deliver` sets aside the messages a target can never take (over its size limit: they go
to the dead-letter file), splits the others into chunks the target accepts (CloudWatch Logs:
10,000 events and 1,048,576 bytes per PutLogEvents; SQS: 10 messages and 256 KB per
SendMessageBatch), and retries a chunk that failed transiently (or the failed entries of a
partly accepted one) with capped exponential backoff and jitter (`fhirpipes.pipes.retry`). A
permanent failure, or a transient one still there after the last attempt, raises `DeliveryError`
(one line: target, failure type and code): a message is never dropped silently, and the runner
doesn't advance the checkpoint past a batch that wasn't delivered.

The delivery contract (what a `Target` subclass implements, and what the runner promises):

* ``exactly_once = True`` targets (`FileTarget`) are written through `AppendFile`: the runner saves
  `Target.position` in the same atomic checkpoint write that moves the shard past the batch, and
  calls `Target.recover` with it at start (and `Target.rollback` when a batch fails), so whatever
  was written after the last checkpoint is cut and written again once. Each event is in the
  output once, whatever the crash.
* ``exactly_once = False`` targets (`StreamTarget`, `CloudWatchLogsTarget`, `SqsTarget`,
  `FhirTarget`, and a plugin's) get at-least-once delivery: a crash after the write and before the checkpoint, a
  retry after a call that succeeded but whose answer was lost, or a batch stopped half-way
  delivers those events again. Every event carries ``eventID`` (the stream record's id; with
  ``source`` and ``eventType`` it names one event) for the consumer to drop repeats; SQS FIFO
  queues get a deduplication id derived from them. `FhirTarget` needs no consumer's help: a
  PUT is idempotent and the sink's version guard skips a state the store has already, or a
  newer one, so a replay leaves the store as it was.
* `Target.check` refuses what can be known wrong before anything starts (syntax, paths, names);
  `Target.prepare` connects (resolves the queue, creates the log stream) before the first read.

Target specifications (``--target``):

=================================  ===========================================================
``stdout`` (default)               JSON lines on standard output
``file:PATH``                      JSON lines appended to PATH (fsynced per batch; exactly once)
``cloudwatch:GROUP[:STREAM]``      CloudWatch Logs; the group and stream are created if missing
                                   (stream default ``fhirpipes``); ``:`` separates them because
                                   log group names may contain ``/``
``sqs:QUEUE``                      an SQS queue URL or name (FIFO queues: ``.fifo``)
``fhir:URL``                       a FHIR server's base URL (http or https), through the sink
                                   Lambda's code (`fhirpipes.sink`); auth: ``--fhir-auth``
=================================  ===========================================================
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from fhirpipes.errors import ConfigurationError, FhirpipesError
from fhirpipes.logs import logger
from fhirpipes.pipes.appendfile import AppendFile, check_writable
from fhirpipes.pipes.aws import AwsConfig
from fhirpipes.pipes.retry import Backoff, describe, is_transient

if TYPE_CHECKING:
    from fhirpipes.sink import Sink
    from fhirpipes.sink.destination import Undelivered
    from fhirpipes.sink.settings import SinkSettings

CLOUDWATCH_MAX_EVENTS = 10_000
CLOUDWATCH_MAX_BYTES = 1_048_576
CLOUDWATCH_EVENT_OVERHEAD = 26  # bytes PutLogEvents counts per event on top of its message
CLOUDWATCH_MAX_EVENT_BYTES = 256 * 1024 - CLOUDWATCH_EVENT_OVERHEAD
SQS_MAX_MESSAGES = 10
SQS_MAX_BYTES = 256 * 1024
DEFAULT_LOG_STREAM = "fhirpipes"
DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF_SECONDS = 0.5
LOG_GROUP_NAME = re.compile(r"[\w\-/.#]{1,512}", re.ASCII)
LOG_STREAM_NAME = re.compile(r"[^:*]{1,512}")
QUEUE_NAME = re.compile(r"[\w-]{1,80}(\.fifo)?", re.ASCII)


class DeliveryError(FhirpipesError):
    """A target did not take a batch: a permanent failure, or a transient one after every retry."""


def to_message(event: Any) -> str:
    """One event as the target's message: JSON text on one line (a string stays as it is)."""
    if isinstance(event, str):
        return event
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


Rejections = dict[int, str | None]
"""What `Target.send` didn't take: index in the chunk -> ``None`` (retry it) or the reason it never can."""


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What `deliver` did: how many messages the target took, and which it refused for good
    (index in the batch, reason) for the caller to dead-letter."""

    delivered: int
    refused: tuple[tuple[int, str], ...] = ()


class Target:
    """A destination (see the module docstring for the delivery contract).

    Subclasses implement `send`, and where they have limits, `refuse` and `chunks`; exactly-once
    targets implement `position`, `recover`, `commit` and `rollback` too.
    """

    name = "target"
    exactly_once: ClassVar[bool] = False

    def check(self) -> None:
        """Raise `ConfigurationError` for what is wrong before anything starts (no network)."""

    def prepare(self) -> None:
        """Connect before the first batch (resolve, create); may raise `DeliveryError`."""

    def refuse(self, message: str) -> str | None:
        """Why ``message`` can never be sent (over a size limit), or ``None``."""
        return None

    def chunks(self, messages: Sequence[str]) -> Iterator[list[str]]:
        """The messages, in order, cut into consecutive chunks `send` can take in one call
        (default: all at once)."""
        if messages:
            yield list(messages)

    def send(self, chunk: list[str]) -> Rejections:
        """Send one chunk; returns what was not accepted, or raises for the whole chunk."""
        raise NotImplementedError

    def position(self) -> dict[str, Any] | None:
        """What the checkpoint saves with each batch (exactly-once targets; others ``None``)."""
        return None

    @property
    def key(self) -> str:
        """The name the checkpoint files `position` under."""
        return self.name

    def recover(self, position: dict[str, Any] | None) -> None:
        """At start: undo what was written after the checkpointed ``position``."""

    def commit(self) -> None:
        """The checkpoint holding `position` was saved."""

    def rollback(self) -> None:
        """A batch failed: undo what was written since the last `commit`, where possible."""

    def close(self) -> None:
        """Release what the target holds (files, clients)."""


def chunks_within(
    messages: Sequence[str], *, max_count: int, max_bytes: int, overhead: int = 0
) -> Iterator[list[str]]:
    """Split ``messages`` into chunks of at most ``max_count`` messages and ``max_bytes`` (each
    message counting its UTF-8 size plus ``overhead``). Messages must each fit (see `too_large`)."""
    chunk: list[str] = []
    size = 0
    for message in messages:
        length = len(message.encode("utf-8"))
        if chunk and (len(chunk) == max_count or size + length + overhead > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += length + overhead
    if chunk:
        yield chunk


def too_large(message: str, limit: int, service: str) -> str | None:
    """The reason ``message`` is over ``service``'s per-message ``limit`` (UTF-8 bytes), or ``None``."""
    length = len(message.encode("utf-8"))
    if length > limit:
        return f"the message is {length} bytes, over the {service} limit of {limit} per message"
    return None


def deliver(
    target: Target,
    events: Sequence[Any],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = DEFAULT_BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    rng: Any = None,
) -> Delivery:
    """Deliver ``events`` to ``target``: set aside what it can never take, send the rest in chunks,
    retry transient failures (``attempts`` tries per chunk, `Backoff` waits between them).

    Raises `DeliveryError` for a permanent failure, or a transient one still there after the last
    attempt (chunks before it may have been delivered: the caller must not checkpoint the batch).
    """
    messages = [to_message(event) for event in events]
    refused: dict[int, str] = {}
    sendable: list[int] = []
    for index, message in enumerate(messages):
        reason = target.refuse(message)
        if reason is None:
            sendable.append(index)
        else:
            refused[index] = reason
    waits = Backoff(backoff, rng=rng)
    done = 0
    for chunk in target.chunks([messages[index] for index in sendable]):
        indexes = sendable[done : done + len(chunk)]
        done += len(chunk)
        pending = list(range(len(chunk)))
        for attempt in range(1, attempts + 1):
            failure: str
            try:
                rejections = target.send([chunk[at] for at in pending])
            except FhirpipesError:  # ours (DeliveryError, a file held by another run): final
                raise
            except Exception as exc:  # the target's own error: named by type and code, never its text
                failure = describe(exc)
                if not is_transient(exc):
                    # from None: an AWS error message may quote what was sent (a record value).
                    raise DeliveryError(
                        f"{target.name}: delivery failed: {failure}, which retrying can't fix; "
                        "the batch is not checkpointed and will be read again"
                    ) from None
            else:
                retry = []
                for at, reason in sorted(rejections.items()):
                    if reason is None:
                        retry.append(pending[at])
                    else:
                        refused[indexes[pending[at]]] = reason
                pending = retry
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
            sleep(waits.wait(attempt))
    return Delivery(len(messages) - len(refused), tuple(sorted(refused.items())))


class StreamTarget(Target):
    """JSON lines on a text stream (standard output by default). At least once."""

    name = "stdout"

    def __init__(
        self, stream: IO[str] | None = None, *, before_write: Callable[[], None] | None = None
    ) -> None:
        self._stream = stream
        # e.g. erase the live status line when both share a terminal
        self.before_write = before_write

    def send(self, chunk: list[str]) -> Rejections:
        stream = self._stream or sys.stdout
        if self.before_write is not None:
            self.before_write()
        stream.write("".join(f"{message}\n" for message in chunk))
        stream.flush()
        return {}


class FileTarget(Target):
    """JSON lines appended to a file, fsynced before the batch counts as delivered; exactly once
    across crashes and restarts (`AppendFile`: its length is saved with the checkpoint)."""

    exactly_once = True

    def __init__(
        self, path: str | os.PathLike[str], *, write: Callable[[int, memoryview], int] = os.write
    ) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self.file = AppendFile(self.path, write=write)

    @property
    def key(self) -> str:
        return self.file.key

    def check(self) -> None:
        check_writable(self.path, "the target file")

    def prepare(self) -> None:
        self.file.open()  # takes the lock: a second run on this file is refused before it reads

    def send(self, chunk: list[str]) -> Rejections:
        self.file.append("".join(f"{message}\n" for message in chunk).encode("utf-8"))
        return {}

    def position(self) -> dict[str, Any] | None:
        return self.file.state()

    def recover(self, position: dict[str, Any] | None) -> None:
        self.file.recover(position)

    def commit(self) -> None:
        self.file.commit()

    def rollback(self) -> None:
        self.file.rollback()

    def close(self) -> None:
        self.file.close()


class CloudWatchLogsTarget(Target):
    """CloudWatch Logs: one log event per message (the Pipe target of the original implementation).
    At least once."""

    def __init__(
        self, client: Any, group: str, stream: str = DEFAULT_LOG_STREAM, *, create: bool = True
    ) -> None:
        self.client = client
        self.group = group
        self.stream = stream
        self.create = create
        self.name = f"cloudwatch:{group}:{stream}"
        self._ready = False

    def check(self) -> None:
        if not LOG_GROUP_NAME.fullmatch(self.group):
            raise ConfigurationError(
                f"{self.name}: a log group name is 1 to 512 of letters, digits and _ - / . #"
            )
        if not LOG_STREAM_NAME.fullmatch(self.stream):
            raise ConfigurationError(f"{self.name}: a log stream name is 1 to 512 characters, no : or *")

    def prepare(self) -> None:
        if not self._ready:
            self._ensure_stream()

    def refuse(self, message: str) -> str | None:
        return too_large(message, CLOUDWATCH_MAX_EVENT_BYTES, "CloudWatch Logs")

    def chunks(self, messages: Sequence[str]) -> Iterator[list[str]]:
        return chunks_within(
            messages,
            max_count=CLOUDWATCH_MAX_EVENTS,
            max_bytes=CLOUDWATCH_MAX_BYTES,
            overhead=CLOUDWATCH_EVENT_OVERHEAD,
        )

    def send(self, chunk: list[str]) -> Rejections:
        if not self._ready:
            self._ensure_stream()
        now = int(time.time() * 1000)  # one timestamp: events of a call must be in time order
        response = self.client.put_log_events(
            logGroupName=self.group,
            logStreamName=self.stream,
            logEvents=[{"timestamp": now, "message": message} for message in chunk],
        )
        return _rejected_log_events(response.get("rejectedLogEventsInfo") or {}, len(chunk))

    def _ensure_stream(self) -> None:
        if self.create:
            exists = self.client.exceptions.ResourceAlreadyExistsException
            with contextlib.suppress(exists):
                self.client.create_log_group(logGroupName=self.group)
            with contextlib.suppress(exists):
                self.client.create_log_stream(logGroupName=self.group, logStreamName=self.stream)
        self._ready = True


def _rejected_log_events(info: dict[str, Any], count: int) -> Rejections:
    """PutLogEvents' ``rejectedLogEventsInfo`` as rejections: those events can never be taken."""
    rejections: Rejections = {}
    too_new = info.get("tooNewLogEventStartIndex")
    too_old = info.get("tooOldLogEventEndIndex")
    expired = info.get("expiredLogEventEndIndex")
    for index in range(count):
        if isinstance(too_new, int) and index >= too_new:
            rejections[index] = "CloudWatch Logs rejected the event: timestamp too new"
        elif isinstance(expired, int) and index <= expired:
            rejections[index] = "CloudWatch Logs rejected the event: older than the group's retention"
        elif isinstance(too_old, int) and index <= too_old:
            rejections[index] = "CloudWatch Logs rejected the event: timestamp too old"
    return rejections


class SqsTarget(Target):
    """An SQS queue: SendMessageBatch of at most 10 messages and 256 KB. At least once (a FIFO
    queue drops repeats within its 5-minute deduplication window)."""

    def __init__(self, client: Any, queue: str, *, create: bool = False) -> None:
        self.client = client
        self.queue = queue
        self.create = create
        self.name = f"sqs:{queue}"
        self._url: str | None = queue if queue.startswith(("https://", "http://")) else None

    @property
    def fifo(self) -> bool:
        return self.queue.endswith(".fifo")

    def check(self) -> None:
        if self._url is None and not QUEUE_NAME.fullmatch(self.queue):
            raise ConfigurationError(
                f"{self.name}: a queue name is 1 to 80 letters, digits, - and _ (and .fifo), or give its URL"
            )

    def prepare(self) -> None:
        if self._url is None:
            self._resolve()

    def refuse(self, message: str) -> str | None:
        return too_large(message, SQS_MAX_BYTES, "SQS")

    def chunks(self, messages: Sequence[str]) -> Iterator[list[str]]:
        return chunks_within(messages, max_count=SQS_MAX_MESSAGES, max_bytes=SQS_MAX_BYTES)

    def send(self, chunk: list[str]) -> Rejections:
        url = self._url or self._resolve()
        entries = []
        for index, message in enumerate(chunk):
            entry = {"Id": str(index), "MessageBody": message}
            if self.fifo:
                entry["MessageGroupId"] = "fhirpipes"  # one group: the stream's order is kept
                entry["MessageDeduplicationId"] = deduplication_id(message)
            entries.append(entry)
        response = self.client.send_message_batch(QueueUrl=url, Entries=entries)
        rejections: Rejections = {}
        for entry in response.get("Failed") or []:
            index = int(entry["Id"])
            if entry.get("SenderFault"):
                rejections[index] = f"SQS refused the message ({entry.get('Code', 'SenderFault')})"
            else:
                rejections[index] = None  # a server-side failure: retried
        return rejections

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


def deduplication_id(message: str) -> str:
    """A FIFO queue's deduplication id: from the event's ``source``, ``eventType`` and ``eventID``
    (the same event read again after a restart gets the same id, even if a target input template
    stamps a time in it), else from the message's content."""
    key = message
    if message.startswith("{"):
        with contextlib.suppress(ValueError):
            event = json.loads(message)
            if isinstance(event, dict) and isinstance(event.get("eventID"), str):
                key = "\x1f".join(str(event.get(name, "")) for name in ("source", "eventType", "eventID"))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def probe_fhir_base(sink: Sink, name: str, error: type[FhirpipesError]) -> None:
    """Ask the server for its CapabilityStatement; raise ``error`` unless it answers as a FHIR base URL
    (reachable, the auth accepted), before any work."""
    from fhirpipes.sink.transport import Deadline

    try:
        answer = sink.client.send("GET", "metadata", Deadline(sink.settings.timeout * 3))
    except FhirpipesError as exc:
        raise error(f"{name}: the FHIR server did not answer ({exc})") from None
    if answer.status in (401, 403):
        raise error(f"{name}: HTTP {answer.status} for GET metadata: check --fhir-auth")
    if answer.status != 200:
        raise error(f"{name}: HTTP {answer.status} for GET metadata: is this a FHIR base URL?")


class FhirTarget(Target):
    """A FHIR server, through the sink Lambda's own code (`fhirpipes.sink.Sink`): PUT ``<type>/<id>``
    or DELETE, in order per resource, never overwriting a newer source state (the version guard).

    At least once to the store, and replays are harmless: a batch delivered again (a crash before
    the checkpoint, a chunk retried after an answer was lost) PUTs states the store already has or
    has newer, and a PUT is idempotent; the guard (``FHIRPIPES_FHIR_GUARD=version``, the default)
    skips them. Events the sink reports as failed (5xx, 429, timeouts after its own retries) are
    retried by `deliver`, and after the last attempt the batch is not checkpointed. What the sink
    sends to its error destination (error events, resources the server refused, 400/422, and
    events that are not fhirpipes events) goes to the runner's dead-letter file instead.

    The sink's other settings (``FHIRPIPES_FHIR_GUARD``, ``_TIMEOUT``, ``_CONCURRENCY``,
    ``_BUNDLE_SIZE``) are read from the environment as the Lambda reads them; ``FHIRPIPES_SINK_ERROR_QUEUE`` is not used.
    """

    def __init__(
        self,
        url: str,
        auth: str | None = None,
        *,
        environ: dict[str, str] | None = None,
        region: str | None = None,
        sink: Sink | None = None,
    ) -> None:
        self.url = url
        self.auth = auth if auth is not None else os.environ.get("FHIRPIPES_FHIR_AUTH", "none")
        self.name = f"fhir:{url}"
        self._environ = dict(os.environ if environ is None else environ)
        if region and not (self._environ.get("AWS_REGION") or self._environ.get("AWS_DEFAULT_REGION")):
            self._environ["AWS_REGION"] = region
        self._sink = sink
        self._undelivered: list[Undelivered] = []

    def check(self) -> None:
        fhir_settings(self.url, self.auth, self._environ, self.name)

    def settings(self) -> SinkSettings:
        """The sink's settings: this URL and auth, the rest from the environment, no error queue."""
        return fhir_settings(self.url, self.auth, self._environ, self.name)

    def prepare(self) -> None:
        """Build the sink and ask the server for its CapabilityStatement (reachable? a FHIR base?)."""

        probe_fhir_base(self._get_sink(), self.name, DeliveryError)

    def send(self, chunk: list[str]) -> Rejections:
        from fhirpipes.sink.errors import DeliveryError as SinkDeliveryError

        events = [_event_of(message) for message in chunk]
        sink = self._get_sink()
        self._undelivered.clear()
        try:
            answer = sink.deliver(events)
        except SinkDeliveryError:  # the whole batch (the sink reports per event; this is a backstop)
            return dict.fromkeys(range(len(chunk)))
        # The error destination is given the very event objects: map them back by identity
        # (an event that isn't a fhirpipes event may have no eventID).
        index_of = {id(event): index for index, event in enumerate(events)}
        rejections: Rejections = {}
        for item in self._undelivered:
            rejections[index_of[id(item.event)]] = _refusal(item)
        failed = {failure["itemIdentifier"] for failure in answer["batchItemFailures"]}
        for index, event in enumerate(events):
            if index not in rejections and isinstance(event, dict) and event.get("eventID") in failed:
                rejections[index] = None  # retried, with the later events for its resource
        return rejections

    def close(self) -> None:
        if self._sink is not None:
            self._sink.client.close()

    def _get_sink(self) -> Sink:
        if self._sink is None:
            from fhirpipes.sink import Sink

            self._sink = Sink(self.settings())
        self._sink.destination = _Collect(self._undelivered)  # type: ignore[assignment]
        return self._sink


def fhir_settings(url: str, auth: str, environ: Mapping[str, str], name: str) -> SinkSettings:
    """The sink's settings for a FHIR base ``url`` and ``auth`` (``FHIRPIPES_FHIR_AUTH``'s forms), the
    rest from ``environ`` as the Lambda reads it, no error queue; checked, without the network.

    A bad value is a `ConfigurationError` that starts with ``name`` (and never quotes credentials).
    Shared by `FhirTarget` and the backfill's store writer (`fhirpipes.backfill.store`).
    """
    from fhirpipes.sink.settings import SinkSettings

    parts = urlsplit(url)
    if "@" in parts.netloc:  # said without the URL: it would quote the credentials
        raise ConfigurationError("fhir target: no credentials in the URL; use --fhir-auth")
    try:
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name}: give the FHIR base URL, fhir:http(s)://HOST[:PORT]/PATH")
    auth = auth.strip() or "none"
    if auth not in ("none", "sigv4") and not (auth.startswith("secret:") and len(auth) > 7):
        raise ConfigurationError(
            f"{name}: --fhir-auth (or FHIRPIPES_FHIR_AUTH) must be none, sigv4 or secret:<ARN or name>"
        )
    settings = {**environ, "FHIRPIPES_FHIR_URL": url, "FHIRPIPES_FHIR_AUTH": auth}
    settings.pop("FHIRPIPES_SINK_ERROR_QUEUE", None)
    try:
        return SinkSettings.from_env(settings)  # the Lambda's own checks of its other settings
    except ConfigurationError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


class _Collect:
    """The sink's error destination, locally: keeps what the store won't get for the dead-letter file."""

    def __init__(self, items: list[Undelivered]) -> None:
        self.items = items

    def send(self, items: Sequence[Undelivered]) -> set[str]:
        self.items.extend(items)
        return set()  # nothing lost: the runner writes them to the dead-letter file


def _event_of(message: str) -> Any:
    try:
        return json.loads(message)
    except ValueError:
        return message  # not JSON (a target input template's text): the sink calls it malformed


def _refusal(item: Undelivered) -> str:
    """Why an event went to the dead-letter file: the sink's reason, status and issue codes (no values)."""
    if item.reason == "mapping-failed":
        return "an error event (the record could not be mapped): not sent to the FHIR store"
    if item.reason != "refused":
        return "not a fhirpipes PUT, DELETE or ERROR event: the FHIR target can't deliver it"
    issues = "; ".join(
        " ".join(
            str(part)
            for part in (issue.get("code"), *(issue.get("expression") or issue.get("location") or ()))
            if part
        )
        for issue in item.issues
    )
    return f"the FHIR server refused the resource: HTTP {item.status}" + (f" ({issues})" if issues else "")


TARGET_SPECS = "stdout, file:PATH, cloudwatch:GROUP[:STREAM], sqs:QUEUE_URL_OR_NAME or fhir:URL"


def parse_target(
    spec: str,
    aws: AwsConfig | None = None,
    *,
    create_missing: bool = False,
    fhir_auth: str | None = None,
) -> Target:
    """A `Target` from a ``--target`` specification (see the module docstring), checked
    (`Target.check`): syntax, names, and for a file that it can be written.

    ``create_missing`` also creates a missing SQS queue (the embedded server starts empty);
    CloudWatch Logs groups and streams are always created if missing. Clients are only made when
    ``aws`` is given: without it, an AWS target is checked and returned with no client (to
    validate a specification before any endpoint exists). ``fhir_auth`` is a ``fhir:`` target's
    ``FHIRPIPES_FHIR_AUTH`` value (``None``: the environment's, else ``none``).
    """
    kind, _, rest = spec.partition(":")
    target: Target
    if spec in ("stdout", "-"):
        target = StreamTarget()
    elif kind == "file" and rest:
        target = FileTarget(rest)
    elif kind == "cloudwatch" and rest:
        group, _, stream = rest.partition(":")
        if not group:
            raise ConfigurationError("cloudwatch target: name a log group, cloudwatch:GROUP[:STREAM]")
        target = CloudWatchLogsTarget(
            aws.client("logs") if aws else None, group, stream or DEFAULT_LOG_STREAM
        )
    elif kind == "sqs" and rest:
        target = SqsTarget(aws.client("sqs") if aws else None, rest, create=create_missing)
    elif kind == "fhir":
        target = FhirTarget(rest, fhir_auth, region=aws.region if aws else None)
    else:
        raise ConfigurationError(f"unknown target {spec!r}: use {TARGET_SPECS}")
    target.check()
    return target
