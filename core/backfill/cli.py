"""``fhirpipes backfill``: the items a table already holds, through its mappers, into NDJSON or a FHIR store.

Exit status: 0 when every item read was written or skipped, 3 when the backfill finished but some
items are error lines (``errors.ndjson``), 1 for an error that stopped it (a rerun continues),
130 when interrupted (Ctrl-C; a rerun continues).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from fhirpipes.errors import FhirpipesError

EXIT_ITEM_ERRORS = 3
EXIT_INTERRUPTED = 130


def _fail(message: str) -> None:
    raise click.ClickException(message)


@click.command(short_help="Back-fill a table's items into NDJSON or a FHIR store.")
@click.argument("source", required=False, metavar="[SOURCE]")
@click.option(
    "--table",
    help="Scan this table in parallel (no SOURCE); or the table of a local export without manifests.",
)
@click.option(
    "--segments", type=click.IntRange(1, 1_000_000), help="Parallel scan segments [default: 4 per worker]."
)
@click.option(
    "--export-to",
    metavar="S3_URI",
    help="With --table: export the table there first (needs point-in-time recovery), then read it.",
)
@click.option(
    "--keys",
    metavar="NAME[,NAME]",
    help="The table's key attributes, partition key first [default: DescribeTable].",
)
@click.option(
    "--out",
    metavar="DIR",
    help="Write NDJSON per resource type, errors.ndjson and manifest.json here (local or s3://).",
)
@click.option(
    "--target",
    metavar="fhir:URL",
    help="Deliver into this FHIR server through the sink, with its stale-write guard.",
)
@click.option(
    "--fhir-auth",
    metavar="AUTH",
    help="With --target: none, sigv4 or secret:<ARN or name> [default: FHIRPIPES_FHIR_AUTH].",
)
@click.option(
    "--state", metavar="DIR", help="Where progress is kept, so a rerun continues [default: OUT/state]."
)
@click.option(
    "--max-file-bytes",
    type=click.IntRange(min=1024),
    default=50 * 1024 * 1024,
    show_default=True,
    help="Roll NDJSON files below this size.",
)
@click.option(
    "--errors",
    "errors_mode",
    type=click.Choice(["events", "locations"]),
    default="events",
    show_default=True,
    help="errors.ndjson holds error events with their record, or only where and why.",
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Processes of the local engine [default: the cores]."
)
@click.option(
    "--engine",
    type=click.Choice(["local", "spark"]),
    default="local",
    show_default=True,
    help="Run the partitions here, or on Spark.",
)
@click.option(
    "--spark-master",
    metavar="URL",
    help="With --engine spark: the master [default: spark-submit's, else local[*]].",
)
@click.option(
    "--plan",
    "plan_only",
    is_flag=True,
    help="Print what would be read and written, and the hand-over to the live Pipe; do nothing.",
)
@click.option(
    "--start-import",
    is_flag=True,
    help="After --out, upload it (--upload-to) and start an AWS HealthLake import.",
)
@click.option("--datastore-id", metavar="ID", help="With --start-import: the HealthLake data store.")
@click.option(
    "--role-arn", metavar="ARN", help="With --start-import: the data-access role HealthLake assumes."
)
@click.option(
    "--kms-key-id",
    metavar="KEY",
    help="With --start-import: the KMS key of the import's output (and the upload).",
)
@click.option(
    "--upload-to", metavar="S3_URI", help="With --start-import and a local --out: upload the folder here."
)
@click.option(
    "--import-output",
    metavar="S3_URI",
    help="With --start-import: where HealthLake writes the import's results.",
)
@click.option("--region", help="AWS region [default: boto3's resolution].")
@click.option("--profile", help="AWS profile.")
@click.option(
    "--endpoint-url", metavar="URL", help="Another endpoint for every AWS client (a local emulator)."
)
@click.option(
    "--progress/--no-progress", default=None, help="A progress bar [default: when stderr is a terminal]."
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON when done.")
def backfill(**options: Any) -> None:
    """Back-fill a table's items through its registered mappers, exactly as INSERTs through the Lambda.

    SOURCE is a DynamoDB export (s3://BUCKET/PREFIX/AWSDynamoDB/EXPORT_ID/, or the same layout in
    a local folder); or give --table NAME for a parallel scan, or --table NAME --export-to S3_URI
    to export first. Each item gives the resource the stream's INSERT of it would give (same id,
    same content); meta.source says which snapshot it came from. Run with --plan first: it says
    how to start the live Pipe so that nothing is lost between the snapshot and the stream.
    """
    try:
        code = _backfill(**options)
    except FhirpipesError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo("interrupted: rerun the same command to continue where it stopped", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code)


def _backfill(**options: Any) -> int:
    from fhirpipes.backfill.job import SourceSpec
    from fhirpipes.backfill.run import execute, prepare
    from fhirpipes.pipes.aws import AwsConfig

    _check_combinations(options)
    aws = AwsConfig(
        endpoint_url=options["endpoint_url"], region=options["region"], profile=options["profile"]
    )
    workers = options["workers"] or os.cpu_count() or 1
    source = options["source"]
    if source is None and options["export_to"]:
        from fhirpipes.backfill.sources import start_export

        click.echo(f"exporting table {options['table']} to {options['export_to']} ...", err=True)
        source = start_export(SourceSpec(kind="export", aws=aws), options["table"], options["export_to"])
        click.echo(f"export ready: {source}", err=True)
    if source is not None:
        spec = SourceSpec(kind="export", location=source, table=options["table"], aws=aws)
    else:
        spec = SourceSpec(
            kind="scan", table=options["table"], segments=options["segments"] or 4 * workers, aws=aws
        )
    keys = _keys(options["keys"])
    job, partitions = prepare(
        spec,
        keys=keys,
        out=options["out"],
        target=options["target"],
        fhir_auth=options["fhir_auth"],
        state=options["state"],
        max_file_bytes=options["max_file_bytes"],
        errors=options["errors_mode"],
    )
    if options["plan_only"]:
        from fhirpipes.backfill.plan import plan_text

        click.echo(plan_text(job.snapshot, len(partitions), job.keys, job.out or job.target or ""))
        return 0
    from fhirpipes.progress import ProgressBar, show_bar

    show = show_bar(options["progress"])
    total = job.snapshot.item_count
    if total is None and all(part.item_count is not None for part in partitions):
        total = sum(part.item_count or 0 for part in partitions)
    bar = ProgressBar(
        "backfill", total, enabled=show, unit="items", rate=True, errors=True, eta=True, keep=True
    )
    with bar:
        manifest = execute(
            job,
            partitions,
            engine=options["engine"],
            workers=workers,
            spark_master=options["spark_master"],
            progress=bar.advance,
        )
    if options["start_import"]:
        manifest["import"] = _start_import(job, options, aws)
    counts = manifest["counts"]
    if options["as_json"]:
        click.echo(json.dumps(manifest, indent=2))
    else:
        where = job.out or job.state
        items = "item" if counts["read"] == 1 else "items"
        errors = "error" if counts["errors"] == 1 else "errors"
        click.echo(
            f"{counts['read']:,} {items} read: {counts['written']:,} written, {counts['skipped']:,} skipped, "
            f"{counts['errors']:,} {errors}; manifest in {where}"
        )
        if "import" in manifest:
            click.echo(f"HealthLake import job {manifest['import']['jobId']} started")
    return EXIT_ITEM_ERRORS if counts["errors"] else 0


def _check_combinations(options: dict[str, Any]) -> None:
    """Refuse what can't go together before any work (or any AWS call)."""
    if options["source"] and options["export_to"]:
        _fail("give SOURCE or --export-to, not both")
    if not options["source"] and not options["table"]:
        _fail("give SOURCE (an export) or --table NAME (a parallel scan)")
    if options["export_to"] and not options["table"]:
        _fail("--export-to needs --table")
    if options["segments"] and options["source"]:
        _fail("--segments is for a scan (--table without SOURCE)")
    if (options["out"] is None) == (options["target"] is None):
        _fail("give one of --out DIR or --target fhir:URL")
    if options["fhir_auth"] and not options["target"]:
        _fail("--fhir-auth is for --target")
    if options["engine"] != "spark" and options["spark_master"]:
        _fail("--spark-master is for --engine spark")
    needs_import = ("datastore_id", "role_arn", "kms_key_id", "upload_to", "import_output")
    if options["start_import"]:
        if not options["out"]:
            _fail("--start-import needs --out")
        missing = [
            name for name in ("datastore_id", "role_arn", "kms_key_id", "import_output") if not options[name]
        ]
        if not options["out"].startswith("s3://") and not options["upload_to"]:
            missing.append("upload_to")
        if missing:
            _fail("--start-import needs " + ", ".join("--" + name.replace("_", "-") for name in missing))
    elif any(options[name] for name in needs_import):
        _fail(
            "--datastore-id, --role-arn, --kms-key-id, --upload-to and --import-output are for --start-import"
        )


