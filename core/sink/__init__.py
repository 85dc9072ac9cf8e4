"""The sink: a second Lambda handler, ``fhirpipes.sink.handler``, for a Pipe's target stage.

It delivers the enrichment's events into a FHIR store (AWS HealthLake or any FHIR R4 server):
`fhirpipes.sink.deliver` says how, `fhirpipes.sink.settings` what to set, and
`fhirpipes.sink.version` which state is newer. The sink is built on the first invocation, from
the environment (a bad setting fails that invocation, and the Pipe retries it).
"""

from __future__ import annotations

import functools
from typing import Any

from fhirpipes.sink.deliver import Sink
from fhirpipes.sink.settings import SinkSettings

__all__ = ["Sink", "SinkSettings", "handler"]


@functools.cache
def _sink() -> Sink:
    from fhirpipes import logs
    from fhirpipes.settings import Settings

    logs.configure(Settings.from_env().log_level)
    return Sink(SinkSettings.from_env())


def handler(event: Any, context: Any = None) -> dict[str, list[dict[str, str]]]:
    """Deliver a Pipe's batch of fhirpipes events; returns ``{"batchItemFailures": [...]}``."""
    return _sink().deliver(event, context)
