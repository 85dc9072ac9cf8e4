"""``fhirpipes demo``: the whole flow on a fresh machine, in one command.

It starts the embedded DynamoDB (moto's server mode, on 127.0.0.1 and a free port), creates the
``Patients`` and ``Practitioners`` tables with NEW_AND_OLD_IMAGES streams, writes a realistic
sequence of changes (inserts, modifications, a modification of an attribute FHIR doesn't show,
a delete, a broken item), runs the mappers' Pipes to a CloudWatch Logs target on the same
endpoint, reads the log group back, and prints the FHIR events and the summary. The server is
stopped on the way out, whatever happens. All the data is made up.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import click

from fhirpipes.errors import FhirpipesError
from fhirpipes.pipes.checkpoint import Checkpoints
from fhirpipes.pipes.cli import (
    aws_failure,
    build_dispatcher,
    build_pipes,
    log_format_option,
    logging_to,
    report,
)
from fhirpipes.pipes.embedded import EmbeddedAws, create_stream_table
from fhirpipes.pipes.runner import Runner, RunResult
from fhirpipes.pipes.targets import CloudWatchLogsTarget
from fhirpipes.settings import Settings

LOG_GROUP = "/fhirpipes/demo"
LOG_STREAM = "fhir-events"

Change = tuple[str, str, dict[str, Any]]
"""(table, "put" | "delete", item or key)."""

JOHN: dict[str, Any] = {
    "id": "abc",
    "firstName": "John",
    "lastName": "Smith",
    "birthDate": "07-13-1991",
    "address": {"address1": "453 Ralph Road", "city": "Tampa", "state": "FL", "postalCode": "33612"},
}
MARIA: dict[str, Any] = {
    "id": "p-0002",
    "firstName": "Maria",
    "middleName": "Luisa",
    "lastName": "Garcia",
    "gender": "F",
    "birthDate": "02-29-1984",
    "email": "maria.garcia@example.org",
    "mrn": "MRN-000042",
    "address": {"address1": "1200 Bayshore Blvd", "city": "Tampa", "state": "FL", "postalCode": "33606"},
}
ALICE: dict[str, Any] = {
    "id": "pr-0001",
    "npi": "1234567893",
    "prefix": "Dr.",
    "firstName": "Alice",
    "lastName": "Chen",
    "suffix": "MD",
    "gender": "F",
    "phone": "+1 813 555 0142",
    "qualifications": [{"code": "MD", "display": "Doctor of Medicine", "start": "2008-05-17"}],
}
OMAR: dict[str, Any] = {
    "id": "pr-0002",
    "npi": "1456789027",
    "firstName": "Omar",
    "lastName": "Haddad",
    "suffix": "NP",
}

CHANGES: tuple[tuple[str, Change], ...] = (
    ("insert a patient", ("Patients", "put", JOHN)),
    ("insert a patient", ("Patients", "put", MARIA)),
    ("insert a practitioner", ("Practitioners", "put", ALICE)),
    ("insert a practitioner", ("Practitioners", "put", OMAR)),
    (
        "modify: the patient moved",
        ("Patients", "put", {**JOHN, "address": {**JOHN["address"], "address1": "17 Bay Street"}}),
    ),
    ("modify: an attribute FHIR doesn't show", ("Patients", "put", {**MARIA, "lastLoginAt": "2024-05-01"})),
    ("modify: a new phone number", ("Practitioners", "put", {**ALICE, "phone": "+1 813 555 0199"})),
    ("insert a patient", ("Patients", "put", {"id": "p-0003", "lastName": "Nguyen", "gender": "unknown"})),
    ("delete that patient", ("Patients", "delete", {"id": "p-0003"})),
    (
        "a broken item: birth date not a date",
        ("Patients", "put", {"id": "p-0004", "birthDate": "31-31-1990"}),
    ),
    (
        "a broken item: NPI check digit wrong",
        ("Practitioners", "put", {"id": "pr-0003", "npi": "1234567890"}),
    ),
)


def write_changes(client: Any, tables: set[str], echo: Callable[[str], None]) -> int:
    """Apply the demo's changes to the tables that have a mapper; returns how many were written."""
    serializer = importlib.import_module("boto3.dynamodb.types").TypeSerializer()

    def attributes(item: Mapping[str, Any]) -> dict[str, Any]:
        return {key: serializer.serialize(value) for key, value in item.items()}

    written = 0
    for what, (table, action, item) in CHANGES:
        if table not in tables:
            continue
        if action == "put":
            client.put_item(TableName=table, Item=attributes(item))
        else:
            client.delete_item(TableName=table, Key=attributes(item))
        echo(f"  {table:<14} {action:<6} {item['id']:<8} {what}")
        written += 1
    return written


def read_log_events(client: Any, group: str, stream: str) -> list[str]:
    """Every message of the log stream, oldest first."""
    messages: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
    while True:
        response = client.get_log_events(**kwargs)
        messages.extend(event["message"] for event in response.get("events", []))
        token = response.get("nextForwardToken")
        if not response.get("events") or token == kwargs.get("nextToken"):
            return messages
        kwargs["nextToken"] = token


def describe_event(event: Mapping[str, Any]) -> str:
    """One line: command, resource, source table and record id."""
    details = event.get("details", {})
    command = details.get("command", "?")
    if command == "ERROR":
        error = details.get("error", {})
        resource = (
            f"{error.get('code')} at {error.get('path') or error.get('template')}:{error.get('line') or ''}"
        )
    else:
        entity = details.get("entity", {})
        resource = f"{entity.get('resourceType')}/{entity.get('id')}"
    return f"{command:<6} {resource:<44} {event.get('source', '')}  eventID {event.get('eventID', '')}"


