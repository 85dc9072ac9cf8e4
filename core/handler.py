"""The Lambda entry point: ``fhirpipes.handler.handler``.

Configuration, logging and the plugin registry are set up once, at cold start (module import),
as Lambda conventions want; a plugin or configuration problem fails the cold start loudly, so
the Pipe retries instead of mapping nothing. Each invocation is a Pipe's batch.

Templates compile on first use, not here: one Lambda serves the Pipes of many tables, and a
batch holds one table's records, so a cold start pays for one template, not all of them; and a
broken template then fails its own table's records (as error events), not every table's.
`fhirpipes conformance` compiles every template before a deploy.
"""

from __future__ import annotations

from typing import Any

from fhirpipes import logs
from fhirpipes.dispatch import Dispatcher
from fhirpipes.plugins import load_registry
from fhirpipes.settings import Settings

_settings = Settings.from_env()
logs.configure(_settings.log_level)
dispatcher = Dispatcher(load_registry(), _settings)


def handler(event: Any, context: Any = None) -> list[dict[str, Any]]:
    """Map a Pipe's batch (a JSON array of DynamoDB stream records) to FHIR events."""
    return dispatcher.map_batch(event)
