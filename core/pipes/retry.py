"""Which failures of a target or a stream call are worth retrying, and how long to wait between tries.

Transient (retried, with capped exponential backoff and full jitter, a bounded number of times):

* botocore's connection errors, which carry no ``response``: the connection closed or reset
  (``ConnectionClosedError``), refused (``EndpointConnectionError``), timed out
  (``ReadTimeoutError``, ``ConnectTimeoutError``), a body cut short (``ResponseStreamingError``,
  ``IncompleteReadError``);
* a `ClientError` whose HTTP status is 429 or 5xx, or whose code says throttling or a server fault
  (``ThrottlingException``, ``ServiceUnavailable``, ``InternalFailure``, ...);
* an `OSError` that can pass (``ENOSPC`` a disk that fills and frees, ``EIO``, ``EAGAIN``,
  connection resets): any `OSError` but the `PERMANENT_ERRNOS`;
* any other exception of a target that isn't a botocore one (a plugin's target): retried, as it
  always was.

Permanent (reported at once, no retry): other client errors (``AccessDenied``, a validation
error), missing credentials, a path that is a directory or not writable.

Reasons name the exception type and error code only: an AWS error message may quote what was
sent (a record value).
"""

from __future__ import annotations

import errno
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fhirpipes.logs import logger

T = TypeVar("T")

# Client error codes that mean "try again later" (throttling, server faults), across services.
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "SlowDown",
        "ThrottledException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "TransactionInProgressException",
        "AWS.SimpleQueueService.RequestThrottled",
        "KMSThrottlingException",
    }
)
# botocore exception classes (by name: botocore is imported only by what needs it) that are transient.
TRANSIENT_BOTOCORE = frozenset(
    {
        "ConnectionClosedError",
        "ConnectionError",
        "ConnectTimeoutError",
        "EndpointConnectionError",
        "HTTPClientError",
        "IncompleteReadError",
        "ProxyConnectionError",
        "ReadTimeoutError",
        "ResponseStreamingError",
    }
)
# OS errors that retrying can't fix.
PERMANENT_ERRNOS = frozenset(
    {
        errno.EISDIR,
        errno.ENOTDIR,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOENT,
        errno.EBADF,
        errno.EPIPE,
    }
)
MAX_WAIT_SECONDS = 20.0


def error_code(exc: BaseException) -> tuple[str | None, int | None]:
    """A botocore `ClientError`'s code and HTTP status (``None`` for errors with no ``response``)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):  # ConnectionClosedError and friends have none
        return None, None
    error = response.get("Error")
    code = error.get("Code") if isinstance(error, dict) else None
    metadata = response.get("ResponseMetadata")
    status = metadata.get("HTTPStatusCode") if isinstance(metadata, dict) else None
    return (str(code) if code else None), (status if isinstance(status, int) else None)


def describe(exc: BaseException) -> str:
    """The failure in a few words, with no message text: ``ConnectionClosedError``,
    ``ClientError (ThrottlingException)``, ``OSError (ENOSPC)``."""
    name = type(exc).__name__
    code, _ = error_code(exc)
    if code:
        return f"{name} ({code})"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{name} ({errno.errorcode.get(exc.errno, exc.errno)})"
    return name


def is_transient(exc: BaseException, *, unknown: bool = True) -> bool:
    """True if trying again later may succeed (see the module docstring); ``unknown`` is the answer
    for an exception that is neither botocore's nor an `OSError` (a plugin target's own)."""
    code, status = error_code(exc)
    if code is not None or status is not None:
        return code in TRANSIENT_CODES or (status is not None and (status == 429 or status >= 500))
    if _is_botocore(exc):
        return any(cls.__name__ in TRANSIENT_BOTOCORE for cls in type(exc).__mro__ if _is_botocore_class(cls))
    if isinstance(exc, OSError):
        return exc.errno not in PERMANENT_ERRNOS
    return unknown


def retrying(
    call: Callable[[], T],
    *,
    what: str,
    attempts: int = 5,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    rng: Any = None,
) -> T:
    """``call()``, tried again after a transient botocore or OS failure (``attempts`` in all, with
    `Backoff` waits); anything else, or the last failure, is raised as it is."""
    waits = Backoff(backoff, rng=rng)
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc, unknown=False):
                raise
            logger.warning(
                f"{what} failed; retrying",
                extra={"fhirpipes": {"attempt": attempt, "error": describe(exc)}},
            )
            sleep(waits.wait(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _is_botocore_class(cls: type) -> bool:
    return cls.__module__.startswith("botocore")


def _is_botocore(exc: BaseException) -> bool:
    return _is_botocore_class(type(exc))


class Backoff:
    """Waits of capped exponential backoff with full jitter: attempt n waits a uniform random time
    in ``[0, min(cap, base * 2**(n-1))]`` (AWS's recommended shape: retries of many clients spread
    out instead of arriving together)."""

    def __init__(self, base: float, *, cap: float = MAX_WAIT_SECONDS, rng: Any = None) -> None:
        self.base = base
        self.cap = cap
        self.rng = rng if rng is not None else random.Random()

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt ``attempt`` (1-based)."""
        return min(self.cap, self.base * 2.0 ** (attempt - 1))

    def wait(self, attempt: int) -> float:
        """How long to wait after failed attempt ``attempt``."""
        return float(self.rng.uniform(0, self.ceiling(attempt)))


__all__ = ["Backoff", "describe", "error_code", "is_transient", "retrying"]
