"""``fhirpipes template``: the CloudFormation template of the shared function and one Pipe per table.

What it declares (YAML, intrinsic functions in their long form so plain YAML tools read it):

* ``DataKey``: where PHI lands (the target log groups and queues, the dead-letter queues, the
  event bus, the Pipes, the function's environment and log group) is encrypted with one
  customer managed KMS key: ``DataKmsKeyArn`` if given, else a key the stack creates (rotated,
  retained with the stack's data). One key, not one per table: the event bus, the function and
  its environment are shared by every table, and one key policy is one thing to audit.
* ``EnrichmentFunction``: the shared Lambda (code from the ``CodeS3Bucket``/``CodeS3Key``
  parameters, handler ``fhirpipes.handler.handler``, ``ReservedConcurrency``), its log group
  with a retention, and a role that may only write to that log group (and decrypt its
  environment).
* Per source table: a ``<Table>StreamArn`` parameter (checked to be *that* table's stream: the
  dispatcher routes records by the table in the ARN) and an optional ``<Table>KmsKeyArn``; an
  ``AWS::Pipes::Pipe`` with the mappers' declared filters, batch size, batching window and
  starting position, the shared function as enrichment with no input template (it takes the
  stream records as they are), a target, and a retry policy that keeps a poison batch from
  blocking the shard for the stream's 24 hours (retries, a maximum record age, bisecting the
  batch, then a dead-letter queue that receives the batch's *location*, never its records).
* Per Pipe, a role that only that Pipe may assume (``aws:SourceAccount`` and ``aws:SourceArn``),
  that may read only its own stream (``dynamodb:ListStreams`` alone needs ``Resource: "*"``: it
  has no resource-level permissions), decrypt with the table's key when one is given, use the
  data key, invoke only the shared function, and send only to its target and its dead-letter queue.
* Per table, alarms on the function's ``RecordsFailed`` metric (`fhirpipes.metrics`) and on
  messages in the dead-letter queue, notifying ``AlarmTopicArn`` when one is given.
* With the ``fhir`` target, the sink (`fhirpipes.sink`): a second function from the same zip
  (handler ``fhirpipes.sink.handler``) that every Pipe invokes synchronously as its target, so its
  ``batchItemFailures`` reach the Pipe; its own log group, an error queue (undelivered events,
  whole: the data key encrypts it), alarms on its errors and on that queue, and a role that may
  only write its log group, send to that queue, and reach the one store: the HealthLake actions
  on the one data store (``fhir_auth="sigv4"``), or read the one secret (``"secret"``).

Several mappers on one table (single-table designs, each with a `match`) share one Pipe: a
shard is best read by at most two consumers, and ``FHIRPIPES_PIPE_NAMES`` maps a table to one
Pipe. Their filters are pooled (at most five); their Pipe settings must agree.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fhirpipes import metrics
from fhirpipes.deploy import DeployError
from fhirpipes.deploy.runtime import ARCHITECTURES, HANDLER, PYTHON_VERSIONS
from fhirpipes.mapper import Mapper
from fhirpipes.pipes.patterns import MAX_FILTERS, MAX_PATTERN_LENGTH, InvalidPattern, validate_filters
from fhirpipes.plugins import PLUGINS_ENV
from fhirpipes.settings import LOG_LEVELS, ON_ERROR_CHOICES

TARGETS: tuple[str, ...] = ("logs", "sqs", "eventbridge", "fhir")
FHIR_AUTHS: tuple[str, ...] = ("sigv4", "secret", "none")
"""How the sink reaches the store: HealthLake with the function role (sigv4), another FHIR server
with a Secrets Manager secret (secret) or without authentication (none)."""
SINK_HANDLER = "fhirpipes.sink.handler"
HEALTHLAKE_ACTIONS = (
    "healthlake:CreateResource",
    "healthlake:DeleteResource",
    "healthlake:ReadResource",
    "healthlake:UpdateResource",
)
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
DETAIL_TYPE_PATH = "$.eventType"
"""The eventbridge target's detail-type: a Pipes dynamic path to each event's ``eventType``."""
MAX_PIPE_NAME = 64
RESERVED_CONCURRENCY_PER_TABLE = 10
"""The default reservation per table: a Pipe invokes the function once per open stream shard."""
ALARM_PERIOD_SECONDS = 300
_KMS_KEY_ARN = r"arn:aws[a-z\-]*:kms:[a-z0-9\-]+:[0-9]{12}:key/[A-Za-z0-9\-]+"
_DATA_KEY = {"Fn::If": ["CreateDataKey", {"Fn::GetAtt": ["DataKey", "Arn"]}, {"Ref": "DataKmsKeyArn"}]}
"""The ARN of the key that encrypts the data: the one given, or the one the stack creates."""

CHECKOV_SKIPS: dict[str, tuple[tuple[str, str], ...]] = {
    "AWS::Lambda::Function": (
        (
            "CKV_AWS_116",
            "A dead-letter queue only receives failed asynchronous invocations; a Pipe invokes the "
            "enrichment and the sink synchronously and dead-letters failed batches in its own queue "
            "(the sink's undelivered events go to its error queue).",
        ),
        (
            "CKV_AWS_117",
            "The enrichment calls no network service (it maps the records it is given); the sink calls "
            "only the FHIR store's public HTTPS endpoint (HealthLake: SigV4-signed) and AWS APIs. A VPC "
            "would add ENIs, NAT or endpoints and cold-start time, and protect nothing TLS doesn't.",
        ),
    ),
}
"""Checkov checks that don't apply, by resource type, with the reason; written into each such
resource's ``Metadata`` so that any checkov run on the template skips them and says why."""

_ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RESERVED_ENV = ("FHIRPIPES_PIPE_NAMES", "FHIRPIPES_ON_ERROR", "FHIRPIPES_LOG_LEVEL", PLUGINS_ENV)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TemplateOptions:
    """What ``fhirpipes template`` asks for; the defaults are the command's."""

    python: str = "3.11"
    arch: str = "x86_64"
    target: str = "logs"
    memory_mb: int = 512
    timeout_seconds: int = 30
    max_retries: int = 3
    max_record_age_seconds: int = 3600
    plugins: tuple[str, ...] = ()
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    fhir_auth: str = "sigv4"
    """With the ``fhir`` target: one of `FHIR_AUTHS`."""
    sink_timeout_seconds: int = 60
    """With the ``fhir`` target: the sink's timeout (it retries 429s and 5xx within it)."""

    def check(self) -> None:
        """`DeployError` for a value CloudFormation or Lambda would refuse."""
        if self.python not in PYTHON_VERSIONS:
            raise DeployError(
                f"unknown Python version {self.python!r}: Lambda runtimes are {', '.join(PYTHON_VERSIONS)}"
            )
        if self.arch not in ARCHITECTURES:
            raise DeployError(f"unknown architecture {self.arch!r}: Lambda has {', '.join(ARCHITECTURES)}")
        if self.target not in TARGETS:
            raise DeployError(f"unknown target {self.target!r}: choose {', '.join(TARGETS)}")
        if self.fhir_auth not in FHIR_AUTHS:
            raise DeployError(f"unknown FHIR auth {self.fhir_auth!r}: choose {', '.join(FHIR_AUTHS)}")
        if not 1 <= self.sink_timeout_seconds <= 900:
            raise DeployError("--sink-timeout must be between 1 and 900 seconds")
        if not 128 <= self.memory_mb <= 10240:
            raise DeployError("--memory must be between 128 and 10240 MB")
        if not 1 <= self.timeout_seconds <= 900:
            raise DeployError("--timeout must be between 1 and 900 seconds")
        if not -1 <= self.max_retries <= 10000:
            raise DeployError("--max-retries must be between -1 (forever) and 10000")
        if self.max_record_age_seconds != -1 and not 60 <= self.max_record_age_seconds <= 604800:
            raise DeployError("--max-record-age must be -1 (forever) or between 60 and 604800 seconds")
        for name in self.environment:
            if not _ENV_NAME.match(name) or name.startswith("AWS_") or name in _RESERVED_ENV:
                raise DeployError(f"--env {name}: not a name the template can set")


@dataclasses.dataclass(frozen=True)
class TablePipe:
    """One source table's Pipe: its mappers and the settings they agree on."""

    table: str
    logical: str
    name_suffix: str
    mappers: tuple[Mapper, ...]
    filters: tuple[str, ...]
    """JSON text of each filter pattern, as ``FilterCriteria.Filters[].Pattern``."""
    batch_size: int
    batching_window_seconds: int
    starting_position: str


