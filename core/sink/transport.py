"""HTTP to the FHIR server with the standard library, retrying what is passing within a deadline.

``http.client`` rather than a library: the Lambda stays small and its cold start short, and a
FHIR REST call needs no more than a kept-alive connection per thread. What is retried here:
429 (after its ``Retry-After``), 408, 409 (a server's concurrent-update conflict), 5xx,
timeouts and dropped connections, with exponential backoff and full jitter, never past the
deadline. Anything else is the caller's to judge.
"""

from __future__ import annotations

import email.utils
import http.client
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson

from fhirpipes.sink.auth import Auth, NoAuth
from fhirpipes.sink.errors import DeliveryError, OutOfTimeError

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_BASE, BACKOFF_CAP = 0.05, 4.0
FHIR_JSON = "application/fhir+json"


class Response(NamedTuple):
    """A server's answer: status, headers (lower-case names) and the JSON body (None if none)."""

    status: int
    headers: Mapping[str, str]
    body: Any


class Deadline:
    """When the sink must stop trying: the function's remaining time, less a margin to answer."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    @classmethod
    def of(
        cls,
        context: Any,
        margin: float = 2.0,
        default: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> Deadline:
        """From a Lambda context (``get_remaining_time_in_millis``); ``default`` seconds without one."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        seconds = remaining() / 1000.0 if callable(remaining) else default
        # Keep a tenth (at least ``margin``, at most 10 s) to report what wasn't delivered.
        return cls(max(0.0, seconds - min(10.0, max(margin, seconds / 10))), clock)

    def left(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self._end - self._clock())


class Client:
    """A FHIR base URL, its auth, and a pool of kept-alive connections."""

    def __init__(
        self,
        base_url: str,
        auth: Auth | None = None,
        *,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc
        self._base_path = parts.path if parts.path.endswith("/") else parts.path + "/"
        self.auth = auth or NoAuth()
        self.timeout = timeout
        self._sleep, self._jitter = sleep, jitter
        # Idle kept-alive connections, shared by the delivering threads (one request each at a time).
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.requests = 0  # sent, retries included (for the batch's figures); updated under the GIL

    def send(
        self,
        method: str,
        path: str,
        deadline: Deadline,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send ``method`` to ``path`` (relative to the base), retrying what is passing until ``deadline``."""
        data = orjson.dumps(body) if body is not None else None
        base_headers = {"Host": self._netloc, "Accept": FHIR_JSON, **(headers or {})}
        if data is not None:
            base_headers["Content-Type"] = FHIR_JSON
        attempt, refreshed = 0, False
        while True:
            left = deadline.left()
            if left <= 0:
                raise OutOfTimeError(f"{method} {_kind(path)}: no time left for the request")
            signed = self.auth.headers(method, self.base_url + path, data, base_headers)
            try:
                response = self._once(method, self._base_path + path, data, signed, min(self.timeout, left))
                why = f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, refused, bad lines
                response, why = None, type(exc).__name__
            if response is not None and response.status == 401 and not refreshed and self.auth.refresh():
                refreshed = True
                continue
            if response is not None and response.status not in RETRY_STATUSES:
                return response
            delay = self._delay(attempt, response)
            if delay >= deadline.left():
                raise DeliveryError(f"{method} {_kind(path)}: {why}, and no time left to retry")
            self._sleep(delay)
            attempt += 1

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1``: exponential, capped, with full jitter."""
        return float(self._jitter() * min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))

    def sleep(self, seconds: float) -> None:
        """Wait (the clock tests give the client)."""
        self._sleep(seconds)

    def _delay(self, attempt: int, response: Response | None) -> float:
        if response is not None and response.status in (429, 503):
            after = retry_after(response.headers.get("retry-after"))
            if after is not None:
                return after + self._jitter() * BACKOFF_BASE
        return self.backoff(attempt)

    def _once(
        self, method: str, path: str, data: bytes | None, headers: dict[str, str], timeout: float
    ) -> Response:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._netloc, timeout=timeout)
        else:
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
        self.requests += 1
        try:
            connection.request(method, path, body=data, headers=headers)
            answer = connection.getresponse()
            raw = answer.read()
        except BaseException:
            connection.close()  # a half-read connection can't carry the next request
            raise
        if answer.will_close:
            connection.close()
        else:
            with self._lock:
                self._idle.append(connection)
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, parsed)

    def close(self) -> None:
        """Close the kept-alive connections (a Lambda keeps them for its next invocation)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number of seconds, or an HTTP date), if it's valid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _kind(path: str) -> str:
    """The resource type of a path: ids are left out of messages (a template may build them from values)."""
    return path.split("/", 1)[0] or "/"
