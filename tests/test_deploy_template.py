"""`fhirpipes template`: the CloudFormation template, checked by cfn-lint and by what it must (not) say."""

from __future__ import annotations

import json
import os
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from fhirpipes import KeyPrefix, Mapper, PipeSpec
from fhirpipes.cli import main
from fhirpipes.deploy import DeployError
from fhirpipes.deploy.cloudformation import (
    CHECKOV_SKIPS,
    FHIR_AUTHS,
    TARGETS,
    TemplateOptions,
    build_template,
    to_yaml,
)
from fhirpipes.deploy.package import ZIP_COMMENT_KEY
from fhirpipes.pipes.patterns import validate_filters
from fhirpipes.plugins import load_registry
from fhirpipes.settings import Settings

ACCOUNT = "123456789012"
KEY_ARN = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DATA_KEY = {"Fn::If": ["CreateDataKey", {"Fn::GetAtt": ["DataKey", "Arn"]}, {"Ref": "DataKmsKeyArn"}]}


def stream_arn(table: str) -> str:
    return f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/{table}/stream/2024-05-01T00:00:00.000"


def lint_messages(text: str) -> list[str]:
    from cfnlint.api import ManualArgs, lint  # here: its import alone is 1.4 s, paid by the slow tests only

    matches = lint(text, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches]


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                _, then, otherwise = statement["Fn::If"]
                assert otherwise == {"Ref": "AWS::NoValue"}
                statement = then
            found.append(statement)
    return found