def table_pipes(mappers: Iterable[Mapper]) -> list[TablePipe]:
    """Group mappers by table, pool their filters and check them; `DeployError` if they don't fit a Pipe."""
    by_table: dict[str, list[Mapper]] = {}
    for mapper in mappers:
        by_table.setdefault(mapper.table, []).append(mapper)
    if not by_table:
        raise DeployError("no mapper registered: nothing to deploy")
    pipes: list[TablePipe] = []
    logicals: set[str] = set()
    for table, group in by_table.items():
        settings = {
            (m.pipe.batch_size, m.pipe.batching_window_seconds, m.pipe.starting_position) for m in group
        }
        if len(settings) > 1:
            raise DeployError(
                f"the mappers of table {table!r} declare different Pipe settings (batch size, batching "
                "window, starting position); one Pipe reads the table, so make them agree"
            )
        filters: list[str] = []
        for mapper in group:
            for pattern in mapper.pipe_filters():
                text = json.dumps(pattern, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
                if text not in filters:
                    filters.append(text)
        if len(filters) > MAX_FILTERS:
            raise DeployError(
                f"table {table!r}: {len(filters)} filter patterns; a Pipe takes at most {MAX_FILTERS}"
            )
        for text in filters:
            if len(text) > MAX_PATTERN_LENGTH:
                raise DeployError(
                    f"table {table!r}: a filter pattern is {len(text)} characters; "
                    f"the maximum is {MAX_PATTERN_LENGTH}"
                )
        try:
            validate_filters([{"Pattern": text} for text in filters])
        except InvalidPattern as exc:
            raise DeployError(f"table {table!r}: EventBridge would refuse a filter: {exc}") from exc
        ((batch_size, window, position),) = settings
        logical = _logical_id(table, logicals)
        logicals.add(logical)
        pipes.append(
            TablePipe(
                table=table,
                logical=logical,
                name_suffix=table if len(table) <= 40 else f"{table[:31]}-{_crc(table)}",
                mappers=tuple(group),
                filters=tuple(filters),
                batch_size=batch_size,
                batching_window_seconds=window,
                starting_position=position,
            )
        )
    return pipes


def build_template(mappers: Iterable[Mapper], options: TemplateOptions | None = None) -> dict[str, Any]:
    """The CloudFormation template (a JSON-like dict) for ``mappers``."""
    options = options or TemplateOptions()
    options.check()
    pipes = table_pipes(mappers)
    longest = max(len(pipe.name_suffix) for pipe in pipes)
    parameters: dict[str, Any] = {
        "CodeS3Bucket": {
            "Type": "String",
            "MinLength": 3,
            "Description": "S3 bucket holding the package zip.",
        },
        "CodeS3Key": {
            "Type": "String",
            "MinLength": 1,
            "Description": "S3 key of the package zip (a new key, e.g. with its sha256, updates the code).",
        },
        "PipeNamePrefix": {
            "Type": "String",
            "Default": "fhirpipes",
            "AllowedPattern": r"[\.\-_A-Za-z0-9]+",
            "MaxLength": MAX_PIPE_NAME - 1 - longest,
            "Description": "Pipe names are <prefix>-<table>; unique per account and region.",
        },
        "OnError": {
            "Type": "String",
            "Default": "emit",
            "AllowedValues": list(ON_ERROR_CHOICES),
            "Description": "A record that can't be mapped: an error event (emit), a failed batch that the "
            "Pipe retries then dead-letters (raise), or left out (drop).",
        },
        "LogLevel": {"Type": "String", "Default": "INFO", "AllowedValues": list(LOG_LEVELS)},
        "LogRetentionInDays": {
            "Type": "Number",
            "Default": 30,
            "AllowedValues": list(LOG_RETENTION_DAYS),
            "Description": "Retention of the function's and the Pipes' log groups.",
        },
        "DataKmsKeyArn": {
            "Type": "String",
            "Default": "",
            "AllowedPattern": f"({_KMS_KEY_ARN})?",
            "Description": "Customer managed KMS key (ARN) for everything that holds records or FHIR "
            "resources; empty: the stack creates one. Its policy must let CloudWatch Logs (and, with the "
            "eventbridge target, EventBridge) use it; see the README.",
        },
        "ReservedConcurrency": {
            "Type": "Number",
            "Default": RESERVED_CONCURRENCY_PER_TABLE * len(pipes),
            "MinValue": -1,
            "Description": "Concurrent executions reserved for the shared function (a Pipe runs one per "
            "open stream shard; the Pipe retries a throttled batch). -1: no reservation (an account "
            "whose limit leaves nothing to reserve). Never 0: that stops the function.",
        },
        "AlarmTopicArn": {
            "Type": "String",
            "Default": "",
            "AllowedPattern": r"(arn:aws[a-z\-]*:sns:[a-z0-9\-]+:[0-9]{12}:[A-Za-z0-9_\-]+)?",
            "Description": "SNS topic the alarms notify (failed records, dead-lettered batches); empty: none.",
        },
    }
    conditions: dict[str, Any] = {
        "CreateDataKey": {"Fn::Equals": [{"Ref": "DataKmsKeyArn"}, ""]},
        "ReserveConcurrency": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, -1]}]},
        "HasAlarmTopic": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]},
    }
    resources: dict[str, Any] = {}
    outputs: dict[str, Any] = {}

    for pipe in pipes:
        parameters[f"{pipe.logical}StreamArn"] = {
            "Type": "String",
            "AllowedPattern": (
                rf"arn:aws[a-z\-]*:dynamodb:[a-z0-9\-]+:[0-9]{{12}}:table/{re.escape(pipe.table)}/stream/.+"
            ),
            "ConstraintDescription": f"the stream ARN of table {pipe.table} (records are routed by table)",
            "Description": f"Stream ARN of the {pipe.table} table (NEW_AND_OLD_IMAGES).",
        }
        parameters[f"{pipe.logical}KmsKeyArn"] = {
            "Type": "String",
            "Default": "",
            "AllowedPattern": f"({_KMS_KEY_ARN})?",
            "Description": f"ARN of the customer managed KMS key of the {pipe.table} table, if it has one.",
        }
        conditions[f"{pipe.logical}HasKmsKey"] = {
            "Fn::Not": [{"Fn::Equals": [{"Ref": f"{pipe.logical}KmsKeyArn"}, ""]}]
        }

    resources["DataKey"] = _data_key(options)
    outputs["DataKeyArn"] = {"Value": _DATA_KEY}
    resources["EnrichmentLogGroup"] = _log_group()
    resources["EnrichmentRole"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": "fhirpipes enrichment function: writes its own log group, nothing else.",
            "AssumeRolePolicyDocument": _assume("lambda.amazonaws.com"),
            "Policies": [
                {
                    "PolicyName": "own-log-group",
                    "PolicyDocument": _policy(
                        [
                            _allow(
                                "WriteOwnLogs",
                                ["logs:CreateLogStream", "logs:PutLogEvents"],
                                {"Fn::GetAtt": ["EnrichmentLogGroup", "Arn"]},
                            ),
                            # Lambda decrypts the environment (the data key encrypts it) as this role.
                            _allow("DecryptEnvironment", ["kms:Decrypt"], _DATA_KEY),
                        ]
                    ),
                }
            ],
        },
    }
    environment: dict[str, Any] = {
        "FHIRPIPES_PIPE_NAMES": {
            "Fn::Sub": json.dumps(
                {pipe.table: f"${{PipeNamePrefix}}-{pipe.name_suffix}" for pipe in pipes},
                separators=(",", ":"),
            )
        },
        "FHIRPIPES_ON_ERROR": {"Ref": "OnError"},
        "FHIRPIPES_LOG_LEVEL": {"Ref": "LogLevel"},
    }
    if options.plugins:
        environment[PLUGINS_ENV] = ",".join(sorted(options.plugins))
    if options.target == "fhir" and options.fhir_auth == "sigv4":
        # HealthLake speaks R4: a mapper whose output R4 may refuse fails the cold start, not the store.
        environment["FHIRPIPES_FHIR_STORE_VERSION"] = "R4"
    environment.update(sorted(options.environment.items()))
    resources["EnrichmentFunction"] = _function(
        options,
        description="fhirpipes: maps DynamoDB stream records to FHIR, as the enrichment of the Pipes.",
        handler=HANDLER,
        timeout=options.timeout_seconds,
        name="Enrichment",
        environment=environment,
        reserve=("ReserveConcurrency", "ReservedConcurrency"),
    )
    outputs["EnrichmentFunctionArn"] = {"Value": {"Fn::GetAtt": ["EnrichmentFunction", "Arn"]}}
    outputs["EnrichmentLogGroupName"] = {"Value": {"Ref": "EnrichmentLogGroup"}}

    if options.target == "eventbridge":
        resources["TargetEventBus"] = {
            "Type": "AWS::Events::EventBus",
            "Properties": {"Name": {"Fn::Sub": "${PipeNamePrefix}-fhir"}, "KmsKeyIdentifier": _DATA_KEY},
        }
        outputs["TargetEventBusArn"] = {"Value": {"Fn::GetAtt": ["TargetEventBus", "Arn"]}}

    if options.target == "fhir":
        _sink(options, len(pipes), parameters, conditions, resources, outputs)

    for pipe in pipes:
        resources.update(_pipe_resources(pipe, options, outputs))
        resources.update(_alarms(pipe, outputs))

    for resource in resources.values():
        skips = CHECKOV_SKIPS.get(resource["Type"])
        if skips:
            resource["Metadata"] = {"checkov": {"skip": [{"id": i, "comment": why} for i, why in skips]}}

    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "fhirpipes: one shared enrichment Lambda and an EventBridge Pipe per DynamoDB table "
        f"({', '.join(pipe.table for pipe in pipes)}).",
        "Parameters": parameters,
        "Conditions": conditions,
        "Resources": resources,
        "Outputs": outputs,
    }


