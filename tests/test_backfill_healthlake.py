"""HealthLake's bulk import of a backfill's output (`fhirpipes.backfill.healthlake`): the upload
against moto's S3 (the embedded server), the import calls against botocore's Stubber."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from fhirpipes.backfill.healthlake import (
    MAX_FILES,
    HealthLakeError,
    describe_import,
    start_import,
    upload,
)
from fhirpipes.errors import ConfigurationError
from fhirpipes.pipes.aws import AwsConfig

DATASTORE = "0123456789abcdef0123456789abcdef"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0b9c8a7e-1111-2222-3333-444455556666"
ROLE = "arn:aws:iam::123456789012:role/healthlake-import"
BUCKET = "backfill-output"


def output_folder(root: Path) -> Path:
    """A backfill's output folder, as the backfill writes it."""
    out = root / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "Patient-00000-001.ndjson").write_text('{"resourceType":"Patient","id":"a"}\n')
    (out / "data" / "Patient-00001-001.ndjson").write_text('{"resourceType":"Patient","id":"b"}\n')
    (out / "data" / "Practitioner-00000-001.ndjson").write_text('{"resourceType":"Practitioner","id":"c"}\n')
    (out / "errors.ndjson").write_text('{"where":"data/x.json.gz:3"}\n')
    (out / "manifest.json").write_text(json.dumps({"written": 3}))
    return out


# --- the upload, against moto's S3 ------------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    from fhirpipes.pipes.embedded import EmbeddedAws

    with EmbeddedAws() as server:
        client = server.config.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def keys(s3: Any, prefix: str) -> list[str]:
    return sorted(
        item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", ())
    )


@pytest.mark.slow  # starts the embedded server
def test_upload_keeps_the_layout_and_gives_the_data_prefix(s3: Any, tmp_path: Path) -> None:
    out = output_folder(tmp_path)
    data_uri = upload(out, f"s3://{BUCKET}/backfills/run-1/", s3, kms_key_id=KMS_KEY)
    assert data_uri == f"s3://{BUCKET}/backfills/run-1/data/"
    # The import's input: exactly the data files.
    assert keys(s3, "backfills/run-1/data/") == [
        "backfills/run-1/data/Patient-00000-001.ndjson",
        "backfills/run-1/data/Patient-00001-001.ndjson",
        "backfills/run-1/data/Practitioner-00000-001.ndjson",
    ]
    assert keys(s3, "backfills/run-1/") == [
        *keys(s3, "backfills/run-1/data/"),
        "backfills/run-1/errors.ndjson",
        "backfills/run-1/manifest.json",
    ]
    for key in keys(s3, "backfills/run-1/"):
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KMS_KEY)
    body = s3.get_object(Bucket=BUCKET, Key="backfills/run-1/data/Practitioner-00000-001.ndjson")["Body"]
    assert body.read() == (out / "data" / "Practitioner-00000-001.ndjson").read_bytes()
    # A rerun uploads the same files over themselves.
    assert upload(out, f"s3://{BUCKET}/backfills/run-1", s3, kms_key_id=KMS_KEY) == data_uri
    assert len(keys(s3, "backfills/run-1/")) == 5


@pytest.mark.slow  # starts the embedded server
def test_upload_without_a_key_leaves_encryption_to_the_bucket(s3: Any, tmp_path: Path) -> None:
    out = output_folder(tmp_path)
    assert upload(out, f"s3://{BUCKET}/plain", s3) == f"s3://{BUCKET}/plain/data/"
    assert "SSEKMSKeyId" not in s3.head_object(Bucket=BUCKET, Key="plain/manifest.json")


@pytest.mark.slow  # starts the embedded server
def test_upload_refuses_a_prefix_whose_data_holds_other_objects(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="used/data/Observation-00000-001.ndjson", Body=b"{}\n")
    with pytest.raises(ConfigurationError, match=r"already holds 1 other object\(s\).*new prefix"):
        upload(output_folder(tmp_path), f"s3://{BUCKET}/used/", s3)
    assert keys(s3, "used/") == ["used/data/Observation-00000-001.ndjson"]  # nothing uploaded