def sub(value: Any, variables: dict[str, str]) -> str:
    """Resolve a Fn::Sub string the way CloudFormation would, for the variables given."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    return re.sub(r"\$\{([^}]+)\}", lambda m: variables[m.group(1)], text)


@pytest.fixture(scope="module")
def registry_mappers() -> list[Mapper]:
    return load_registry().mappers


@pytest.fixture(scope="module")
def single_table_mappers() -> list[Mapper]:
    """Two mappers on one table (a single-table design) plus a table with declared Pipe settings."""
    spec = PipeSpec(batch_size=50, batching_window_seconds=5, starting_position="LATEST")
    return [
        Mapper(
            table="clinic-data.v2",
            resource_type="Patient",
            template="patient.json.j2",
            match=KeyPrefix(attribute="pk", prefix="PATIENT#"),
            pipe=spec,
        ),
        Mapper(
            table="clinic-data.v2",
            resource_type="Practitioner",
            template="patient.json.j2",
            match=KeyPrefix(attribute="pk", prefix="DOCTOR#"),
            on_delete="ignore",
            pipe=spec,
        ),
        Mapper(
            table="Encounters",
            resource_type="Encounter",
            template="patient.json.j2",
            pipe=PipeSpec(
                filters=(
                    {"eventName": ["INSERT"]},
                    {"dynamodb": {"NewImage": {"status": {"S": ["finished"]}}}},
                ),
                batch_size=1,
            ),
        ),
    ]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.slow  # cfn-lint: about a second a template
def test_the_registered_mappers_template_passes_cfn_lint(registry_mappers: list[Mapper], target: str) -> None:
    text = to_yaml(build_template(registry_mappers, TemplateOptions(target=target)))
    assert lint_messages(text) == []


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
@pytest.mark.slow  # cfn-lint: about a second a template
def test_a_single_table_design_passes_cfn_lint(
    single_table_mappers: list[Mapper], target: str, arch: str
) -> None:
    options = TemplateOptions(target=target, arch=arch, python="3.13", plugins=("patient",))
    text = to_yaml(build_template(single_table_mappers, options))
    assert lint_messages(text) == []


@pytest.mark.slow  # cfn-lint: about a second a template
def test_cfn_lint_would_catch_the_originals_ignored_lambda_parameters(registry_mappers: list[Mapper]) -> None:
    # The check is only worth something if cfn-lint sees the kind of mistake the original made.
    text = to_yaml(build_template(registry_mappers))
    broken = text.replace(
        "      Enrichment:\n",
        "      EnrichmentParameters:\n        LambdaParameters:\n          InvocationType: REQUEST_RESPONSE\n"
        "      Enrichment:\n",
        1,
    )
    assert any(message.startswith("E3002") for message in lint_messages(broken))


def test_one_pipe_per_table_with_the_mappers_filters_and_settings(single_table_mappers: list[Mapper]) -> None:
    template = build_template(single_table_mappers)
    pipes = resources_of(template, "AWS::Pipes::Pipe")
    assert set(pipes) == {"ClinicDataV2Pipe", "EncountersPipe"}

    clinic = pipes["ClinicDataV2Pipe"]["Properties"]
    source = clinic["SourceParameters"]
    patterns = [json.loads(f["Pattern"]) for f in source["FilterCriteria"]["Filters"]]
    assert patterns == single_table_mappers[0].pipe_filters() + single_table_mappers[1].pipe_filters()
    stream = source["DynamoDBStreamParameters"]
    assert (stream["BatchSize"], stream["MaximumBatchingWindowInSeconds"], stream["StartingPosition"]) == (
        50,
        5,
        "LATEST",
    )
    assert clinic["Source"] == {"Ref": "ClinicDataV2StreamArn"}

    encounters = pipes["EncountersPipe"]["Properties"]["SourceParameters"]
    assert [json.loads(f["Pattern"]) for f in encounters["FilterCriteria"]["Filters"]] == [
        {"eventName": ["INSERT"]},
        {"dynamodb": {"NewImage": {"status": {"S": ["finished"]}}}},
    ]
    assert encounters["DynamoDBStreamParameters"]["BatchSize"] == 1


@pytest.mark.parametrize("target", TARGETS)
def test_every_embedded_filter_is_one_eventbridge_accepts(
    registry_mappers: list[Mapper], single_table_mappers: list[Mapper], target: str
) -> None:
    for mappers in (registry_mappers, single_table_mappers):
        template = build_template(mappers, TemplateOptions(target=target))
        for pipe in resources_of(template, "AWS::Pipes::Pipe").values():
            filters = pipe["Properties"]["SourceParameters"]["FilterCriteria"]["Filters"]
            assert 1 <= len(filters) <= 5
            assert all(isinstance(f["Pattern"], str) and len(f["Pattern"]) <= 4096 for f in filters)
            validate_filters(filters)


def test_the_enrichment_is_the_shared_function_with_no_input_template(registry_mappers: list[Mapper]) -> None:
    template = build_template(registry_mappers)
    text = to_yaml(template)
    assert "InputTemplate" not in text and "LambdaParameters" not in text
    function = template["Resources"]["EnrichmentFunction"]["Properties"]
    assert function["Handler"] == "fhirpipes.handler.handler"
    assert function["Code"] == {"S3Bucket": {"Ref": "CodeS3Bucket"}, "S3Key": {"Ref": "CodeS3Key"}}
    for pipe in resources_of(template, "AWS::Pipes::Pipe").values():
        assert pipe["Properties"]["Enrichment"] == {"Fn::GetAtt": ["EnrichmentFunction", "Arn"]}
        assert "EnrichmentParameters" not in pipe["Properties"]


def test_a_poison_batch_goes_to_a_dead_letter_queue_instead_of_blocking_the_shard(
    registry_mappers: list[Mapper],
) -> None:
    template = build_template(registry_mappers, TemplateOptions(max_retries=2, max_record_age_seconds=600))
    queues = resources_of(template, "AWS::SQS::Queue")
    for name, pipe in resources_of(template, "AWS::Pipes::Pipe").items():
        stream = pipe["Properties"]["SourceParameters"]["DynamoDBStreamParameters"]
        assert stream["MaximumRetryAttempts"] == 2
        assert stream["MaximumRecordAgeInSeconds"] == 600
        assert stream["OnPartialBatchItemFailure"] == "AUTOMATIC_BISECT"
        dlq = stream["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        assert dlq in queues and dlq.startswith(name.removesuffix("Pipe"))


def test_each_pipe_role_reaches_only_its_own_stream_function_target_and_queue(
    single_table_mappers: list[Mapper],
) -> None:
    for target in TARGETS:
        template = build_template(single_table_mappers, TemplateOptions(target=target))
        for name, pipe in resources_of(template, "AWS::Pipes::Pipe").items():
            logical = name.removesuffix("Pipe")
            role = template["Resources"][pipe["Properties"]["RoleArn"]["Fn::GetAtt"][0]]
            assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
                "Service": "pipes.amazonaws.com"
            }
            by_action: dict[str, list[Any]] = {}
            for statement in statements(role):
                assert statement["Effect"] == "Allow"
                for action in statement["Action"]:
                    assert "*" not in action
                    by_action.setdefault(action, []).append(statement["Resource"])
            own_stream = {"Ref": f"{logical}StreamArn"}
            for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"):
                assert by_action.pop(action) == [own_stream]
            assert by_action.pop("dynamodb:ListStreams") == ["*"]  # no resource-level permissions
            assert by_action.pop("kms:Decrypt") == [{"Ref": f"{logical}KmsKeyArn"}, DATA_KEY]
            for action in ("kms:DescribeKey", "kms:GenerateDataKey"):
                assert by_action.pop(action) == [DATA_KEY]
            invoked = by_action.pop("lambda:InvokeFunction")
            assert invoked[0] == {"Fn::GetAtt": ["EnrichmentFunction", "Arn"]}
            if target == "fhir":  # the sink is the target: invoking it is sending to it
                assert invoked[1:] == [pipe["Properties"]["Target"]]
                by_action["lambda:InvokeFunction"] = invoked[1:]
            else:
                assert invoked == invoked[:1]
            target_arn = pipe["Properties"]["Target"]
            dlq = pipe["Properties"]["SourceParameters"]["DynamoDBStreamParameters"]["DeadLetterConfig"][
                "Arn"
            ]
            remaining = [resource for resources in by_action.values() for resource in resources]
            assert dlq in by_action["sqs:SendMessage"] and target_arn in remaining
            assert all(resource in (dlq, target_arn) for resource in remaining)


def test_the_kms_statement_is_there_only_when_a_key_is_given(registry_mappers: list[Mapper]) -> None:
    template = build_template(registry_mappers)
    role = template["Resources"]["PatientsPipeRole"]
    (conditional,) = [
        s for s in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] if "Fn::If" in s
    ]
    condition = conditional["Fn::If"][0]
    assert template["Conditions"][condition] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PatientsKmsKeyArn"}, ""]}]
    }
    assert template["Parameters"]["PatientsKmsKeyArn"]["Default"] == ""


def test_the_function_role_writes_only_its_own_log_group(registry_mappers: list[Mapper]) -> None:
    template = build_template(registry_mappers)
    role = template["Resources"]["EnrichmentRole"]
    logs, environment = statements(role)
    assert sorted(logs["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert logs["Resource"] == {"Fn::GetAtt": ["EnrichmentLogGroup", "Arn"]}
    assert (environment["Action"], environment["Resource"]) == (["kms:Decrypt"], DATA_KEY)
    assert "ManagedPolicyArns" not in role["Properties"]
    logging = template["Resources"]["EnrichmentFunction"]["Properties"]["LoggingConfig"]
    assert logging == {"LogGroup": {"Ref": "EnrichmentLogGroup"}}


def test_pipe_names_in_the_environment_are_the_pipes_names(registry_mappers: list[Mapper]) -> None:
    template = build_template(
        registry_mappers, TemplateOptions(environment={"FHIRPIPES_PATIENT_MRN_SYSTEM": "x"})
    )
    variables = {"PipeNamePrefix": "prod"}
    env = template["Resources"]["EnrichmentFunction"]["Properties"]["Environment"]["Variables"]
    assert env["FHIRPIPES_PATIENT_MRN_SYSTEM"] == "x"
    settings = Settings.from_env(
        {"FHIRPIPES_PIPE_NAMES": sub(env["FHIRPIPES_PIPE_NAMES"], variables), "FHIRPIPES_ON_ERROR": "emit"}
    )
    pipes = resources_of(template, "AWS::Pipes::Pipe")
    names = {pipe["Properties"]["Source"]["Ref"].removesuffix("StreamArn"): pipe for pipe in pipes.values()}
    assert settings.pipe_names == {
        table: sub(names[table]["Properties"]["Name"], variables)
        for table in {m.table for m in registry_mappers}
    }
    for name in settings.pipe_names.values():
        assert len(name) <= 64 and re.fullmatch(r"[\.\-_A-Za-z0-9]+", name)


def test_a_stream_arn_parameter_takes_only_that_tables_stream(registry_mappers: list[Mapper]) -> None:
    template = build_template(registry_mappers)
    pattern = template["Parameters"]["PatientsStreamArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, stream_arn("Patients"))
    assert not re.fullmatch(pattern, stream_arn("Practitioners"))
    assert not re.fullmatch(pattern, f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/Patients")


def test_the_template_text_is_stable(registry_mappers: list[Mapper]) -> None:
    first = to_yaml(build_template(registry_mappers))
    assert first == to_yaml(build_template(registry_mappers))
    assert "*id0" not in first and "&id0" not in first  # CloudFormation rejects YAML aliases


def _mapper(table: str = "T", **pipe: Any) -> Mapper:
    return Mapper(table=table, resource_type="Patient", template="patient.json.j2", pipe=PipeSpec(**pipe))


@pytest.mark.parametrize(
    ("mappers", "reason"),
    [
        ([_mapper(filters=tuple({"eventName": [f"E{i}"]} for i in range(6)))], "at most 5"),
        ([_mapper(filters=({"dynamodb": {"Keys": {"id": {"S": ["x" * 5000]}}}},))], "the maximum is 4096"),
        ([_mapper(filters=({"eventName": "INSERT"},))], "EventBridge would refuse"),
        ([_mapper(batch_size=10), _mapper(batch_size=20)], "different Pipe settings"),
        ([], "no mapper"),
    ],
)
def test_what_a_pipe_cannot_take_is_refused(mappers: list[Mapper], reason: str) -> None:
    with pytest.raises(DeployError, match=reason):
        build_template(mappers)


def test_the_stacks_choices_are_the_settings_choices(registry_mappers: list[Mapper]) -> None:
    """One list each: the parameters offer exactly what the function accepts, and it accepts every one."""
    from fhirpipes.settings import LOG_LEVELS, ON_ERROR_CHOICES

    parameters = build_template(registry_mappers)["Parameters"]
    assert parameters["LogLevel"]["AllowedValues"] == list(LOG_LEVELS)
    assert parameters["OnError"]["AllowedValues"] == list(ON_ERROR_CHOICES)
    assert "CRITICAL" in parameters["LogLevel"]["AllowedValues"]  # Lambda's FATAL: once refused here only
    for level in parameters["LogLevel"]["AllowedValues"]:
        assert Settings.from_env({"FHIRPIPES_LOG_LEVEL": level}).log_level == level
    for on_error in parameters["OnError"]["AllowedValues"]:
        assert Settings.from_env({"FHIRPIPES_ON_ERROR": on_error}).on_error == on_error
    assert parameters["LogLevel"]["Default"] == Settings().log_level
    assert parameters["OnError"]["Default"] == Settings().on_error


def test_the_cli_prints_the_template(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["template", "--target", "sqs"])
    assert result.exit_code == 0, result.output
    template = yaml.safe_load(result.output)
    assert "AWS::Pipes::Pipe" in {r["Type"] for r in template["Resources"].values()}
    out = tmp_path / "stack.yaml"
    result = CliRunner().invoke(main, ["template", "--out", str(out), "--memory", "1024"])
    assert result.exit_code == 0, result.output
    assert (
        yaml.safe_load(out.read_text())["Resources"]["EnrichmentFunction"]["Properties"]["MemorySize"] == 1024
    )


def _fake_package(path: Path, **manifest: Any) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fhirpipes/__init__.py", "")
        archive.comment = json.dumps({ZIP_COMMENT_KEY: manifest}).encode()
    return path


def test_the_cli_takes_the_runtime_from_the_package(tmp_path: Path) -> None:
    tables = sorted(load_registry().tables)
    package = _fake_package(tmp_path / "p.zip", python="3.12", architecture="arm64", tables=tables)
    result = CliRunner().invoke(main, ["template", "--package", str(package)])
    assert result.exit_code == 0, result.output
    function = yaml.safe_load(result.output)["Resources"]["EnrichmentFunction"]["Properties"]
    assert (function["Runtime"], function["Architectures"]) == ("python3.12", ["arm64"])


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--python", "3.9"], "unknown Python version '3.9'"),
        (["--arch", "sparc"], "unknown architecture 'sparc'"),
        (["--target", "kinesis"], "unknown target 'kinesis'"),
        (["--target", "fhir", "--fhir-auth", "basic"], "unknown FHIR auth 'basic'"),
        (["--target", "fhir", "--sink-timeout", "0"], "--sink-timeout"),
        (["--max-record-age", "10"], "--max-record-age"),
        (["--plugin", "nonesuch"], "nonesuch"),
        (["--env", "AWS_REGION=x"], "AWS_REGION"),
        (["--env", "NOEQUALS"], "NAME=VALUE"),
    ],
)
def test_the_cli_refuses_with_a_one_line_reason(args: list[str], reason: str) -> None:
    result = CliRunner().invoke(main, ["template", *args])
    assert result.exit_code != 0
    assert reason in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_cli_refuses_a_package_for_another_runtime_or_missing_tables(tmp_path: Path) -> None:
    tables = sorted(load_registry().tables)
    package = _fake_package(tmp_path / "p.zip", python="3.12", architecture="arm64", tables=tables)
    result = CliRunner().invoke(main, ["template", "--package", str(package), "--arch", "x86_64"])
    assert result.exit_code != 0 and "differs from the package's arm64" in result.output
    stale = _fake_package(tmp_path / "s.zip", python="3.11", architecture="x86_64", tables=tables[:1])
    if len(tables) > 1:
        result = CliRunner().invoke(main, ["template", "--package", str(stale)])
        assert result.exit_code != 0 and "rebuild it" in result.output
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("x", "")
    result = CliRunner().invoke(main, ["template", "--package", str(other)])
    assert result.exit_code != 0 and "not a fhirpipes package" in result.output


# --- PHI under a customer managed key, concurrency, error events, trust, alarms -------------------


def with_key_given(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation resolves it when ``DataKmsKeyArn`` is given (its default set)."""
    given = json.loads(json.dumps(template))
    given["Parameters"]["DataKmsKeyArn"]["Default"] = KEY_ARN
    return given


