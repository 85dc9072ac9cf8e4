"""What became of one event (`Result`), shared by the one-request-per-event and the Bundle paths."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

GONE = (404, 410)
AUTH_STATUSES = (401, 403)  # the function's permission or token: fix it and the retry succeeds


class Result(NamedTuple):
    """What became of one event: ``written``, ``deleted``, ``absent`` (deleted already), ``stale``
    (a later state is stored), ``replayed`` (this state is stored), ``refused``, ``failed``,
    ``blocked`` (an earlier event for its resource failed), ``undelivered`` (error events).
    ``reason``: why it failed, when known (never a value: the sink's errors name kinds, not ids)."""

    outcome: str
    status: int | None = None
    issues: tuple[Mapping[str, Any], ...] = ()
    reason: str | None = None