def _pipe_resources(pipe: TablePipe, options: TemplateOptions, outputs: dict[str, Any]) -> dict[str, Any]:
    name = {"Fn::Sub": f"${{PipeNamePrefix}}-{pipe.name_suffix}"}
    stream = {"Ref": f"{pipe.logical}StreamArn"}
    dlq = f"{pipe.logical}DeadLetterQueue"
    resources: dict[str, Any] = {
        dlq: _queue(),
    }
    target_arn: Any
    target_parameters: dict[str, Any] | None = None
    if options.target == "logs":
        group = f"{pipe.logical}TargetLogGroup"
        resources[group] = _log_group()
        target_arn = {"Fn::GetAtt": [group, "Arn"]}
        target_statement = _allow("SendToTarget", ["logs:CreateLogStream", "logs:PutLogEvents"], target_arn)
        target_parameters = {"CloudWatchLogsParameters": {"LogStreamName": name}}
        outputs[f"{pipe.logical}TargetLogGroupName"] = {"Value": {"Ref": group}}
    elif options.target == "sqs":
        queue = f"{pipe.logical}TargetQueue"
        resources[queue] = _queue()
        target_arn = {"Fn::GetAtt": [queue, "Arn"]}
        target_statement = _allow("SendToTarget", ["sqs:SendMessage"], target_arn)
        outputs[f"{pipe.logical}TargetQueueUrl"] = {"Value": {"Ref": queue}}
    elif options.target == "fhir":
        target_arn = {"Fn::GetAtt": ["SinkFunction", "Arn"]}
        target_statement = _allow("InvokeSink", ["lambda:InvokeFunction"], target_arn)
        # Synchronously: the sink's batchItemFailures are what the Pipe retries (the default, said).
        target_parameters = {"LambdaFunctionParameters": {"InvocationType": "REQUEST_RESPONSE"}}
    else:
        target_arn = {"Fn::GetAtt": ["TargetEventBus", "Arn"]}
        target_statement = _allow("SendToTarget", ["events:PutEvents"], target_arn)
        single = pipe.mappers[0] if len(pipe.mappers) == 1 else None
        target_parameters = {
            "EventBridgeEventBusParameters": {
                "Source": single.envelope_source if single else f"fhirpipes.{pipe.table}",
                # A dynamic path: each event's own type, so error events (which carry the whole
                # record) go out as <ResourceType>MappingFailed, never as a change rules forward.
                "DetailType": DETAIL_TYPE_PATH,
            }
        }
    statements = [
        _allow(
            "ReadOwnStream",
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            stream,
        ),
        # ListStreams has no resource-level permissions: "*" is the only resource it takes.
        _allow("ListStreams", ["dynamodb:ListStreams"], "*"),
        {
            "Fn::If": [
                f"{pipe.logical}HasKmsKey",
                _allow("DecryptOwnStream", ["kms:Decrypt"], {"Ref": f"{pipe.logical}KmsKeyArn"}),
                {"Ref": "AWS::NoValue"},
            ]
        },
        # The Pipe (KmsKeyIdentifier), its queues and the bus: Pipes uses the key as this role.
        _allow("UseDataKey", ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"], _DATA_KEY),
        _allow("InvokeEnrichment", ["lambda:InvokeFunction"], {"Fn::GetAtt": ["EnrichmentFunction", "Arn"]}),
        target_statement,
        _allow("SendToDeadLetterQueue", ["sqs:SendMessage"], {"Fn::GetAtt": [dlq, "Arn"]}),
    ]
    resources[f"{pipe.logical}PipeRole"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": f"fhirpipes Pipe of {pipe.table}: its stream, the enrichment, its target and DLQ.",
            "AssumeRolePolicyDocument": _assume("pipes.amazonaws.com", pipe_name=name),
            "Policies": [{"PolicyName": "pipe", "PolicyDocument": _policy(statements)}],
        },
    }
    properties: dict[str, Any] = {
        "Name": name,
        "Description": f"fhirpipes: {pipe.table} changes to FHIR "
        f"({', '.join(sorted({m.resource_type for m in pipe.mappers}))}).",
        "DesiredState": "RUNNING",
        "RoleArn": {"Fn::GetAtt": [f"{pipe.logical}PipeRole", "Arn"]},
        "Source": stream,
        "SourceParameters": {
            "DynamoDBStreamParameters": {
                "StartingPosition": pipe.starting_position,
                "BatchSize": pipe.batch_size,
                "MaximumBatchingWindowInSeconds": pipe.batching_window_seconds,
                "MaximumRetryAttempts": options.max_retries,
                "MaximumRecordAgeInSeconds": options.max_record_age_seconds,
                "OnPartialBatchItemFailure": "AUTOMATIC_BISECT",
                "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [dlq, "Arn"]}},
            },
            "FilterCriteria": {"Filters": [{"Pattern": text} for text in pipe.filters]},
        },
        # The shared function takes the records as the stream gives them: no EnrichmentParameters.
        "Enrichment": {"Fn::GetAtt": ["EnrichmentFunction", "Arn"]},
        "Target": target_arn,
        "KmsKeyIdentifier": _DATA_KEY,
    }
    if target_parameters:
        properties["TargetParameters"] = target_parameters
    resources[f"{pipe.logical}Pipe"] = {"Type": "AWS::Pipes::Pipe", "Properties": properties}
    outputs[f"{pipe.logical}PipeName"] = {"Value": {"Ref": f"{pipe.logical}Pipe"}}
    outputs[f"{pipe.logical}DeadLetterQueueUrl"] = {"Value": {"Ref": dlq}}
    return resources


