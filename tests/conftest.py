"""Fixtures the test modules share (the plain builders they use are in ``builders.py``)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

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


@pytest.fixture(scope="session")
def embedded() -> Iterator[Any]:
    """One embedded AWS (DynamoDB, Streams, SQS, CloudWatch Logs) for the whole run, on 127.0.0.1."""
    from fhirpipes.pipes.embedded import EmbeddedAws

    with EmbeddedAws() as server:
        yield server


@pytest.fixture
def patients(embedded: Any) -> Any:
    """A fresh ``Patients`` table (a new stream) on the embedded server; its dynamodb client."""
    from fhirpipes.pipes.embedded import create_stream_table

    client = embedded.config.client("dynamodb")
    if "Patients" in client.list_tables()["TableNames"]:
        client.delete_table(TableName="Patients")
    create_stream_table(client, "Patients")
    return client
