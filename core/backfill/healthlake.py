"""A backfill's NDJSON output into AWS HealthLake by its bulk import (``StartFHIRImportJob``).

The import reads every object under its input S3 prefix as NDJSON, one FHIR R4 resource per line,
each with an id, and upserts by id: so its input is the output folder's ``data/`` and nothing else
(``errors.ndjson`` and ``manifest.json`` sit beside it, uploaded for the record, not imported). It
takes at most `MAX_FILES` files, and HealthLake runs one import job at a time per data store.

Clients (``s3``, ``healthlake``) are the caller's, built with `fhirpipes.pipes.aws.AwsConfig`;
this module imports no AWS library. Errors name the call and the AWS error code, never a message
text or a file's content.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fhirpipes.errors import ConfigurationError, FhirpipesError

MAX_FILES = 10_000
"""Files one StartFHIRImportJob takes (a HealthLake quota that can't be raised)."""
DATA = "data"
_BUSY = ("ConflictException", "ThrottlingException")


class HealthLakeError(FhirpipesError):
    """An upload or an import call failed: which, and the AWS error code (never a message text)."""


def upload(out_dir: Path, s3_uri: str, client: Any, *, kms_key_id: str | None = None) -> str:
    """Upload the output folder's files to ``s3_uri``, keeping their layout; returns the S3 URI of its
    ``data/`` prefix (the import's input).

    ``data/`` must hold only ``.ndjson`` files, and the S3 prefix's ``data/`` no other objects than
    these (the import would read them too). With ``kms_key_id``, each object is encrypted with that
    KMS key (``aws:kms``); else the bucket's default encryption applies. The data files go first,
    ``manifest.json`` last. ``client`` is an S3 client.
    """
    bucket, prefix = parse_s3_uri(s3_uri)
    data = out_dir / DATA
    if not data.is_dir():
        raise ConfigurationError(f"{out_dir}: no {DATA}/ folder: not a backfill's output folder")
    files = sorted(path for path in out_dir.rglob("*") if path.is_file() and not path.name.startswith("."))
    data_files = [path for path in files if path.parent == data]
    others = [path for path in files if path.is_relative_to(data) and path not in data_files]
    odd = [path for path in data_files if path.suffix != ".ndjson"] + others
    if odd:
        raise ConfigurationError(
            f"{odd[0]}: HealthLake would import it as NDJSON: {DATA}/ may hold only its .ndjson files"
        )
    if not data_files:
        raise ConfigurationError(f"{data}: no .ndjson files: nothing to import")
    if len(data_files) > MAX_FILES:
        raise ConfigurationError(_too_many(len(data_files)))
    data_prefix = _join(prefix, DATA) + "/"
    keys = {_join(prefix, path.relative_to(out_dir).as_posix()) for path in data_files}
    try:
        stray = [key for key in list_keys(client, bucket, data_prefix) if key not in keys]
    except Exception as exc:
        raise HealthLakeError(f"listing s3://{bucket}/{data_prefix} failed: {_describe(exc)}") from None
    if stray:
        raise ConfigurationError(
            f"s3://{bucket}/{data_prefix} already holds {len(stray)} other object(s) (e.g. {stray[0]}), "
            "which the import would read too: upload to a new prefix"
        )
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else None
    rest = [path for path in files if path not in data_files]
    rest.sort(key=lambda path: path.name == "manifest.json")  # last: the upload is complete
    for path in [*data_files, *rest]:
        key = _join(prefix, path.relative_to(out_dir).as_posix())
        try:
            client.upload_file(str(path), bucket, key, ExtraArgs=extra)
        except Exception as exc:
            # from None: S3's message may quote the key; the file is named here, its content never
            raise HealthLakeError(
                f"uploading {path} to s3://{bucket}/{key} failed: {_describe(exc)}"
            ) from None
    return f"s3://{bucket}/{data_prefix}"


def start_import(
    client: Any,
    *,
    datastore_id: str,
    input_s3_uri: str,
    output_s3_uri: str,
    kms_key_id: str,
    role_arn: str,
    job_name: str,
    client_token: str,
    files: int | None = None,
    s3_client: Any = None,
) -> str:
    """Start the HealthLake import of ``input_s3_uri`` (the ``data/`` prefix) and return its JobId.

    HealthLake writes the job's results under ``output_s3_uri``, encrypted with ``kms_key_id``, and
    reads both through ``role_arn``. ``client_token`` makes the call idempotent (a rerun with the
    same token starts no second job). More than `MAX_FILES` input files (``files``, else counted
    with ``s3_client`` when given) is refused before the call. ``client`` is a HealthLake client.
    """
    from fhirpipes.pipes.retry import error_code

    parse_s3_uri(input_s3_uri)
    parse_s3_uri(output_s3_uri)
    for name, value in (("kms_key_id", kms_key_id), ("role_arn", role_arn), ("datastore_id", datastore_id)):
        if not value:
            raise ConfigurationError(f"the HealthLake import needs {name}")
    if files is None and s3_client is not None:
        bucket, prefix = parse_s3_uri(input_s3_uri)
        try:
            files = sum(1 for _ in list_keys(s3_client, bucket, prefix.rstrip("/") + "/" if prefix else ""))
        except Exception as exc:
            raise HealthLakeError(f"listing {input_s3_uri} failed: {_describe(exc)}") from None
    if files is not None and files > MAX_FILES:
        raise ConfigurationError(_too_many(files))
    if files == 0:
        raise ConfigurationError(f"{input_s3_uri} holds no files: nothing to import")
    try:
        answer = client.start_fhir_import_job(
            JobName=job_name,
            InputDataConfig={"S3Uri": input_s3_uri},
            JobOutputDataConfig={"S3Configuration": {"S3Uri": output_s3_uri, "KmsKeyId": kms_key_id}},
            DatastoreId=datastore_id,
            DataAccessRoleArn=role_arn,
            ClientToken=client_token,
        )
    except Exception as exc:
        code, _ = error_code(exc)
        if code in _BUSY:
            raise HealthLakeError(
                f"HealthLake did not start the import ({code}): it runs one import job at a time per "
                f"data store, and {datastore_id} is likely running one: wait for it to end, then run "
                "this again (the same client token starts no second job)"
            ) from None
        raise HealthLakeError(f"StartFHIRImportJob on {datastore_id} failed: {_describe(exc)}") from None
    return str(answer["JobId"])


def describe_import(client: Any, datastore_id: str, job_id: str) -> dict[str, Any]:
    """An import job's state, JSON-ready: ``jobId``, ``jobName``, ``status`` (``SUBMITTED``,
    ``IN_PROGRESS``, ``COMPLETED``, ``COMPLETED_WITH_ERRORS``, ``FAILED``, ...), ``submitTime``,
    ``endTime``, ``message``, ``output`` (where its results are) and ``progress`` (its counts)."""
    try:
        answer = client.describe_fhir_import_job(DatastoreId=datastore_id, JobId=job_id)
    except Exception as exc:
        raise HealthLakeError(f"DescribeFHIRImportJob on {datastore_id} failed: {_describe(exc)}") from None
    job: Mapping[str, Any] = answer.get("ImportJobProperties") or {}
    output = (job.get("JobOutputDataConfig") or {}).get("S3Configuration") or {}
    return {
        "jobId": job.get("JobId", job_id),
        "jobName": job.get("JobName"),
        "status": job.get("JobStatus"),
        "submitTime": _time(job.get("SubmitTime")),
        "endTime": _time(job.get("EndTime")),
        "message": job.get("Message"),
        "output": output.get("S3Uri"),
        "progress": dict(job.get("JobProgressReport") or {}),
    }


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at its ends)."""
    if not uri.startswith("s3://"):
        raise ConfigurationError(f"{uri!r} is not an S3 URI: give s3://BUCKET/PREFIX")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ConfigurationError(f"{uri!r} names no bucket: give s3://BUCKET/PREFIX")
    return bucket, prefix.strip("/")


def list_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    """The keys under ``prefix`` in ``bucket`` (every page of ListObjectsV2)."""
    keys: list[str] = []
    token: str | None = None
    while True:
        page = client.list_objects_v2(
            Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {})
        )
        keys.extend(str(item["Key"]) for item in page.get("Contents") or ())
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return keys


def _describe(exc: BaseException) -> str:
    """An AWS failure in a word: its error code (``AccessDeniedException``), else the exception's
    type and errno (`fhirpipes.pipes.retry.describe`); never its message, which may quote a request."""
    from fhirpipes.pipes.retry import describe as described
    from fhirpipes.pipes.retry import error_code

    code, _ = error_code(exc)
    return code or described(exc)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _too_many(count: int) -> str:
    return (
        f"{count} files to import: a HealthLake import takes at most {MAX_FILES}; rerun the backfill "
        "into a new folder with a larger --max-file-bytes (each partition writes at least one file "
        "per resource type)"
    )


def _time(value: Any) -> str | None:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return None if value is None else str(value)