_HEALTHLAKE_URL = "https://healthlake.${AWS::Region}.${AWS::URLSuffix}/datastore/${HealthLakeDatastoreId}/r4/"
_HEALTHLAKE_ARN = "arn:${AWS::Partition}:healthlake:${AWS::Region}:${AWS::AccountId}:datastore/fhir/${HealthLakeDatastoreId}"
_SECRET_ARN = r"arn:aws[a-z\-]*:secretsmanager:[a-z0-9\-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@\-]+"


def _sink(
    options: TemplateOptions,
    tables: int,
    parameters: dict[str, Any],
    conditions: dict[str, Any],
    resources: dict[str, Any],
    outputs: dict[str, Any],
) -> None:
    """The sink function, its log group, error queue, role, parameters and alarms (``fhir`` target)."""
    store: list[Any]
    if options.fhir_auth == "sigv4":
        parameters["HealthLakeDatastoreId"] = {
            "Type": "String",
            "AllowedPattern": "[0-9a-f]{32}",
            "Description": "ID of the HealthLake data store (in this stack's account and region).",
        }
        url: Any = {"Fn::Sub": _HEALTHLAKE_URL}
        parameters["HealthLakeKmsKeyArn"] = {
            "Type": "String",
            "Default": "",
            "AllowedPattern": f"({_KMS_KEY_ARN})?",
            "Description": "ARN of the data store's customer managed KMS key, if it has one.",
        }
        conditions["HealthLakeHasKmsKey"] = {
            "Fn::Not": [{"Fn::Equals": [{"Ref": "HealthLakeKmsKeyArn"}, ""]}]
        }
        store = [
            _allow("UseOwnDatastore", HEALTHLAKE_ACTIONS, {"Fn::Sub": _HEALTHLAKE_ARN}),
            # HealthLake uses a data store's own key as the caller: writes generate, reads decrypt.
            {
                "Fn::If": [
                    "HealthLakeHasKmsKey",
                    _allow(
                        "UseDatastoreKey",
                        ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"],
                        {"Ref": "HealthLakeKmsKeyArn"},
                    ),
                    {"Ref": "AWS::NoValue"},
                ]
            },
        ]
        outputs["HealthLakeDatastoreArn"] = {"Value": {"Fn::Sub": _HEALTHLAKE_ARN}}
    else:
        parameters["FhirUrl"] = {
            "Type": "String",
            "AllowedPattern": r"https://[^\s]+" if options.fhir_auth == "secret" else r"https?://[^\s]+",
            "Description": "Base URL of the FHIR R4 server the sink writes to.",
        }
        url = {"Ref": "FhirUrl"}
        store = []
    auth: Any = options.fhir_auth
    if options.fhir_auth == "secret":
        parameters["FhirSecretArn"] = {
            "Type": "String",
            "AllowedPattern": _SECRET_ARN,
            "Description": 'ARN of the Secrets Manager secret: a bearer token, JSON {"token": ...}, or '
            "OAuth client credentials (see the README).",
        }
        parameters["FhirSecretKmsKeyArn"] = {
            "Type": "String",
            "Default": "",
            "AllowedPattern": f"({_KMS_KEY_ARN})?",
            "Description": "ARN of the customer managed KMS key of the secret, if it has one.",
        }
        conditions["FhirSecretHasKmsKey"] = {
            "Fn::Not": [{"Fn::Equals": [{"Ref": "FhirSecretKmsKeyArn"}, ""]}]
        }
        auth = {"Fn::Sub": "secret:${FhirSecretArn}"}
        store = [
            _allow("ReadOwnSecret", ["secretsmanager:GetSecretValue"], {"Ref": "FhirSecretArn"}),
            {
                "Fn::If": [
                    "FhirSecretHasKmsKey",
                    _allow("DecryptOwnSecret", ["kms:Decrypt"], {"Ref": "FhirSecretKmsKeyArn"}),
                    {"Ref": "AWS::NoValue"},
                ]
            },
        ]
    parameters["FhirBundleSize"] = {
        "Type": "Number",
        "Default": 1,
        "MinValue": 1,
        "Description": "Above 1: the sink writes in batch Bundles of up to that many entries "
        "(HealthLake takes at most 160); 1: one request per read or write.",
    }
    parameters["SinkReservedConcurrency"] = {
        "Type": "Number",
        "Default": RESERVED_CONCURRENCY_PER_TABLE * tables,
        "MinValue": -1,
        "Description": "Concurrent executions reserved for the sink (a Pipe runs one per open shard). "
        "-1: no reservation. Never 0: that stops the sink.",
    }
    conditions["ReserveSinkConcurrency"] = {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "SinkReservedConcurrency"}, -1]}]
    }

    resources["SinkLogGroup"] = _log_group()
    resources["SinkErrorQueue"] = _queue()
    queue_arn = {"Fn::GetAtt": ["SinkErrorQueue", "Arn"]}
    resources["SinkRole"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": "fhirpipes sink: its log group, its error queue and the one FHIR store.",
            "AssumeRolePolicyDocument": _assume("lambda.amazonaws.com"),
            "Policies": [
                {
                    "PolicyName": "sink",
                    "PolicyDocument": _policy(
                        [
                            _allow(
                                "WriteOwnLogs",
                                ["logs:CreateLogStream", "logs:PutLogEvents"],
                                {"Fn::GetAtt": ["SinkLogGroup", "Arn"]},
                            ),
                            # The environment, and the error queue (SQS encrypts with it as the sender).
                            _allow("UseDataKey", ["kms:Decrypt", "kms:GenerateDataKey"], _DATA_KEY),
                            _allow("SendToErrorQueue", ["sqs:SendMessage"], queue_arn),
                            *store,
                        ]
                    ),
                }
            ],
        },
    }
    resources["SinkFunction"] = _function(
        options,
        description="fhirpipes: delivers the Pipes' FHIR events into the FHIR store, as their target.",
        handler=SINK_HANDLER,
        timeout=options.sink_timeout_seconds,
        name="Sink",
        environment={
            "FHIRPIPES_FHIR_URL": url,
            "FHIRPIPES_FHIR_AUTH": auth,
            "FHIRPIPES_FHIR_BUNDLE_SIZE": {"Ref": "FhirBundleSize"},
            "FHIRPIPES_SINK_ERROR_QUEUE": {"Ref": "SinkErrorQueue"},
            "FHIRPIPES_LOG_LEVEL": {"Ref": "LogLevel"},
        },
        reserve=("ReserveSinkConcurrency", "SinkReservedConcurrency"),
    )
    outputs["SinkFunctionArn"] = {"Value": {"Fn::GetAtt": ["SinkFunction", "Arn"]}}
    outputs["SinkLogGroupName"] = {"Value": {"Ref": "SinkLogGroup"}}
    outputs["SinkErrorQueueUrl"] = {"Value": {"Ref": "SinkErrorQueue"}}
    errors = _alarm(
        "fhirpipes: the sink failed invocations (a setting, the store's auth, or a timeout); the Pipe "
        "retries those batches, then dead-letters them. Its log says why.",
        "AWS/Lambda",
        "Errors",
        [{"Name": "FunctionName", "Value": {"Ref": "SinkFunction"}}],
        "Sum",
    )
    undelivered = _alarm(
        "fhirpipes: events the FHIR store did not get (error events, resources the server refused) are "
        "in the sink's error queue; its log says which and why.",
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["SinkErrorQueue", "QueueName"]}}],
        "Maximum",
    )
    resources["SinkErrorsAlarm"] = errors
    resources["SinkUndeliveredAlarm"] = undelivered
    outputs["SinkErrorsAlarmName"] = {"Value": {"Ref": "SinkErrorsAlarm"}}
    outputs["SinkUndeliveredAlarmName"] = {"Value": {"Ref": "SinkUndeliveredAlarm"}}


