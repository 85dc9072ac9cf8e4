"""Builders the tests share: test plugins, dispatchers, and the items they map.

Plain functions (import them: ``from builders import plugin``); the fixtures built on them are in
``conftest.py``.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from typing import Any

from fhirpipes import Mapper, hookimpl
from fhirpipes.dispatch import Dispatcher
from fhirpipes.plugins import load_registry
from fhirpipes.settings import Settings
from fhirpipes.testing.stream import attribute_values

PYTESTER_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")
"""For pytester's inner runs: skip plugins they don't need (hypothesis' summary alone costs a second a run)."""

HEALTHLAKE = "https://healthlake.eu-west-1.amazonaws.com/datastore/0123456789abcdef0123456789abcdef/r4/"
"""An AWS HealthLake data store's FHIR base URL (made up, well formed)."""

SECRET = "Zebediah"
"""A record value that must never reach a log line, an error, a status line or CLI output."""


def plugin(*mappers: Mapper) -> types.SimpleNamespace:
    """A plugin module that registers ``mappers``, for ``load_registry(modules={name: plugin(...)})``."""

    @hookimpl
    def register_mappers(register: Callable[[Mapper], None]) -> None:
        for mapper in mappers:
            register(mapper)

    return types.SimpleNamespace(register_mappers=register_mappers)


def dispatcher(*mappers: Mapper, plugins: Iterable[str] | None = None, **settings: Any) -> Dispatcher:
    """The core's dispatcher over ``mappers`` (one test plugin), else over the installed ``plugins``
    (entry-point names; default: all of them), with `Settings` of ``settings``."""
    if mappers:
        registry = load_registry(modules={"test": plugin(*mappers)})
    else:
        registry = load_registry(only=list(plugins) if plugins is not None else None)
    return Dispatcher(registry, Settings(**settings))


def raw_mapper(**kwargs: Any) -> Mapper:
    """A mapper of the ``Raw`` table through ``template_fixtures/raw_patient.json.j2`` (a Patient)."""
    return Mapper(
        table="Raw",
        resource_type="Patient",
        template="raw_patient.json.j2",
        template_package="template_fixtures",
        **kwargs,
    )


def patient_image(item_id: str, **extra: Any) -> dict[str, Any]:
    """A Patients item as DynamoDB AttributeValues, its first name the `SECRET`."""
    return attribute_values({"id": item_id, "firstName": SECRET, "lastName": "Smith", **extra})


def put_patient(client: Any, item_id: str, **extra: Any) -> None:
    """Put a `patient_image` into the ``Patients`` table through a DynamoDB client."""
    client.put_item(TableName="Patients", Item=patient_image(item_id, **extra))
