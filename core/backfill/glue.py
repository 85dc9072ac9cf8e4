"""The backfill as an AWS Glue 5.0 job (or an EMR Serverless / spark-submit one): the job's script.

Glue runs this file (its ``ScriptLocation``) with the job's arguments as ``--NAME value`` pairs
and its own among them (``--JOB_NAME``, ``--job-bookmark-option``, ``--TempDir``, ``--enable-...``);
`parse_arguments` takes ours and ignores the rest, as awsglue's ``getResolvedOptions`` does,
without needing awsglue. Then `main` runs `fhirpipes.backfill.run.backfill` on the Spark engine:
the driver describes the source and writes the manifest, the executors run the partitions.

Job arguments (README "Backfill on Spark and AWS Glue")::

    --SOURCE s3://bucket/prefix/AWSDynamoDB/<export-id>/   an export (or --TABLE alone: a Scan)
    --TABLE Patients          the table to scan (without --SOURCE), or an export's table when the
                              export has no manifest-summary.json to say it
    --SEGMENTS 16             a Scan's parallel segments (one Spark task each)
    --OUT s3://bucket/fhir/   NDJSON files per resource type, the manifest, errors.ndjson
    --TARGET fhir:https://... a FHIR store instead (with --FHIR_AUTH none | sigv4 | secret:<ARN>)
    --STATE s3://bucket/state/   progress, so a rerun continues (default: <OUT>/state)
    --KEYS id[,sk]            the table's key attributes (default: from DescribeTable)
    --MAX_FILE_BYTES 52428800 --ERRORS events|locations --REGION eu-west-1

Only the standard library and fhirpipes are imported here (the job's wheels bring fhirpipes and its
dependencies; Glue has boto3 and pyspark).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from fhirpipes.errors import ConfigurationError, FhirpipesError

OPTIONS = (
    "JOB_NAME",
    "SOURCE",
    "TABLE",
    "SEGMENTS",
    "OUT",
    "TARGET",
    "FHIR_AUTH",
    "STATE",
    "KEYS",
    "MAX_FILE_BYTES",
    "ERRORS",
    "REGION",
)
"""The job arguments this script reads (``--NAME value`` or ``--NAME=value``); any other is Glue's."""

DEFAULT_SEGMENTS = 16
"""A Scan's segments when ``--SEGMENTS`` isn't given: enough tasks for a few Glue workers."""


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    """Our job arguments from ``argv`` (without the script's name), by name without the ``--``.

    Anything else (Glue's arguments, their values, stray words) is ignored. An argument given twice
    keeps the last value (as Glue's run arguments override the job's defaults); an empty value is
    as good as not given (a default argument a run can't remove, only blank).
    """
    found: dict[str, str] = {}
    position = 0
    while position < len(argv):
        token = argv[position]
        position += 1
        if not token.startswith("--"):
            continue
        name, equals, value = token[2:].partition("=")
        if name not in OPTIONS:
            continue
        if not equals:
            if position >= len(argv):
                raise ConfigurationError(f"job argument --{name} has no value")
            value = argv[position]
            position += 1
        if value.strip():
            found[name] = value.strip()
        else:
            found.pop(name, None)
    return found


def backfill_options(arguments: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments of `fhirpipes.backfill.run.backfill` (engine aside) for these job arguments."""
    from fhirpipes.backfill.job import SourceSpec
    from fhirpipes.pipes.aws import AwsConfig

    aws = AwsConfig(region=arguments.get("REGION"))
    table = arguments.get("TABLE")
    if "SOURCE" in arguments:
        if "SEGMENTS" in arguments:
            raise ConfigurationError("job argument --SEGMENTS is for a Scan (--TABLE without --SOURCE)")
        source = SourceSpec(kind="export", location=arguments["SOURCE"], table=table, aws=aws)
    elif table is not None:
        segments = _integer(arguments, "SEGMENTS", DEFAULT_SEGMENTS)
        source = SourceSpec(kind="scan", table=table, segments=segments, aws=aws)
    else:
        raise ConfigurationError(
            "missing job argument --SOURCE (an export folder, s3://.../AWSDynamoDB/<export-id>/) "
            "or --TABLE (a table to scan)"
        )
    if ("OUT" in arguments) == ("TARGET" in arguments):
        raise ConfigurationError("give one of the job arguments --OUT (a folder) or --TARGET (fhir:URL)")
    errors = arguments.get("ERRORS", "events")
    if errors not in ("events", "locations"):
        raise ConfigurationError("job argument --ERRORS must be events or locations")
    options: dict[str, Any] = {
        "source": source,
        "out": arguments.get("OUT"),
        "target": arguments.get("TARGET"),
        "fhir_auth": arguments.get("FHIR_AUTH"),
        "state": arguments.get("STATE"),
        "errors": errors,
    }
    if "KEYS" in arguments:
        keys = tuple(key.strip() for key in arguments["KEYS"].split(","))
        if not 1 <= len(keys) <= 2 or not all(keys):
            raise ConfigurationError(
                "job argument --KEYS takes the partition key, and the sort key if any: id or pk,sk"
            )
        options["keys"] = keys
    if "MAX_FILE_BYTES" in arguments:
        options["max_file_bytes"] = _integer(arguments, "MAX_FILE_BYTES", 0)
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Run the backfill the job arguments ask for on Spark; print the manifest's counts; 0 or 1."""
    arguments_given = sys.argv[1:] if argv is None else argv
    try:
        from fhirpipes.backfill.run import backfill

        options = backfill_options(parse_arguments(arguments_given))
        source = options.pop("source")
        manifest = backfill(source, engine="spark", **options)
    except FhirpipesError as exc:
        # The message names where, never what (PHI): fine for the job's log.
        print(f"fhirpipes backfill: {exc}", file=sys.stderr)
        return 1
    summary = {
        "counts": manifest["counts"],
        "complete": manifest["complete"],
        "handOver": manifest.get("handOver"),
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


def _integer(arguments: Mapping[str, str], name: str, default: int) -> int:
    if name not in arguments:
        return default
    try:
        value = int(arguments[name])
    except ValueError as exc:
        raise ConfigurationError(f"job argument --{name} must be a whole number") from exc
    if value < 1:
        raise ConfigurationError(f"job argument --{name} must be at least 1")
    return value


if __name__ == "__main__":
    code = main()
    if code:  # a plain return on success: some launchers treat any SystemExit as a failure
        sys.exit(code)