def _alarm(
    description: str, namespace: str, metric: str, dimensions: list[Any], statistic: str
) -> dict[str, Any]:
    """An alarm on any of ``metric`` in a period, notifying ``AlarmTopicArn`` when one is given."""
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": dimensions,
            "Statistic": statistic,
            "Period": ALARM_PERIOD_SECONDS,
            "EvaluationPeriods": 1,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": {
                "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
            },
        },
    }


def _alarms(pipe: TablePipe, outputs: dict[str, Any]) -> dict[str, Any]:
    """The table's alarms: records the function failed to map, and batches the Pipe dead-lettered."""
    failed, dead = f"{pipe.logical}FailedRecordsAlarm", f"{pipe.logical}DeadLetterAlarm"
    outputs[f"{failed}Name"] = {"Value": {"Ref": failed}}
    outputs[f"{dead}Name"] = {"Value": {"Ref": dead}}
    return {
        failed: _alarm(
            f"fhirpipes: records of table {pipe.table} failed to map (error events, "
            "or failed batches with OnError=raise); the function's log says which and why.",
            metrics.NAMESPACE,
            metrics.RECORDS_FAILED,
            [{"Name": metrics.TABLE_DIMENSION, "Value": pipe.table}],
            "Sum",
        ),
        dead: _alarm(
            f"fhirpipes: the Pipe of table {pipe.table} dead-lettered a batch "
            "(its records were not delivered; the message says where they are in the stream).",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            [{"Name": "QueueName", "Value": {"Fn::GetAtt": [f"{pipe.logical}DeadLetterQueue", "QueueName"]}}],
            "Maximum",
        ),
    }