@pytest.mark.parametrize("target", TARGETS)
def test_every_place_phi_lands_is_encrypted_with_the_data_key(
    registry_mappers: list[Mapper], target: str
) -> None:
    template = build_template(registry_mappers, TemplateOptions(target=target))
    groups = resources_of(template, "AWS::Logs::LogGroup")
    queues = resources_of(template, "AWS::SQS::Queue")
    pipes = resources_of(template, "AWS::Pipes::Pipe")
    # dead-letter (and target) queues, and the sink's error queue
    assert len(queues) == len(pipes) * (2 if target == "sqs" else 1) + (target == "fhir")
    # the function's (and the targets', or the sink's)
    assert len(groups) == 1 + (len(pipes) if target == "logs" else 0) + (target == "fhir")
    for group in groups.values():
        assert group["Properties"]["KmsKeyId"] == DATA_KEY
    for queue in queues.values():
        assert queue["Properties"]["KmsMasterKeyId"] == DATA_KEY
        assert "SqsManagedSseEnabled" not in queue["Properties"]
    for pipe in pipes.values():
        assert pipe["Properties"]["KmsKeyIdentifier"] == DATA_KEY
    for function in resources_of(template, "AWS::Lambda::Function").values():
        assert function["Properties"]["KmsKeyArn"] == DATA_KEY
    buses = resources_of(template, "AWS::Events::EventBus")
    assert len(buses) == (target == "eventbridge")
    for bus in buses.values():
        assert bus["Properties"]["KmsKeyIdentifier"] == DATA_KEY


