"""The sink's HTTP transport (`fhirpipes.sink.transport`), the parts that need no server."""

from __future__ import annotations

from fhirpipes.sink.transport import retry_after


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: now
    assert retry_after("soon") is None and retry_after(None) is None
