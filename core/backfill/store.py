"""A backfill's resources into a FHIR store (``--target fhir:URL``), through the sink's own code.

The events go through `fhirpipes.sink.Sink` as the live Pipe's do: its version guard (so a
backfill running beside the live Pipe never replaces what the stream wrote, and a rerun writes
nothing twice: `fhirpipes.sink.version`), its auth, per-request retries, concurrency and Bundles
(``FHIRPIPES_FHIR_CONCURRENCY``, ``FHIRPIPES_FHIR_BUNDLE_SIZE``, ``FHIRPIPES_FHIR_TIMEOUT``, read
from the given environment as the Lambda reads them; ``FHIRPIPES_SINK_ERROR_QUEUE`` is not used).

`StoreWriter.send` says, per event, whether it was ``written``, ``skipped`` (the store holds this
state or a later one) or ``failed``, with a reason that names where and why, never a value: the
server refused the resource (its status and OperationOutcome issue codes and paths), or it was
still not delivered after the sink's own retries and a few more attempts of ours.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fhirpipes.errors import ConfigurationError

if TYPE_CHECKING:
    from fhirpipes.sink import Sink, SinkSettings
    from fhirpipes.sink.destination import Undelivered
    from fhirpipes.sink.outcome import Result

WRITTEN, SKIPPED, FAILED = "written", "skipped", "failed"
_OUTCOMES = {
    "written": WRITTEN,
    "deleted": WRITTEN,
    "stale": SKIPPED,  # the guard: the store holds a later state
    "replayed": SKIPPED,  # the guard: the store holds this state (a rerun)
    "absent": SKIPPED,  # a delete of what isn't there
}
_RETRIED = ("failed", "blocked")
DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF_SECONDS = 1.0
DEFAULT_ATTEMPT_SECONDS = 120.0


class StoreWriter:
    """Sends a backfill's events to one FHIR server; one per worker (it keeps its connections).

    ``target`` is ``fhir:URL`` (or the bare base URL); ``auth`` is ``none``, ``sigv4`` or
    ``secret:<ARN>`` (``None``: ``environ``'s ``FHIRPIPES_FHIR_AUTH``, else ``none``). ``attempts``
    calls of the sink per event at most, ``backoff`` seconds (capped exponential, full jitter)
    between them, each call given ``attempt_seconds`` for the sink's own retries.
    """

    def __init__(
        self,
        target: str,
        auth: str | None,
        environ: Mapping[str, str],
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = DEFAULT_BACKOFF_SECONDS,
        attempt_seconds: float = DEFAULT_ATTEMPT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = target.removeprefix("fhir:")
        self.name = f"fhir:{self.url}"
        self.auth = auth if auth is not None else environ.get("FHIRPIPES_FHIR_AUTH", "none")
        self._environ = dict(environ)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.attempt_seconds = attempt_seconds
        self._sleep = sleep
        self._sink: Sink | None = None

    def check(self) -> None:
        """Raise `ConfigurationError` for a bad URL, auth or sink setting (no network)."""
        self._settings()

    def prepare(self) -> None:
        """Ask the server for its CapabilityStatement: `ConfigurationError` if it doesn't answer as a
        FHIR base URL (unreachable, 401/403, not a FHIR server), before any work."""
        from fhirpipes.pipes.targets import probe_fhir_base

        probe_fhir_base(self._get_sink(), self.name, ConfigurationError)

    def send(self, events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
        """Deliver ``events`` (PUT or DELETE fhirpipes events, in order per resource); per event, in
        order: (``written`` | ``skipped`` | ``failed``, the reason it failed or ``None``).

        Error events (``details.command == "ERROR"``) are not sent: ``failed``. An event the sink
        reports as retryable (5xx, 429, timeouts, no connection, after its own retries) is sent
        again, with the later events of its resource, up to ``attempts`` times.
        """
        from fhirpipes.pipes.retry import Backoff
        from fhirpipes.sink.transport import Deadline

        answers: list[tuple[str, str | None] | None] = [None] * len(events)
        pending = []
        for index, event in enumerate(events):
            if _command(event) == "ERROR":
                answers[index] = (
                    FAILED,
                    "an error event (the record could not be mapped): not sent to the store",
                )
            else:
                pending.append(index)
        sink = self._get_sink()
        waits = Backoff(self.backoff)
        for attempt in range(1, self.attempts + 1):
            if not pending:
                break
            if attempt > 1:
                self._sleep(waits.wait(attempt - 1))
            results = sink.deliver_outcomes(
                [events[index] for index in pending], deadline=Deadline(self.attempt_seconds)
            )
            retry = []
            for index, result in zip(pending, results, strict=True):
                if result.outcome in _RETRIED and attempt < self.attempts:
                    retry.append(index)
                else:
                    answers[index] = _answer(result, self.attempts)
            pending = retry
        return [answer if answer is not None else (FAILED, "not sent") for answer in answers]

    def close(self) -> None:
        """Close the kept-alive connections."""
        if self._sink is not None:
            self._sink.client.close()

    def _settings(self) -> SinkSettings:
        from fhirpipes.pipes.targets import fhir_settings  # lazy: the CLI's --help needn't pay for it

        return fhir_settings(self.url, self.auth, self._environ, self.name)

    def _get_sink(self) -> Sink:
        if self._sink is None:
            from fhirpipes.sink import Sink

            self._sink = Sink(self._settings(), destination=_Kept())  # type: ignore[arg-type]
        return self._sink


class _Kept:
    """The sink's error destination here: nothing is lost, the backfill records each failure itself."""

    def send(self, items: list[Undelivered]) -> set[str]:
        return set()


def _command(event: Any) -> Any:
    details = event.get("details") if isinstance(event, Mapping) else None
    return details.get("command") if isinstance(details, Mapping) else None


def _answer(result: Result, attempts: int) -> tuple[str, str | None]:
    outcome = _OUTCOMES.get(result.outcome)
    if outcome is not None:
        return outcome, None
    if result.outcome == "refused":
        return FAILED, refusal(result.status, result.issues)
    if result.outcome == "undelivered":
        return FAILED, "not a fhirpipes PUT or DELETE event (no resourceType, id or eventID): not sent"
    if result.outcome == "blocked":
        return FAILED, f"not sent: an earlier event for the same resource failed ({attempts} attempts)"
    why = result.reason or (f"HTTP {result.status} from the FHIR server" if result.status else "no outcome")
    return FAILED, f"not delivered after {attempts} attempts: {why}"


def refusal(status: int | None, issues: Any) -> str:
    """Why the server refused a resource: its status and each issue's code and FHIR path (no text:
    an OperationOutcome's diagnostics may quote the value)."""
    described = []
    for issue in issues or ():
        where = issue.get("expression") or issue.get("location") or ()
        parts = [str(part) for part in (issue.get("code"), *where) if part]
        if parts:
            described.append(" ".join(parts))
    suffix = f" ({'; '.join(described)})" if described else ""
    return f"the FHIR server refused the resource: HTTP {status}{suffix}"
