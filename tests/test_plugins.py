"""Loading plugins through entry points and building the mapper registry."""

from __future__ import annotations

import types
from collections.abc import Callable

import pytest
from builders import plugin

from fhirpipes import KeyPrefix, Mapper, PluginError, hookimpl
from fhirpipes.errors import UnknownTableError
from fhirpipes.plugins import entry_points, load_registry, selected_plugins
from fhirpipes.records import parse_record
from fhirpipes.testing.stream import make_record

PATIENTS = Mapper(table="Patients", resource_type="Patient", template="patient.json.j2")


def test_builtins_register_through_entry_points() -> None:
    names = {ep.name: ep.value for ep in entry_points()}
    assert names["patient"] == "fhirpipes_patient"
    assert names["practitioner"] == "fhirpipes_practitioner"
    registry = load_registry()
    assert {"Patients", "Practitioners"} <= set(registry.tables)
    assert {info.name for info in registry.plugins} >= {"patient", "practitioner"}


def test_fhirpipes_plugins_loads_only_the_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIRPIPES_PLUGINS", "patient")
    assert selected_plugins() == {"patient"}
    assert load_registry().tables == ["Patients"]


def test_fhirpipes_plugins_is_read_from_the_environ_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIRPIPES_PLUGINS", "practitioner")
    assert load_registry(environ={"FHIRPIPES_PLUGINS": "patient"}).tables == ["Patients"]
    assert {"Patients", "Practitioners"} <= set(load_registry(environ={}).tables)


def test_fhirpipes_plugins_naming_an_unknown_plugin_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIRPIPES_PLUGINS", "patient,nosuch")
    with pytest.raises(PluginError, match="nosuch"):
        load_registry()


def test_two_plugins_claiming_one_table_name_both() -> None:
    with pytest.raises(PluginError) as caught:
        load_registry(modules={"first": plugin(PATIENTS), "second": plugin(PATIENTS)})
    assert "'first'" in str(caught.value)
    assert "'second'" in str(caught.value)


def test_a_misspelled_hook_is_a_startup_error() -> None:
    @hookimpl
    def register_mapper(register: Callable[[Mapper], None]) -> None:  # missing "s"
        register(PATIENTS)

    with pytest.raises(PluginError, match="register_mapper"):
        load_registry(modules={"typo": types.SimpleNamespace(register_mapper=register_mapper)})


def test_no_mapper_is_a_startup_error() -> None:
    with pytest.raises(PluginError, match="no mapper registered"):
        load_registry(modules={"empty": plugin()})


def test_registering_something_else_is_refused() -> None:
    @hookimpl
    def register_mappers(register: Callable[[object], None]) -> None:
        register({"table": "Patients"})

    with pytest.raises(PluginError, match="not a fhirpipes Mapper"):
        load_registry(modules={"odd": types.SimpleNamespace(register_mappers=register_mappers)})


def test_single_table_designs_route_by_match() -> None:
    patients = Mapper(
        table="Clinic",
        resource_type="Patient",
        template="p.j2",
        match=KeyPrefix(attribute="PK", prefix="PATIENT#"),
    )
    doctors = Mapper(
        table="Clinic",
        resource_type="Practitioner",
        template="d.j2",
        match=KeyPrefix(attribute="PK", prefix="DOC#"),
    )
    registry = load_registry(modules={"a": plugin(patients), "b": plugin(doctors)})

    def route(pk: str) -> Mapper:
        return registry.mapper_for(parse_record(make_record("Clinic", {"PK": pk}, keys=("PK",))))

    assert route("PATIENT#1") is patients
    assert route("DOC#7") is doctors
    with pytest.raises(UnknownTableError, match="no mapper's match"):
        route("INVOICE#3")


def test_a_match_narrows_the_default_pipe_filter() -> None:
    mapper = Mapper(
        table="Clinic", resource_type="Patient", template="p.j2", match=KeyPrefix(attribute="PK", prefix="P#")
    )
    assert mapper.pipe_filters() == [
        {"eventName": ["INSERT", "MODIFY", "REMOVE"], "dynamodb": {"Keys": {"PK": {"S": [{"prefix": "P#"}]}}}}
    ]


def test_a_mapper_without_match_beside_one_with_match_conflicts() -> None:
    with_match = Mapper(
        table="Clinic", resource_type="Patient", template="p.j2", match=KeyPrefix(attribute="PK", prefix="P#")
    )
    without = Mapper(table="Clinic", resource_type="Practitioner", template="d.j2")
    with pytest.raises(PluginError, match="claimed by plugin"):
        load_registry(modules={"a": plugin(with_match), "b": plugin(without)})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resource_type": "patient"}, "resource_type"),
        ({"fhir_version": "R3"}, "fhir_version"),
        ({"on_delete": "purge"}, "on_delete"),
        ({"table": ""}, "table"),
    ],
)
def test_mapper_checks_its_fields(kwargs: dict[str, str], message: str) -> None:
    fields = {"table": "T", "resource_type": "Patient", "template": "t.j2", **kwargs}
    with pytest.raises(PluginError, match=message):
        Mapper(**fields)  # type: ignore[arg-type]