def test_without_a_key_the_stack_creates_one_that_logs_and_eventbridge_may_use() -> None:
    template = build_template(load_registry().mappers, TemplateOptions(target="eventbridge"))
    assert template["Parameters"]["DataKmsKeyArn"]["Default"] == ""
    assert template["Conditions"]["CreateDataKey"] == {"Fn::Equals": [{"Ref": "DataKmsKeyArn"}, ""]}
    key = template["Resources"]["DataKey"]
    assert key["Condition"] == "CreateDataKey"
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"  # the retained logs need it
    assert key["Properties"]["EnableKeyRotation"] is True
    by_sid = {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    assert by_sid["CloudWatchLogsEncrypts"]["Principal"] == {
        "Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}
    }
    assert "kms:EncryptionContext:aws:logs:arn" in by_sid["CloudWatchLogsEncrypts"]["Condition"]["ArnLike"]
    bus = by_sid["EventBridgeEncryptsTheBus"]
    assert sub(bus["Condition"]["ArnEquals"]["aws:SourceArn"], {**AWS, "PipeNamePrefix": "prod"}) == (
        f"arn:aws:events:eu-west-1:{ACCOUNT}:event-bus/prod-fhir"
    )
    assert template["Resources"]["TargetEventBus"]["Properties"]["Name"] == {
        "Fn::Sub": "${PipeNamePrefix}-fhir"
    }
    logs_only = build_template(load_registry().mappers, TemplateOptions(target="logs"))
    sids = [s["Sid"] for s in logs_only["Resources"]["DataKey"]["Properties"]["KeyPolicy"]["Statement"]]
    assert sids == ["AccountAdministersTheKey", "CloudWatchLogsEncrypts"]
    pattern = template["Parameters"]["DataKmsKeyArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, KEY_ARN) and re.fullmatch(pattern, "")
    assert not re.fullmatch(
        pattern, f"arn:aws:kms:eu-west-1:{ACCOUNT}:alias/phi"
    )  # log groups need a key ARN


def test_reserved_concurrency_is_a_parameter_with_an_opt_out(registry_mappers: list[Mapper]) -> None:
    template = build_template(registry_mappers)
    parameter = template["Parameters"]["ReservedConcurrency"]
    assert parameter["Type"] == "Number" and parameter["MinValue"] == -1
    assert parameter["Default"] == 10 * len({m.table for m in registry_mappers})
    function = template["Resources"]["EnrichmentFunction"]["Properties"]
    assert function["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert template["Conditions"]["ReserveConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, -1]}]
    }