def _data_key(options: TemplateOptions) -> dict[str, Any]:
    """The key the stack creates when no ``DataKmsKeyArn`` is given, with the policy its users need."""
    statements: list[Any] = [
        {
            # The account's IAM policies decide who uses the key (the roles of this stack do).
            "Sid": "AccountAdministersTheKey",
            "Effect": "Allow",
            "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            # CloudWatch Logs encrypts the log groups with it, for this account's log groups only.
            "Sid": "CloudWatchLogsEncrypts",
            "Effect": "Allow",
            "Principal": {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}},
            "Action": [
                "kms:Decrypt*",
                "kms:Describe*",
                "kms:Encrypt*",
                "kms:GenerateDataKey*",
                "kms:ReEncrypt*",
            ],
            "Resource": "*",
            "Condition": {
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": {
                        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"
                    }
                }
            },
        },
    ]
    if options.target == "eventbridge":
        statements.append(
            {
                "Sid": "EventBridgeEncryptsTheBus",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                    "ArnEquals": {
                        "aws:SourceArn": {
                            "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}"
                            ":event-bus/${PipeNamePrefix}-fhir"
                        }
                    },
                },
            }
        )
    return {
        "Type": "AWS::KMS::Key",
        "Condition": "CreateDataKey",
        # Retained log groups stay encrypted with it: deleting the key would make them unreadable.
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "Description": {"Fn::Sub": "fhirpipes ${AWS::StackName}: records and FHIR resources (PHI)"},
            "EnableKeyRotation": True,
            "KeyPolicy": _policy(statements),
        },
    }


