"""The Lambda entry point: ``fhirpipes.handler.handler``.

Configuration, logging and the plugin registry are set up once, at cold start (module import),
as Lambda conventions want; a plugin or configuration problem fails the cold start loudly, so
the Pipe retries instead of mapping nothing. Each invocation is a Pipe's batch.
"""

from __future__ import annotations

from typing import Any

from fhirpipes import logs
from fhirpipes.dispatch import Dispatcher
from fhirpipes.plugins import load_registry
from fhirpipes.render import check_template
from fhirpipes.settings import Settings


def build_dispatcher(settings: Settings | None = None) -> Dispatcher:
    """Load plugins, check every template compiles, and return a ready `Dispatcher`."""
    settings = settings or Settings.from_env()
    registry = load_registry()
    for mapper in registry.mappers:
        check_template(mapper.template_package, mapper.template)
    return Dispatcher(registry, settings)


_settings = Settings.from_env()
logs.configure(_settings.log_level)
dispatcher = build_dispatcher(_settings)


def handler(event: Any, context: Any = None) -> list[dict[str, Any]]:
    """Map a Pipe's batch (a JSON array of DynamoDB stream records) to FHIR events."""
    return dispatcher.map_batch(event)
