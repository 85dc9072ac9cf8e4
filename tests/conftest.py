"""Fixtures the test modules share (the plain builders they use are in ``builders.py``)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import builders
import pytest

from fhirpipes import logs
from fhirpipes.dispatch import Dispatcher


@pytest.fixture(scope="module")
def dispatcher() -> Dispatcher:
    """The core's dispatcher over the built-in Patient plugin, default settings (a module may override it)."""
    return builders.dispatcher(plugins=["patient"])


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The ``fhirpipes`` logger's lines during the test, at DEBUG, as the Lambda writes them."""
    stream = io.StringIO()
    logs.configure("DEBUG", stream)
    yield stream
    logs.configure("INFO")