def _log_group() -> dict[str, Any]:
    return {
        "Type": "AWS::Logs::LogGroup",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {"RetentionInDays": {"Ref": "LogRetentionInDays"}, "KmsKeyId": _DATA_KEY},
    }


def _queue() -> dict[str, Any]:
    return {
        "Type": "AWS::SQS::Queue",
        "Properties": {"MessageRetentionPeriod": 1209600, "KmsMasterKeyId": _DATA_KEY},
    }


def _assume(service: str, pipe_name: Any = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if pipe_name is not None:
        # Confused-deputy protection: only this Pipe, of this account, may assume the role. Its
        # ARN is spelled out (a reference to the Pipe would be circular: the Pipe needs the role).
        arn = "arn:${AWS::Partition}:pipes:${AWS::Region}:${AWS::AccountId}:pipe/" + pipe_name["Fn::Sub"]
        statement["Condition"] = {
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
            "ArnEquals": {"aws:SourceArn": {"Fn::Sub": arn}},
        }
    return {"Version": "2012-10-17", "Statement": [statement]}


def _policy(statements: list[Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def _allow(sid: str, actions: Sequence[str], resource: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": resource}


def _logical_id(table: str, taken: set[str]) -> str:
    """A CloudFormation logical-ID stem for ``table``: its alphanumeric words, capitalised."""
    words = [word for word in re.split(r"[^A-Za-z0-9]+", table) if word]
    stem = "".join(word[:1].upper() + word[1:] for word in words) or "Table"
    if stem[0].isdigit():
        stem = f"T{stem}"
    stem = stem[:64]
    return stem if stem not in taken else f"{stem[:56]}{_crc(table)}"


def _crc(text: str) -> str:
    return f"{zlib.crc32(text.encode()):08x}"


def to_yaml(template: Mapping[str, Any]) -> str:
    """The template as YAML text (stable: same input, same text)."""
    import yaml

    # CloudFormation rejects YAML aliases (&id001/*id001), which PyYAML writes for shared objects.
    dumper = type("Dumper", (yaml.SafeDumper,), {"ignore_aliases": lambda self, data: True})

    header = "# Generated by `fhirpipes template`; regenerate it rather than editing it.\n"
    body = yaml.dump(dict(template), Dumper=dumper, sort_keys=False, default_flow_style=False, width=120)
    return header + str(body)


def _function(
    options: TemplateOptions,
    *,
    description: str,
    handler: str,
    timeout: int,
    name: str,
    environment: Mapping[str, Any],
    reserve: tuple[str, str],
) -> dict[str, Any]:
    """One of the stack's two functions (the same zip, runtime and data key): ``name`` + Role and LogGroup."""
    condition, parameter = reserve
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Description": description,
            "Runtime": f"python{options.python}",
            "Architectures": [options.arch],
            "Handler": handler,
            "Code": {"S3Bucket": {"Ref": "CodeS3Bucket"}, "S3Key": {"Ref": "CodeS3Key"}},
            "MemorySize": options.memory_mb,
            "Timeout": timeout,
            "Role": {"Fn::GetAtt": [f"{name}Role", "Arn"]},
            "LoggingConfig": {"LogGroup": {"Ref": f"{name}LogGroup"}},
            "Environment": {"Variables": dict(environment)},
            "KmsKeyArn": _DATA_KEY,
            "ReservedConcurrentExecutions": {
                "Fn::If": [condition, {"Ref": parameter}, {"Ref": "AWS::NoValue"}]
            },
        },
    }
