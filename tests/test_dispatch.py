"""The dispatcher and the Lambda handler: routing, envelopes, deletes, unchanged MODIFYs, errors, PHI."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import builders
import pytest
from builders import raw_mapper

from fhirpipes import BatchError, ConfigurationError, Mapper, PluginError, RecordError
from fhirpipes.dispatch import Dispatcher
from fhirpipes.plugins import RegisteredMapper, Registry, load_registry
from fhirpipes.records import StreamRecord
from fhirpipes.settings import Settings
from fhirpipes.testing.stream import make_record, stream_arn

ORIGINAL_ITEM = {
    "id": "abc",
    "firstName": "John",
    "lastName": "Smith",
    "birthDate": "07-13-1991",
    "address": {"address1": "453 Ralph Road", "city": "Tampa", "state": "FL", "postalCode": "33612"},
}


def dispatcher(*mappers: Mapper, **settings: Any) -> Dispatcher:
    return builders.dispatcher(*mappers, plugins=["patient", "practitioner"], **settings)


def test_the_original_item_maps_exactly() -> None:
    record = make_record("Patients", ORIGINAL_ITEM, event_id="evt-1", sequence_number="42")
    [event] = dispatcher().map_batch([record])
    assert event == {
        "version": "1.0",
        "source": "PatientTable",
        "eventType": "PatientChange",
        "correlationId": "evt-1",
        "eventID": "evt-1",
        "details": {
            "command": "PUT",
            "entity": {
                "resourceType": "Patient",
                "id": "abc",
                "meta": {
                    "source": f"{stream_arn('Patients')}#42",
                    "tag": [{"system": "urn:fhirpipes:source-table", "code": "Patients"}],
                },
                "name": [{"family": "Smith", "given": ["John"]}],
                "birthDate": "1991-07-13",
                "address": [
                    {
                        "use": "home",
                        "line": ["453 Ralph Road"],
                        "city": "Tampa",
                        "state": "FL",
                        "postalCode": "33612",
                    }
                ],
            },
        },
    }


def test_the_output_is_what_fhir_resources_would_serialise() -> None:
    from fhir.resources.R4B.patient import Patient

    [event] = dispatcher(raw_mapper()).map_batch(
        [make_record("Raw", {"id": "1", "active": "yes", "lastName": "X"})]
    )
    entity = event["details"]["entity"]
    assert entity["active"] is True  # the model coerces "yes"; the output says what the model holds
    assert entity == json.loads(Patient.model_validate(entity).model_dump_json())


@pytest.mark.parametrize(
    "shape",
    [lambda r: [r], lambda r: {"Records": [r]}, lambda r: r],
    ids=["pipe-array", "records-object", "one-record"],
)
def test_every_accepted_batch_shape(shape: Callable[[Any], Any]) -> None:
    [event] = dispatcher().map_batch(shape(make_record("Patients", ORIGINAL_ITEM)))
    assert event["details"]["entity"]["id"] == "abc"


@pytest.mark.parametrize("event", ["text", 3, None, {"Records": "x"}])
def test_an_unreadable_batch_is_a_batch_error(event: Any) -> None:
    with pytest.raises(BatchError):
        dispatcher().map_batch(event)


def test_insert_modify_remove_address_one_resource() -> None:
    item = dict(ORIGINAL_ITEM)
    changed = dict(item, lastName="Smyth")
    events = dispatcher().map_batch(
        [
            make_record("Patients", item),
            make_record("Patients", changed, item),
            make_record("Patients", None, changed),
        ]
    )
    assert [e["details"]["command"] for e in events] == ["PUT", "PUT", "DELETE"]
    assert {e["details"]["entity"]["id"] for e in events} == {"abc"}
    deleted = events[2]["details"]["entity"]
    assert {key: deleted[key] for key in ("resourceType", "id")} == {"resourceType": "Patient", "id": "abc"}
    # A DELETE carries its lineage, as a PUT does: the FHIR store sink orders it by its stream position.
    assert deleted["meta"]["tag"] == [{"system": "urn:fhirpipes:source-table", "code": "Patients"}]


def test_remove_without_old_image_still_gets_the_id() -> None:
    record = make_record("Patients", None, None, keys={"id": "abc"}, event_name="REMOVE")
    [event] = dispatcher().map_batch([record])
    entity = event["details"]["entity"]
    assert event["details"]["command"] == "DELETE"
    assert (entity["resourceType"], entity["id"]) == ("Patient", "abc")
    assert entity["meta"]["source"] == f"{record['eventSourceARN']}#{record['dynamodb']['SequenceNumber']}"


def test_default_id_is_a_deterministic_uuid5_of_table_and_keys() -> None:
    first = dispatcher(raw_mapper()).map_batch([make_record("Raw", {"id": "1", "lastName": "A"})])
    again = dispatcher(raw_mapper()).map_batch(
        [make_record("Raw", {"id": "1", "lastName": "B"}), make_record("Raw", None, {"id": "1"})]
    )
    ids = {first[0]["details"]["entity"]["id"], *(e["details"]["entity"]["id"] for e in again)}
    assert len(ids) == 1
    assert uuid.UUID(ids.pop()).version == 5


def test_delete_policies() -> None:
    item = {"id": "1", "lastName": "A", "active": True}
    remove = make_record("Raw", None, item)
    assert dispatcher(raw_mapper(on_delete="ignore")).map_batch([remove]) == []
    [soft] = dispatcher(raw_mapper(on_delete="soft-delete")).map_batch([remove])
    assert soft["details"]["command"] == "PUT"
    assert soft["details"]["entity"]["active"] is False
    assert soft["details"]["entity"]["name"] == [{"family": "A"}]


def test_a_modify_fhir_does_not_show_yields_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    before = dict(ORIGINAL_ITEM, internalNote="x")
    after = dict(ORIGINAL_ITEM, internalNote="y")  # the template ignores internalNote
    record = make_record("Patients", after, before)
    assert dispatcher().map_batch([record]) == []
    assert len(dispatcher(skip_unchanged=False).map_batch([record])) == 1
    monkeypatch.setenv("FHIRPIPES_SKIP_UNCHANGED", "false")
    assert len(Dispatcher(load_registry(only=["patient"]), Settings.from_env()).map_batch([record])) == 1


def test_a_poison_record_becomes_an_error_event_and_the_rest_carry_on() -> None:
    bad = make_record("Patients", dict(ORIGINAL_ITEM, birthDate="13/07/1991"), event_id="bad")
    good = make_record("Patients", ORIGINAL_ITEM, event_id="good")
    events = dispatcher().map_batch([bad, "not a record", good])
    assert [e["eventType"] for e in events] == ["PatientMappingFailed", "MappingFailed", "PatientChange"]
    failed = events[0]
    assert failed["eventID"] == failed["correlationId"] == "bad"
    assert failed["details"]["command"] == "ERROR"
    assert failed["details"]["record"] == bad  # kept whole, so the target or its DLQ has it
    assert failed["details"]["error"] == {
        "code": "conversion-failed",
        "message": "fhir_date: the value is not a date in the form %m-%d-%Y",
        "path": None,
        "template": "patient.json.j2",
        "line": failed["details"]["error"]["line"],
    }
    assert isinstance(failed["details"]["error"]["line"], int)


def test_on_error_raise_fails_the_batch() -> None:
    bad = make_record("Nowhere", {"id": "1"})
    with pytest.raises(RecordError) as caught:
        dispatcher(on_error="raise").map_batch([make_record("Patients", ORIGINAL_ITEM), bad])
    assert caught.value.table == "Nowhere"
    assert caught.value.code == "unknown-table"


def test_on_error_drop_leaves_it_out_but_logs_it(log_lines: io.StringIO) -> None:
    events = dispatcher(on_error="drop").map_batch([make_record("Nowhere", {"id": "1"}, event_id="e-drop")])
    assert events == []
    [line] = [json.loads(line) for line in log_lines.getvalue().splitlines() if "e-drop" in line]
    assert line["outcome"] == "dropped"
    assert line["level"] == "ERROR"


@pytest.mark.parametrize(
    ("item", "code", "path"),
    [
        ({"id": "1", "gender": "banana"}, "invalid-code", "Patient.gender"),
        (
            {"id": "1", "telecom": [{"system": "pigeon", "value": "x"}]},
            "invalid-code",
            "Patient.telecom[0].system",
        ),
        ({"id": "1", "birthDate": "yesterday"}, "invalid-resource", "Patient.birthDate"),
        ({"id": "1", "resourceType": "Practitioner"}, "wrong-resource-type", "resourceType"),
    ],
)
def test_invalid_fhir_is_a_record_error_with_a_fhir_path(item: dict[str, Any], code: str, path: str) -> None:
    [event] = dispatcher(raw_mapper()).map_batch([make_record("Raw", item)])
    error = event["details"]["error"]
    assert (error["code"], error["path"]) == (code, path)


def test_a_context_hook_record_error_is_the_records_fault() -> None:
    def lookup(record: StreamRecord) -> Mapping[str, Any]:
        raise RecordError("the referenced clinic does not exist", path="clinicId", code="lookup-missing")

    [event] = dispatcher(raw_mapper(context=lookup)).map_batch([make_record("Raw", {"id": "1"})])
    assert event["details"]["error"]["code"] == "lookup-missing"


def test_a_context_hook_failure_that_is_not_the_records_fails_the_batch() -> None:
    def lookup(record: StreamRecord) -> Mapping[str, Any]:
        raise TimeoutError("lookup timed out")

    with pytest.raises(TimeoutError):
        dispatcher(raw_mapper(context=lookup)).map_batch([make_record("Raw", {"id": "1"})])


def test_context_hook_variables_reach_the_template() -> None:
    [event] = dispatcher(raw_mapper(context=lambda record: {"extra": "From-Lookup"})).map_batch(
        [make_record("Raw", {"id": "1", "lastName": "A"})]
    )
    assert event["details"]["entity"]["name"] == [{"family": "A", "given": ["From-Lookup"]}]


def test_a_response_over_the_pipes_limit_says_lower_the_batch_size() -> None:
    with pytest.raises(BatchError, match="lower the Pipe's batch size"):
        dispatcher(max_response_bytes=2000).map_batch([make_record("Patients", ORIGINAL_ITEM)] * 5)


def test_error_events_shed_their_records_so_that_a_poison_batch_still_fits(log_lines: io.StringIO) -> None:
    poison = {**ORIGINAL_ITEM, "gender": "banana", "note": "x" * 3000}
    batch = [make_record("Patients", poison) for _ in range(5)]
    events = dispatcher(max_response_bytes=8000).map_batch(batch)
    assert [event["details"]["command"] for event in events] == ["ERROR"] * 5
    for event, record in zip(events, batch, strict=True):
        details = event["details"]
        assert details["record"] is None and details["recordOmitted"] == "size"
        assert details["recordSource"] == {
            "table": "Patients",
            "sequenceNumber": record["dynamodb"]["SequenceNumber"],
            "eventSourceARN": record["eventSourceARN"],
        }
        assert event["eventID"] == record["eventID"] and details["error"]["code"] == "conversion-failed"
    assert '"recordsOmitted": 5' in log_lines.getvalue()
    # Under the limit, error events keep their records.
    [event] = dispatcher().map_batch(batch[:1])
    assert event["details"]["record"] == batch[0]


def test_a_record_the_runtime_could_not_encode_is_shed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EXECUTION_ENV", "AWS_Lambda_python3.12")  # writes UTF-8: a lone surrogate fails
    record = make_record("Patients", {**ORIGINAL_ITEM, "gender": "\ud800"})
    [event] = dispatcher().map_batch([record])
    assert event["details"]["recordOmitted"] == "encoding"
    assert event["details"]["error"]["code"] == "conversion-failed"


def test_a_modify_without_new_image_is_malformed() -> None:
    record = make_record("Patients", None, None, keys={"id": "abc"}, event_name="MODIFY")
    [event] = dispatcher().map_batch([record])
    assert event["details"]["error"]["code"] == "malformed-record"
    assert event["details"]["error"]["path"] == "dynamodb.NewImage"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda r: r.pop("dynamodb"), "malformed-record"),
        (lambda r: r.update(eventSourceARN="arn:aws:sqs:us-east-1:1:q"), "malformed-record"),
        (lambda r: r.update(eventName="UPSERT"), "malformed-record"),
        (lambda r: r["dynamodb"]["NewImage"].update(firstName={"X": "1"}), "malformed-record"),
        (lambda r: r.update(eventSourceARN=stream_arn("Unmapped")), "unknown-table"),
    ],
    ids=["no-dynamodb", "arn-names-no-table", "unknown-event-name", "bad-attribute-value", "unknown-table"],
)
def test_malformed_records_are_per_record_errors(mutate: Callable[[dict[str, Any]], Any], code: str) -> None:
    record = make_record("Patients", ORIGINAL_ITEM)
    mutate(record)
    events = dispatcher().map_batch([record, make_record("Patients", ORIGINAL_ITEM)])
    assert events[0]["details"]["error"]["code"] == code
    assert events[1]["details"]["command"] == "PUT"


# --- PHI: no record value reaches a log line or an exception message ------------------------

SECRETS = [f"PHI-SECRET-{n}-Zq" for n in range(12)]


def phi_records() -> list[Any]:
    s = SECRETS
    return [
        make_record("Patients", {"id": s[0], "lastName": s[1], "birthDate": s[2]}),  # conversion error
        make_record("Patients", {"id": s[3], "gender": s[4]}),  # code map error
        make_record("Raw", {"id": s[5], "gender": s[6]}),  # value set error
        make_record("Raw", {"id": s[7], "birthDate": s[8]}),  # pydantic validation error
        make_record("Nowhere", {"id": s[9]}),  # unknown table
        {**make_record("Patients", {"id": s[10]}), "eventName": s[11]},  # malformed record
        make_record("Patients", {"id": "ok", "mrn": {"N": "x"}}),  # nested value of the wrong type
    ]


def test_no_record_value_appears_in_logs_or_errors(log_lines: io.StringIO) -> None:
    patients = load_registry(only=["patient"]).mappers
    events = dispatcher(raw_mapper(), *patients).map_batch(phi_records())
    assert all(e["details"]["command"] == "ERROR" for e in events)
    assert all(secret in json.dumps(events) for secret in SECRETS)  # the error events keep the records whole
    reported = log_lines.getvalue() + json.dumps([e["details"]["error"] for e in events])
    with pytest.raises(RecordError) as caught:
        dispatcher(raw_mapper(), *patients, on_error="raise").map_batch(phi_records()[2:3])
    reported += str(caught.value) + repr(caught.value.__cause__) + repr(caught.value.__context__)
    for secret in SECRETS:
        assert secret not in reported
    assert reported.count("PHI") == 0


def test_one_json_log_line_per_record_outcome(log_lines: io.StringIO) -> None:
    dispatcher().map_batch(
        [
            make_record("Patients", ORIGINAL_ITEM, event_id="a"),
            make_record("Nowhere", {"id": "1"}, event_id="b"),
        ]
    )
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    records = [line for line in lines if "eventID" in line]
    assert [(line["eventID"], line["outcome"]) for line in records] == [("a", "mapped"), ("b", "failed")]
    assert all(
        {"timestamp", "level", "message", "table", "sequenceNumber"} <= line.keys() for line in records
    )
    [batch] = [line for line in lines if line["message"] == "batch mapped"]
    assert (batch["level"], batch["records"], batch["mapped"], batch["failed"]) == ("INFO", 2, 1, 1)


def test_log_level_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIRPIPES_LOG_LEVEL", "warning")
    assert Settings.from_env().log_level == "WARNING"


@pytest.mark.parametrize(
    ("name", "value"),
    [("FHIRPIPES_ON_ERROR", "explode"), ("FHIRPIPES_LOG_LEVEL", "LOUD"), ("FHIRPIPES_PIPE_NAMES", "[1]")],
)
def test_bad_settings_fail_at_cold_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    from fhirpipes import ConfigurationError

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env()


def test_pipe_variables_come_from_configuration_in_lambda() -> None:
    template_pipe = Mapper(
        table="Raw",
        resource_type="Patient",
        template="pipe_name.json.j2",
        template_package="template_fixtures",
    )
    [event] = dispatcher(template_pipe, pipe_names={"Raw": "raw-pipe"}).map_batch(
        [make_record("Raw", {"id": "1"})]
    )
    assert event["details"]["entity"]["name"] == [
        {
            "family": "raw-pipe",
            "given": ["arn:aws:pipes:us-east-1:123456789012:pipe/raw-pipe", stream_arn("Raw")],
        }
    ]


def test_r5_is_selectable_per_mapper() -> None:
    r5 = Mapper(
        table="Raw",
        resource_type="Patient",
        template="raw_patient.json.j2",
        template_package="template_fixtures",
        fhir_version="R5",
    )
    [event] = dispatcher(r5).map_batch([make_record("Raw", {"id": "1", "gender": "other", "lastName": "A"})])
    entity = event["details"]["entity"]
    from fhir.resources.patient import Patient as R5Patient

    assert entity == json.loads(R5Patient.model_validate(entity).model_dump_json())
    assert entity["gender"] == "other"


def test_a_resource_type_the_fhir_version_lacks_fails_at_startup() -> None:
    from fhirpipes import PluginError

    # R4B has no ActorDefinition (R5 does): refused when the registry is built, naming the plugin.
    mapper = Mapper(table="Raw", resource_type="ActorDefinition", template="t.j2")
    with pytest.raises(
        PluginError, match="'test' maps table 'Raw' to ActorDefinition, which is not a FHIR R4B"
    ):
        dispatcher(mapper)
    r5 = Mapper(table="Raw", resource_type="ActorDefinition", template="t.j2", fhir_version="R5")
    assert dispatcher(r5).registry.tables == ["Raw"]


def test_a_declared_version_attribute_is_stamped_for_the_fhir_store_sink() -> None:
    import dataclasses

    from fhirpipes.mapper import VERSION_EXTENSION
    from fhirpipes_patient import PATIENT

    versioned = dataclasses.replace(PATIENT, version_attribute="version")
    versioned_dispatcher = Dispatcher(Registry([RegisteredMapper("test", versioned)]))
    item = {**ORIGINAL_ITEM, "version": Decimal("1733097600123")}  # milliseconds: beyond 32 bits
    newer = {**item, "version": Decimal("1733097600124"), "lastName": "Smyth"}
    events = versioned_dispatcher.map_batch(
        [
            make_record("Patients", item),
            make_record("Patients", {**item, "version": Decimal("1733097600124")}, item),  # only the version
            make_record("Patients", newer, item),
            make_record("Patients", None, newer),
        ]
    )
    assert [event["details"]["command"] for event in events] == ["PUT", "PUT", "DELETE"]
    stamped = [event["details"]["entity"]["meta"]["extension"] for event in events]
    assert stamped == [
        [{"url": VERSION_EXTENSION, "valueDecimal": 1733097600123}],
        [{"url": VERSION_EXTENSION, "valueDecimal": 1733097600124}],
        [{"url": VERSION_EXTENSION, "valueDecimal": 1733097600124}],
    ]
    [error] = versioned_dispatcher.map_batch([make_record("Patients", {**item, "version": True})])
    assert error["details"]["error"]["path"] == "dynamodb.NewImage.version"


# --- Dispatcher.from_env: the one way core wires a dispatcher -------------------------------------


def test_from_env_reads_the_settings_and_the_plugins_from_the_environ_given() -> None:
    built = Dispatcher.from_env(
        {"FHIRPIPES_ON_ERROR": "drop", "FHIRPIPES_LOG_LEVEL": "warn", "FHIRPIPES_PLUGINS": "practitioner"}
    )
    assert (built.settings.on_error, built.settings.log_level) == ("drop", "WARNING")
    assert built.registry.tables == ["Practitioners"]
    everything = Dispatcher.from_env({})
    assert everything.settings == Settings()
    assert {"Patients", "Practitioners"} <= set(everything.registry.tables)


def test_from_env_takes_settings_and_plugins_given_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIRPIPES_ON_ERROR", "explode")  # never read: the settings are given
    built = Dispatcher.from_env(
        {"FHIRPIPES_PLUGINS": "practitioner"}, settings=Settings(on_error="raise"), plugins=["patient"]
    )
    assert built.settings.on_error == "raise"
    assert built.registry.tables == ["Patients"]
    with pytest.raises(ConfigurationError, match="FHIRPIPES_ON_ERROR"):
        Dispatcher.from_env()


def test_from_env_compiles_every_template_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from fhirpipes import engine

    compiled: list[tuple[str, str]] = []
    monkeypatch.setattr(engine, "check_template", lambda package, name: compiled.append((package, name)))
    Dispatcher.from_env({})
    assert compiled == []
    built = Dispatcher.from_env({}, compile_templates=True)
    assert compiled == [(m.template_package, m.template) for m in built.registry.mappers]
    assert compiled


def test_from_env_refuses_a_store_version_a_mapper_may_not_suit() -> None:
    with pytest.raises(PluginError, match="FHIRPIPES_FHIR_STORE_VERSION"):
        Dispatcher.from_env({"FHIRPIPES_FHIR_STORE_VERSION": "R5"})
