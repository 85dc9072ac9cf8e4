"""The sink's errors: why one event's delivery stopped (never a record value)::

FhirpipesError
└── DeliveryError        one event could not be delivered now; the Pipe retries it
    └── OutOfTimeError   the function's remaining time ran out first
"""

from __future__ import annotations

from fhirpipes.errors import FhirpipesError


class DeliveryError(FhirpipesError):
    """A transient failure that outlived the retries (5xx, 429, a timeout, a dropped connection)."""


class OutOfTimeError(DeliveryError):
    """Too little of the function's time was left to try (again)."""