@pytest.mark.slow  # starts the embedded server
def test_upload_refuses_a_data_folder_the_import_could_not_read(s3: Any, tmp_path: Path) -> None:
    out = output_folder(tmp_path)
    (out / "data" / "notes.txt").write_text("SECRET")
    with pytest.raises(ConfigurationError, match=r"notes\.txt: HealthLake would import it") as raised:
        upload(out, f"s3://{BUCKET}/odd/", s3)
    assert "SECRET" not in str(raised.value)
    (out / "data" / "notes.txt").unlink()
    (out / "data" / "nested").mkdir()
    (out / "data" / "nested" / "Patient-1.ndjson").write_text("{}\n")
    with pytest.raises(ConfigurationError, match=r"Patient-1\.ndjson: HealthLake would import it"):
        upload(out, f"s3://{BUCKET}/odd/", s3)
    with pytest.raises(ConfigurationError, match="no data/ folder"):
        upload(tmp_path / "nowhere", f"s3://{BUCKET}/odd/", s3)
    empty = tmp_path / "empty"
    (empty / "data").mkdir(parents=True)
    with pytest.raises(ConfigurationError, match="nothing to import"):
        upload(empty, f"s3://{BUCKET}/odd/", s3)
    assert keys(s3, "odd/") == []


@pytest.mark.slow  # starts the embedded server
def test_an_upload_failure_names_the_file_and_the_code_only(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(HealthLakeError, match=r"s3://no-such-bucket-here/x/data/ failed: NoSuchBucket$"):
        upload(output_folder(tmp_path), "s3://no-such-bucket-here/x", s3)


@pytest.mark.parametrize("uri", ["backfill-output/x", "s3://", "s3:///x", "https://s3.amazonaws.com/b/x"])
def test_upload_refuses_what_is_not_an_s3_uri(uri: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"S3 URI|names no bucket"):
        upload(output_folder(tmp_path), uri, None)


# --- the import calls, against botocore's Stubber -------------------------------------------------


@pytest.fixture
def healthlake() -> Iterator[tuple[Any, Stubber]]:
    client = AwsConfig.embedded("http://127.0.0.1:1").client("healthlake")  # the Stubber answers
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


IMPORT = {
    "datastore_id": DATASTORE,
    "input_s3_uri": f"s3://{BUCKET}/backfills/run-1/data/",
    "output_s3_uri": f"s3://{BUCKET}/imports/run-1/",
    "kms_key_id": KMS_KEY,
    "role_arn": ROLE,
    "job_name": "fhirpipes-backfill-Patients",
    "client_token": "3f1c0a9e2b7d4c6a8e5f",
}
EXPECTED = {
    "JobName": "fhirpipes-backfill-Patients",
    "InputDataConfig": {"S3Uri": f"s3://{BUCKET}/backfills/run-1/data/"},
    "JobOutputDataConfig": {
        "S3Configuration": {"S3Uri": f"s3://{BUCKET}/imports/run-1/", "KmsKeyId": KMS_KEY}
    },
    "DatastoreId": DATASTORE,
    "DataAccessRoleArn": ROLE,
    "ClientToken": "3f1c0a9e2b7d4c6a8e5f",
}
STARTED = {"JobId": "c145fbb27b192af392f8ce6e7838e34f", "JobStatus": "SUBMITTED", "DatastoreId": DATASTORE}


def test_start_import_sends_exactly_the_parameters_and_returns_the_job_id(
    healthlake: tuple[Any, Stubber],
) -> None:
    client, stubber = healthlake
    stubber.add_response("start_fhir_import_job", STARTED, EXPECTED)
    assert start_import(client, **IMPORT, files=3) == "c145fbb27b192af392f8ce6e7838e34f"


@pytest.mark.parametrize("code", ["ConflictException", "ThrottlingException"])
def test_an_import_already_running_says_one_at_a_time(healthlake: tuple[Any, Stubber], code: str) -> None:
    client, stubber = healthlake
    stubber.add_client_error("start_fhir_import_job", code, "SECRET text", 400, expected_params=EXPECTED)
    with pytest.raises(HealthLakeError, match=f"{code}.*one import job at a time per data store") as raised:
        start_import(client, **IMPORT)
    assert "SECRET" not in str(raised.value)


def test_other_import_errors_name_the_code_not_the_text(healthlake: tuple[Any, Stubber]) -> None:
    client, stubber = healthlake
    stubber.add_client_error("start_fhir_import_job", "AccessDeniedException", "SECRET text", 403)
    with pytest.raises(HealthLakeError, match=r"StartFHIRImportJob on \w+ failed: AccessDeniedException$"):
        start_import(client, **IMPORT)


def test_more_files_than_an_import_takes_are_refused_before_the_call(healthlake: tuple[Any, Stubber]) -> None:
    client, _ = healthlake  # no response queued: a call would fail the test
    with pytest.raises(ConfigurationError, match=f"{MAX_FILES + 1} files to import: .* at most {MAX_FILES}"):
        start_import(client, **IMPORT, files=MAX_FILES + 1)
    with pytest.raises(ConfigurationError, match="nothing to import"):
        start_import(client, **IMPORT, files=0)
    with pytest.raises(ConfigurationError, match="needs kms_key_id"):
        start_import(client, **{**IMPORT, "kms_key_id": ""})
    with pytest.raises(ConfigurationError, match="not an S3 URI"):
        start_import(client, **{**IMPORT, "output_s3_uri": "imports/run-1"})


def s3_pages(stubber: Stubber, *counts: int) -> None:
    """ListObjectsV2 of the input prefix, in pages of ``counts`` keys."""
    for page, count in enumerate(counts):
        last = page == len(counts) - 1
        answer: dict[str, Any] = {
            "Contents": [
                {"Key": f"backfills/run-1/data/Patient-{page:05d}-{n:03d}.ndjson"} for n in range(count)
            ],
            "IsTruncated": not last,
        }
        if not last:
            answer["NextContinuationToken"] = f"page-{page + 1}"
        expected = {"Bucket": BUCKET, "Prefix": "backfills/run-1/data/"}
        if page:
            expected["ContinuationToken"] = f"page-{page}"
        stubber.add_response("list_objects_v2", answer, expected)


def test_with_an_s3_client_the_input_files_are_counted(healthlake: tuple[Any, Stubber]) -> None:
    client, stubber = healthlake
    s3 = AwsConfig.embedded("http://127.0.0.1:1").client("s3")
    with Stubber(s3) as listing:
        s3_pages(listing, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1)
        with pytest.raises(ConfigurationError, match=f"{MAX_FILES + 1} files to import"):
            start_import(client, **IMPORT, s3_client=s3)
        s3_pages(listing, 2)
        stubber.add_response("start_fhir_import_job", STARTED, EXPECTED)
        assert start_import(client, **IMPORT, s3_client=s3) == STARTED["JobId"]
        listing.assert_no_pending_responses()


def test_describe_import_gives_the_status_json_ready(healthlake: tuple[Any, Stubber]) -> None:
    client, stubber = healthlake
    submitted = datetime.datetime(2026, 12, 2, 1, 0, tzinfo=datetime.UTC)
    properties = {
        "JobId": STARTED["JobId"],
        "JobName": "fhirpipes-backfill-Patients",
        "JobStatus": "IN_PROGRESS",
        "SubmitTime": submitted,
        "DatastoreId": DATASTORE,
        "InputDataConfig": {"S3Uri": IMPORT["input_s3_uri"]},
        "JobOutputDataConfig": {"S3Configuration": {"S3Uri": IMPORT["output_s3_uri"], "KmsKeyId": KMS_KEY}},
        "JobProgressReport": {"TotalNumberOfScannedFiles": 3, "TotalNumberOfResourcesImported": 2},
        "DataAccessRoleArn": ROLE,
    }
    stubber.add_response(
        "describe_fhir_import_job",
        {"ImportJobProperties": properties},
        {"DatastoreId": DATASTORE, "JobId": STARTED["JobId"]},
    )
    described = describe_import(client, DATASTORE, STARTED["JobId"])
    assert described == {
        "jobId": STARTED["JobId"],
        "jobName": "fhirpipes-backfill-Patients",
        "status": "IN_PROGRESS",
        "submitTime": "2026-12-02T01:00:00+00:00",
        "endTime": None,
        "message": None,
        "output": IMPORT["output_s3_uri"],
        "progress": {"TotalNumberOfScannedFiles": 3, "TotalNumberOfResourcesImported": 2},
    }
    json.dumps(described)  # JSON-ready
    stubber.add_client_error("describe_fhir_import_job", "ResourceNotFoundException", "SECRET", 404)
    with pytest.raises(HealthLakeError, match=r"failed: ResourceNotFoundException$"):
        describe_import(client, DATASTORE, "nope")
