"""pytest plugin (entry point ``pytest11``): the kit's fixtures, for plugin authors' tests.

pytest loads this module in every test run of every project that has fhirpipes installed, so it
does nothing at import but register assertion rewriting for the kit's modules (a failing check
then shows the compared values): no plugin loading, no logging setup, no fhir.resources import.
Fixtures that need plugins load them when a test asks for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

# Before any import of the kit: pytest rewrites only modules imported after registration.
pytest.register_assert_rewrite("fhirpipes.testing.conformance", "fhirpipes.testing.golden")

from fhirpipes.testing import stream  # noqa: E402 -- after the registration above, on purpose


@pytest.fixture
def make_record() -> Callable[..., dict[str, Any]]:
    """Build one DynamoDB stream record: ``make_record("Patients", new={...}, old={...})``."""
    return stream.make_record


@pytest.fixture
def make_batch() -> Callable[..., list[dict[str, Any]]]:
    """Build a Pipe batch: ``make_batch("Patients", [item, ...], "INSERT")``."""
    return stream.make_batch


@pytest.fixture
def map_batch() -> Callable[..., list[dict[str, Any]]]:
    """Map a batch through the core's dispatcher: ``map_batch(batch, plugins=["patient"])``.

    Plugins load from their entry points when called (all installed ones by default), with
    default settings (a failing record becomes an error event).
    """

    def run(event: Any, plugins: Iterable[str] | None = None, **settings: Any) -> list[dict[str, Any]]:
        from fhirpipes.dispatch import Dispatcher
        from fhirpipes.settings import Settings

        return Dispatcher.from_env(settings=Settings(**settings), plugins=plugins).map_batch(event)

    return run


@pytest.fixture
def fhirpipes_log() -> Iterator[list[str]]:
    """The ``fhirpipes`` logger's lines during the test (DEBUG and up), each a JSON object's text
    as the Lambda writes it; the list fills as the test runs."""
    from fhirpipes.testing.logcapture import capture_logs

    with capture_logs() as lines:
        yield lines