def test_error_events_go_to_the_bus_with_their_own_detail_type(registry_mappers: list[Mapper]) -> None:
    from fhirpipes.dispatch import Dispatcher
    from fhirpipes.pipes.input_template import render_input_template
    from fhirpipes.testing.stream import make_record

    template = build_template(registry_mappers, TemplateOptions(target="eventbridge"))
    pipes = resources_of(template, "AWS::Pipes::Pipe")
    (path,) = {
        p["Properties"]["TargetParameters"]["EventBridgeEventBusParameters"]["DetailType"]
        for p in pipes.values()
    }
    patient = next(m for m in registry_mappers if m.table == "Patients")
    good = make_record("Patients", {"id": "p1", "lastName": "Doe"}, event_id="good")
    poison = make_record(
        "Patients", {"id": "p2", "lastName": "Doe", "birthDate": "13/07/1991"}, event_id="bad"
    )
    events = Dispatcher(load_registry(), Settings.from_env({})).map_batch([good, poison])
    assert [e["details"]["command"] for e in events] == ["PUT", "ERROR"]
    # Pipes resolves a dynamic path as an input template resolves <path>: on each event of the batch.
    detail_types = [render_input_template(f"<{path}>", event) for event in events]
    assert detail_types == [f"{patient.resource_type}Change", f"{patient.resource_type}MappingFailed"]


AWS = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": ACCOUNT}