@click.command(short_help="Show the whole flow locally, with nothing to set up.")
@click.option("--brief", is_flag=True, help="One line per FHIR event, without the resources.")
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=1),
    default=45,
    show_default=True,
    help="Give up after this long.",
)
@click.option(
    "--fhir-url",
    metavar="URL",
    help="Deliver into this FHIR server instead (through the sink Lambda's code, as `run --target "
    "fhir:URL`), then read the resources back from it. Auth: FHIRPIPES_FHIR_AUTH (default none).",
)
@log_format_option
def demo(brief: bool, max_seconds: float, fhir_url: str | None, log_format: str) -> None:
    """Show the whole flow on this machine, with nothing to set up: an embedded DynamoDB with
    streams, the Patients and Practitioners tables, a sequence of changes, the Pipes with their
    filters and batching, the enrichment Lambda's code, and a CloudWatch Logs target (or, with
    --fhir-url, a FHIR server)."""
    began = time.perf_counter()
    fhir_target = None
    if fhir_url is not None:  # checked and reached before anything starts
        from fhirpipes.pipes.targets import FhirTarget

        fhir_target = FhirTarget(fhir_url)
        try:
            fhir_target.check()
            fhir_target.prepare()
        except FhirpipesError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        with EmbeddedAws() as server, logging_to("CRITICAL", sys.stderr, log_format):
            aws = server.config
            click.echo(
                f"embedded DynamoDB + Streams + CloudWatch Logs at {server.endpoint_url} "
                f"(ready in {server.ready_seconds:.2f} s)"
            )
            # The demo shows error events: whatever FHIRPIPES_ON_ERROR says, a broken item is an event.
            settings = Settings.from_env()._replace(on_error="emit")
            registry, dispatcher = build_dispatcher(settings)
            wanted = [m for m in registry.mappers if m.table in ("Patients", "Practitioners")]
            if not wanted:
                raise click.ClickException("neither the Patient nor the Practitioner mapper is installed")
            session = aws.session()
            dynamodb = aws.client("dynamodb", session)
            tables = {mapper.table for mapper in wanted}
            for table in sorted(tables):
                create_stream_table(dynamodb, table)
            click.echo(
                f"tables {', '.join(sorted(tables))} created (partition key id, NEW_AND_OLD_IMAGES streams)"
            )
            click.echo("\nwriting changes:")
            write_changes(dynamodb, tables, click.echo)
            pipes = build_pipes(wanted, dynamodb, settings)
            if fhir_target is not None:
                result = run_pipes(fhir_target, pipes, dispatcher, aws, session, max_seconds)
                fhir_target.close()
                show_fhir_resources(fhir_target.url, wanted)
            else:
                logs_client = aws.client("logs", session)
                target = CloudWatchLogsTarget(logs_client, LOG_GROUP, LOG_STREAM)
                result = run_pipes(target, pipes, dispatcher, aws, session, max_seconds)
                show_log_events(read_log_events(logs_client, LOG_GROUP, LOG_STREAM), brief)
            click.echo("")
            report(result, err=False)
    except FhirpipesError as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:
        if type(exc).__module__.startswith(("botocore", "boto3")):
            raise click.ClickException(aws_failure(exc)) from exc
        raise
    click.echo(f"demo finished in {time.perf_counter() - began:.1f} s; the embedded server is stopped")


def run_pipes(
    target: Any, pipes: list[Any], dispatcher: Any, aws: Any, session: Any, max_seconds: float
) -> RunResult:
    """The demo's Pipes, run until their streams are read to the end (or ``max_seconds``)."""
    runner = Runner(
        dispatcher,
        pipes,
        streams_client=aws.client("dynamodbstreams", session),
        target=target,
        checkpoints=Checkpoints(None),
        poll_seconds=0.05,
    )
    click.echo(f"\nrunning {', '.join(p.name for p in pipes)} -> {target.name}")
    return runner.run(once=True, max_seconds=max_seconds)


def show_log_events(messages: list[str], brief: bool) -> None:
    events = "FHIR event" if len(messages) == 1 else "FHIR events"
    click.echo(f"\n{len(messages)} {events} read back from the log group {LOG_GROUP}:")
    for number, message in enumerate(messages, 1):
        event = json.loads(message)
        click.echo(f"[{number:>2}] {describe_event(event)}")
        if not brief:
            body = event.get("details", {})
            shown = body.get("entity") if body.get("command") != "ERROR" else body.get("error")
            click.echo("     " + json.dumps(shown, indent=2).replace("\n", "\n     "))


def show_fhir_resources(url: str, mappers: list[Any]) -> None:
    """List what the FHIR server holds of each resource type the demo's mappers write."""
    import urllib.request

    base = url.rstrip("/")
    for resource_type in sorted({mapper.resource_type for mapper in mappers}):
        query = f"{base}/{resource_type}?_count=100"
        try:
            with urllib.request.urlopen(query, timeout=10) as answer:
                bundle = json.load(answer)
        except (OSError, ValueError) as exc:  # urllib's errors are OSErrors; a reply that isn't JSON
            click.echo(f"\ncould not read {resource_type} back from {base} ({type(exc).__name__})")
            continue
        found = [entry["resource"] for entry in bundle.get("entry", [])]
        resources = "resource" if len(found) == 1 else "resources"
        click.echo(f"\n{len(found)} {resource_type} {resources} read back from {base}:")
        for resource in found:
            version = resource.get("meta", {}).get("versionId", "?")
            click.echo(f"  {resource_type}/{resource.get('id')}  version {version}")