def _keys(raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    names = tuple(name.strip() for name in raw.split(","))
    if not 1 <= len(names) <= 2 or not all(names):
        _fail(
            "--keys takes the partition key, and the sort key if the table has one: --keys pk or --keys pk,sk"
        )
    return names


def _start_import(job: Any, options: dict[str, Any], aws: Any) -> dict[str, Any]:
    from fhirpipes.backfill import healthlake

    out = job.out
    if out.startswith("s3://"):
        data_uri = f"{out.rstrip('/')}/data/"
    else:
        data_uri = healthlake.upload(
            Path(out), options["upload_to"], aws.client("s3"), kms_key_id=options["kms_key_id"]
        )
    client = aws.client("healthlake")
    job_id = healthlake.start_import(
        client,
        datastore_id=options["datastore_id"],
        input_s3_uri=data_uri,
        output_s3_uri=options["import_output"],
        kms_key_id=options["kms_key_id"],
        role_arn=options["role_arn"],
        job_name=f"fhirpipes-backfill-{job.snapshot.table}"[:64],
        client_token=_client_token(job),
        s3_client=aws.client("s3"),  # counts the files (at most 10,000 per import) before the call
    )
    return {"jobId": job_id, "input": data_uri, "datastoreId": options["datastore_id"]}


def _client_token(job: Any) -> str:
    """Idempotent per backfill: a rerun of the same backfill doesn't start a second import."""
    import hashlib

    identity = json.dumps(dataclasses.asdict(job.snapshot), sort_keys=True) + (job.out or "")
    return hashlib.sha256(identity.encode()).hexdigest()[:64]