def test_only_its_own_pipe_may_assume_a_pipe_role(single_table_mappers: list[Mapper]) -> None:
    template = build_template(single_table_mappers)
    variables = {**AWS, "PipeNamePrefix": "prod"}
    for pipe in resources_of(template, "AWS::Pipes::Pipe").values():
        role = template["Resources"][pipe["Properties"]["RoleArn"]["Fn::GetAtt"][0]]
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        condition = trust["Condition"]
        assert condition["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        name = sub(pipe["Properties"]["Name"], variables)
        assert sub(condition["ArnEquals"]["aws:SourceArn"], variables) == (
            f"arn:aws:pipes:eu-west-1:{ACCOUNT}:pipe/{name}"
        )


def test_each_table_has_an_alarm_on_the_functions_failed_records(single_table_mappers: list[Mapper]) -> None:
    from fhirpipes import metrics

    template = build_template(single_table_mappers)
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    failed = {
        a["Properties"]["Dimensions"][0]["Value"]: a["Properties"]
        for a in alarms.values()
        if a["Properties"]["Namespace"] == metrics.NAMESPACE
    }
    assert set(failed) == {"clinic-data.v2", "Encounters"}  # the table names the function emits
    for alarm in failed.values():
        assert (alarm["MetricName"], alarm["Statistic"]) == ("RecordsFailed", "Sum")
        assert alarm["Dimensions"] == [{"Name": "Table", "Value": alarm["Dimensions"][0]["Value"]}]
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert alarm["TreatMissingData"] == "notBreaching"  # no batch, no metric: not a failure
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }
    dead = [a["Properties"] for a in alarms.values() if a["Properties"]["Namespace"] == "AWS/SQS"]
    queues = {d["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for d in dead}
    assert queues == {"ClinicDataV2DeadLetterQueue", "EncountersDeadLetterQueue"}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.slow  # cfn-lint: about a second a template
def test_the_template_with_a_given_key_passes_cfn_lint(registry_mappers: list[Mapper], target: str) -> None:
    template = with_key_given(build_template(registry_mappers, TemplateOptions(target=target)))
    assert lint_messages(to_yaml(template)) == []


# --- checkov --------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def checkov_executable() -> str:
    """The checkov that `make setup-test` installs in its own venv (its pins would downgrade ours)."""
    found = os.environ.get("FHIRPIPES_CHECKOV") or str(REPO / ".venv" / "checkov" / "bin" / "checkov")
    if not Path(found).is_file():
        pytest.fail(f"no checkov at {found}: run `make setup-test` (or set FHIRPIPES_CHECKOV)")
    return found


@pytest.mark.slow
def test_checkov_finds_nothing_that_applies_in_any_variant(
    registry_mappers: list[Mapper], single_table_mappers: list[Mapper], tmp_path: Path
) -> None:
    variants: dict[str, dict[str, Any]] = {}
    kinds = [(target, "sigv4") for target in TARGETS] + [("fhir", auth) for auth in FHIR_AUTHS[1:]]
    for target, auth in kinds:
        for label, mappers in (("registry", registry_mappers), ("single-table", single_table_mappers)):
            template = build_template(mappers, TemplateOptions(target=target, fhir_auth=auth))
            kind = f"{target}-{auth}" if target == "fhir" else target
            variants[f"{kind}-{label}-created-key"] = template
            variants[f"{kind}-{label}-given-key"] = with_key_given(template)
    # The check is only worth something if checkov sees the mistakes the issue reported.
    broken = json.loads(json.dumps(variants["logs-registry-created-key"]))
    del broken["Resources"]["PatientsTargetLogGroup"]["Properties"]["KmsKeyId"]
    del broken["Resources"]["EnrichmentFunction"]["Properties"]["ReservedConcurrentExecutions"]
    variants["broken"] = broken
    for name, template in variants.items():
        (tmp_path / f"{name}.yaml").write_text(to_yaml(template))

    done = subprocess.run(
        [checkov_executable(), "-d", str(tmp_path), "--framework", "cloudformation", "--skip-download",
         "--output", "json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr  # 1: failed checks, which the assertions below name
    results = json.loads(done.stdout)["results"]

    def by_file(kind: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for check in results[kind]:
            found.setdefault(Path(check["file_path"]).stem, set()).add(check["check_id"])
        return found

    failed, passed, skipped = by_file("failed_checks"), by_file("passed_checks"), by_file("skipped_checks")
    assert failed.pop("broken") == {"CKV_AWS_158", "CKV_AWS_115"}
    assert failed == {}
    allowed = {check for checks in CHECKOV_SKIPS.values() for check, _ in checks}
    for name in variants:
        if name == "broken":
            continue
        # The checks the issue reported ran and passed on every variant.
        assert {"CKV_AWS_158", "CKV_AWS_27", "CKV_AWS_115", "CKV_AWS_173"} <= passed[name], name
        assert skipped[name] <= allowed, name
    for check in results["skipped_checks"]:
        assert check["check_id"] in allowed and check["check_result"]["suppress_comment"], check["check_id"]


# --- the sink (--target fhir) ---------------------------------------------------------------------


def sink_template(mappers: list[Mapper], auth: str) -> dict[str, Any]:
    return build_template(mappers, TemplateOptions(target="fhir", fhir_auth=auth, sink_timeout_seconds=90))


@pytest.mark.parametrize("auth", FHIR_AUTHS)
@pytest.mark.slow  # cfn-lint: about a second a template
def test_the_sink_variants_pass_cfn_lint(
    registry_mappers: list[Mapper], single_table_mappers: list[Mapper], auth: str
) -> None:
    for mappers in (registry_mappers, single_table_mappers):
        template = sink_template(mappers, auth)
        assert lint_messages(to_yaml(template)) == []
        assert lint_messages(to_yaml(with_key_given(template))) == []


@pytest.mark.parametrize("auth", FHIR_AUTHS)
def test_each_pipe_delivers_to_the_sink_synchronously(single_table_mappers: list[Mapper], auth: str) -> None:
    import importlib

    template = sink_template(single_table_mappers, auth)
    sink = template["Resources"]["SinkFunction"]["Properties"]
    enrichment = template["Resources"]["EnrichmentFunction"]["Properties"]
    assert sink["Handler"] == "fhirpipes.sink.handler" and sink["Timeout"] == 90
    module, _, name = sink["Handler"].rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))  # what Lambda will resolve
    for key in ("Code", "Runtime", "Architectures", "KmsKeyArn"):
        assert sink[key] == enrichment[key]  # the same zip, runtime and key
    assert sink["Role"] == {"Fn::GetAtt": ["SinkRole", "Arn"]}
    pipes = resources_of(template, "AWS::Pipes::Pipe")
    assert len(pipes) == 2
    for pipe in pipes.values():
        assert pipe["Properties"]["Target"] == {"Fn::GetAtt": ["SinkFunction", "Arn"]}
        # Its batchItemFailures only reach the Pipe from a synchronous invocation.
        assert pipe["Properties"]["TargetParameters"] == {
            "LambdaFunctionParameters": {"InvocationType": "REQUEST_RESPONSE"}
        }


def resolve(value: Any, variables: dict[str, str]) -> str:
    return variables[value["Ref"]] if isinstance(value, dict) and "Ref" in value else sub(value, variables)


SECRET_ARN = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:fhir/token-AbCdEf"
DATASTORE = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("auth", "given", "url", "expected_auth"),
    [
        (
            "sigv4",
            {"HealthLakeDatastoreId": DATASTORE},
            f"https://healthlake.eu-west-1.amazonaws.com/datastore/{DATASTORE}/r4/",
            "sigv4",
        ),
        ("secret", {"FhirUrl": "https://fhir.example.org/r4/", "FhirSecretArn": SECRET_ARN},
         "https://fhir.example.org/r4/", f"secret:{SECRET_ARN}"),
        ("none", {"FhirUrl": "http://fhir.internal:8080/fhir/"}, "http://fhir.internal:8080/fhir/", "none"),
    ],
)  # fmt: skip
def test_the_sinks_environment_is_settings_the_sink_accepts(
    registry_mappers: list[Mapper], auth: str, given: dict[str, str], url: str, expected_auth: str
) -> None:
    from fhirpipes.sink import SinkSettings

    template = sink_template(registry_mappers, auth)
    for name, value in given.items():
        assert re.fullmatch(template["Parameters"][name]["AllowedPattern"], value), name
    queue = f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/stack-SinkErrorQueue-1"
    variables = {
        **AWS,
        "AWS::URLSuffix": "amazonaws.com",
        **given,
        "FhirBundleSize": "100",
        "SinkErrorQueue": queue,
        "LogLevel": "INFO",
    }
    env = template["Resources"]["SinkFunction"]["Properties"]["Environment"]["Variables"]
    settings = SinkSettings.from_env({name: resolve(value, variables) for name, value in env.items()})
    assert (settings.fhir_url, settings.auth, settings.bundle_size) == (url, expected_auth, 100)
    assert settings.error_queue == queue
    if auth == "sigv4":
        assert settings.region == "eu-west-1"
        arn = sub(template["Outputs"]["HealthLakeDatastoreArn"]["Value"], variables)
        assert arn == f"arn:aws:healthlake:eu-west-1:{ACCOUNT}:datastore/fhir/{DATASTORE}"
    if auth == "secret":
        pattern = template["Parameters"]["FhirUrl"]["AllowedPattern"]
        assert not re.fullmatch(pattern, "http://fhir.example.org/r4/")  # a token only over TLS


@pytest.mark.parametrize("auth", FHIR_AUTHS)
def test_the_sink_role_reaches_only_its_log_group_queue_and_store(
    registry_mappers: list[Mapper], auth: str
) -> None:
    template = sink_template(registry_mappers, auth)
    role = template["Resources"]["SinkRole"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }
    assert "ManagedPolicyArns" not in role["Properties"]
    by_action: dict[str, list[Any]] = {}
    for statement in statements(role):
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            assert "*" not in action
            by_action.setdefault(action, []).append(statement["Resource"])
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        assert by_action.pop(action) == [{"Fn::GetAtt": ["SinkLogGroup", "Arn"]}]
    assert by_action.pop("sqs:SendMessage") == [{"Fn::GetAtt": ["SinkErrorQueue", "Arn"]}]
    # The data key: the environment and the error queue (first), then the store's own key, if any.
    decrypt, generate = by_action.pop("kms:Decrypt"), by_action.pop("kms:GenerateDataKey")
    assert decrypt[0] == generate[0] == DATA_KEY
    if auth == "sigv4":
        datastore = {
            "Fn::Sub": "arn:${AWS::Partition}:healthlake:${AWS::Region}:${AWS::AccountId}"
            ":datastore/fhir/${HealthLakeDatastoreId}"
        }
        own_key = {"Ref": "HealthLakeKmsKeyArn"}
        assert by_action == {
            **{f"healthlake:{verb}Resource": [datastore] for verb in ("Create", "Delete", "Read", "Update")},
            "kms:DescribeKey": [own_key],
        }
        assert decrypt == generate == [DATA_KEY, own_key]
        assert template["Conditions"]["HealthLakeHasKmsKey"] == {"Fn::Not": [{"Fn::Equals": [own_key, ""]}]}
    elif auth == "secret":
        assert by_action == {"secretsmanager:GetSecretValue": [{"Ref": "FhirSecretArn"}]}
        assert decrypt == [DATA_KEY, {"Ref": "FhirSecretKmsKeyArn"}] and generate == [DATA_KEY]
        assert template["Conditions"]["FhirSecretHasKmsKey"] == {
            "Fn::Not": [{"Fn::Equals": [{"Ref": "FhirSecretKmsKeyArn"}, ""]}]
        }
    else:
        assert by_action == {} and decrypt == generate == [DATA_KEY]


def test_the_sink_has_alarms_on_its_errors_and_its_undelivered_events(registry_mappers: list[Mapper]) -> None:
    template = sink_template(registry_mappers, "sigv4")
    alarms = [a["Properties"] for a in resources_of(template, "AWS::CloudWatch::Alarm").values()]
    (errors,) = [a for a in alarms if (a["Namespace"], a["MetricName"]) == ("AWS/Lambda", "Errors")]
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "SinkFunction"}}]
    queued = [
        a
        for a in alarms
        if a["Namespace"] == "AWS/SQS" and a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] == "SinkErrorQueue"
    ]
    assert len(queued) == 1 and queued[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    for alarm in (errors, queued[0]):
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }
    sink = template["Resources"]["SinkFunction"]["Properties"]
    assert sink["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveSinkConcurrency", {"Ref": "SinkReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }


def test_without_the_fhir_target_there_is_no_sink(registry_mappers: list[Mapper]) -> None:
    for target in TARGETS[:-1]:
        template = build_template(registry_mappers, TemplateOptions(target=target))
        assert not [name for name in template["Resources"] if name.startswith("Sink")]
        assert (
            "HealthLakeDatastoreId" not in template["Parameters"] and "FhirUrl" not in template["Parameters"]
        )


def test_the_cli_emits_the_sink_for_healthlake_or_a_secret() -> None:
    result = CliRunner().invoke(main, ["template", "--target", "fhir"])
    assert result.exit_code == 0, result.output
    template = yaml.safe_load(result.output)
    assert "HealthLakeDatastoreId" in template["Parameters"]
    assert template["Resources"]["SinkFunction"]["Properties"]["Timeout"] == 60
    result = CliRunner().invoke(main, ["template", "--target", "fhir", "--fhir-auth", "secret"])
    assert result.exit_code == 0, result.output
    assert {"FhirUrl", "FhirSecretArn"} <= set(yaml.safe_load(result.output)["Parameters"])


def test_for_healthlake_the_enrichment_checks_its_mappers_against_r4(registry_mappers: list[Mapper]) -> None:
    def variables(options: TemplateOptions) -> dict[str, Any]:
        template = build_template(registry_mappers, options)
        found: dict[str, Any] = template["Resources"]["EnrichmentFunction"]["Properties"]["Environment"][
            "Variables"
        ]
        return found

    assert variables(TemplateOptions(target="fhir"))["FHIRPIPES_FHIR_STORE_VERSION"] == "R4"
    assert "FHIRPIPES_FHIR_STORE_VERSION" not in variables(TemplateOptions(target="fhir", fhir_auth="secret"))
    assert "FHIRPIPES_FHIR_STORE_VERSION" not in variables(TemplateOptions(target="logs"))
