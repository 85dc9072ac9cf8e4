"""The Lambda entry point: ``fhirpipes.handler.handler``.

Configuration, logging and the plugin registry are set up once, at cold start (module import),
as Lambda conventions want; a plugin or configuration problem fails the cold start loudly, so
the Pipe retries instead of mapping nothing. Each invocation is a Pipe's batch.

Templates compile on first use, not here: one Lambda serves the Pipes of many tables, and a
batch holds one table's records, so a cold start pays for one template, not all of them; and a
broken template then fails its own table's records (as error events), not every table's.
`fhirpipes conformance` compiles every template before a deploy.

Every log line of an invocation carries its request id and whether it is the process's first
(`fhirpipes.logs`), and each batch writes its metrics as EMF lines on stdout
(`fhirpipes.metrics`; ``FHIRPIPES_METRICS=off`` turns them off).
"""

from __future__ import annotations

import os
from typing import Any

from fhirpipes import logs, metrics
from fhirpipes.dispatch import Dispatcher
from fhirpipes.settings import Settings

_settings = Settings.from_env()
logs.configure(_settings.log_level)  # before the plugins load: a plugin's import may log
dispatcher = Dispatcher.from_env(settings=_settings)
_metrics = (
    metrics.EmfWriter(level=metrics.line_level(os.environ.get("AWS_LAMBDA_LOG_LEVEL")))
    if _settings.metrics
    else None
)
_cold_start = True


def handler(event: Any, context: Any = None) -> list[dict[str, Any]]:
    """Map a Pipe's batch (a JSON array of DynamoDB stream records) to FHIR events."""
    global _cold_start
    cold_start, _cold_start = _cold_start, False  # as Powertools: the process's first invocation only
    request_id = getattr(context, "aws_request_id", None)
    token = logs.bind_invocation(request_id if isinstance(request_id, str) else None, cold_start)
    try:
        return dispatcher.map_batch(event, observe=_metrics)
    finally:
        logs.unbind_invocation(token)
