"""DynamoDB exports for tests: the layout AWS writes, built from AttributeValue items.

`write_export` lays out what ``ExportTableToPointInTime`` (``DYNAMODB_JSON``) leaves in S3 under
``<prefix>/AWSDynamoDB/<export-id>/``; `upload_export` puts it into a bucket at the same keys.
`patient_items` and `every_type_item` are items for the Patients table.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from fhirpipes.testing.stream import attribute_values


def data_file_name(export_id: str, index: int) -> str:
    """A stable name that looks like AWS's (26 lowercase base32 characters)."""
    digest = hashlib.sha256(f"{export_id}/{index}".encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:26].lower() + ".json.gz"


def write_export(
    root: Path,
    items: Sequence[Mapping[str, Any]],
    *,
    table: str = "Patients",
    files: int = 3,
    export_id: str = "01764547200000-1a2b3c4d",
    export_time: str = "2026-12-01T00:00:00.000Z",
    prefix: str = "exports",
    poison: Iterable[str] = (),
    manifests: bool = True,
    region: str = "us-east-1",
    account: str = "123456789012",
) -> Path:
    """Write an export of ``items`` (AttributeValue maps) under ``root``; returns the export folder.

    Items go to the ``files`` data files round-robin, in order (so a file beyond ``len(items)``
    is empty, as an empty table partition's is); ``poison`` lines (raw text) go into the first
    file after its first item. ``manifests=False`` writes the data files only, as moto does.
    """
    folder = root / prefix / "AWSDynamoDB" / export_id
    data = folder / "data"
    data.mkdir(parents=True)
    lines: list[list[str]] = [[] for _ in range(files)]
    counts = [0] * files
    for index, item in enumerate(items):
        lines[index % files].append(json.dumps({"Item": item}, separators=(",", ":")))
        counts[index % files] += 1
    lines[0][1:1] = list(poison)
    key_prefix = f"{prefix}/AWSDynamoDB/{export_id}"
    entries = []
    for index, file_lines in enumerate(lines):
        name = data_file_name(export_id, index)
        text = "".join(line + "\n" for line in file_lines).encode()
        content = gzip.compress(text, mtime=0)
        (data / name).write_bytes(content)
        entries.append(
            {
                "itemCount": counts[index],
                "md5Checksum": base64.b64encode(hashlib.md5(content).digest()).decode("ascii"),
                "etag": hashlib.md5(content).hexdigest(),
                "dataFileS3Key": f"{key_prefix}/data/{name}",
            }
        )
    if not manifests:
        return folder
    table_arn = f"arn:aws:dynamodb:{region}:{account}:table/{table}"
    manifest_files = "".join(json.dumps(entry) + "\n" for entry in entries).encode()
    when = datetime.datetime.fromisoformat(export_time)
    summary = {
        "version": "2020-06-30",
        "exportArn": f"{table_arn}/export/{export_id}",
        "startTime": _iso(when + datetime.timedelta(seconds=5)),
        "endTime": _iso(when + datetime.timedelta(minutes=5)),
        "tableArn": table_arn,
        "tableId": str(_uuid(table)),
        "exportTime": export_time,
        "s3Bucket": "fhirpipes-exports",
        "s3Prefix": prefix,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": f"{key_prefix}/manifest-files.json",
        "billedSizeBytes": sum(len(json.dumps(item)) for item in items),
        "itemCount": len(items),
        "outputFormat": "DYNAMODB_JSON",
    }
    summary_bytes = json.dumps(summary).encode()
    for name, content in (("manifest-files", manifest_files), ("manifest-summary", summary_bytes)):
        (folder / f"{name}.json").write_bytes(content)
        (folder / f"{name}.checksum").write_text(hashlib.md5(content).hexdigest())
    (folder / "_started").write_bytes(b"")
    return folder


def upload_export(s3_client: Any, bucket: str, export_dir: Path, root: Path) -> None:
    """Put every file of ``export_dir`` into ``bucket``, keyed by its path relative to ``root``."""
    for path in sorted(export_dir.rglob("*")):
        if path.is_file():
            s3_client.put_object(Bucket=bucket, Key=path.relative_to(root).as_posix(), Body=path.read_bytes())


_FIRST = ["John", "Maria", "Wei", "Aisha", "Olga", "Kofi", "Lucia", "Hiro", "Noor", "Sam"]
_LAST = ["Smith", "Garcia", "Nguyen", "Okafor", "Ivanova", "Mensah", "Rossi", "Tanaka", "Haddad", "Lee"]
_CITIES = [("Tampa", "FL", "33612"), ("Austin", "TX", "73301"), ("Boston", "MA", "02108")]
_GENDERS = ["M", "F", "male", "female", "unknown"]


def patient_items(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` distinct Patients items (AttributeValue maps, key ``id``), lean and rich ones mixed.

    Shaped like plugins/patient/samples.json; the same ``n`` and ``seed`` give the same items.
    """
    rng = random.Random(seed)
    items = []
    for index in range(n):
        item: dict[str, Any] = {"id": f"p-{seed}-{index:06d}", "lastName": rng.choice(_LAST)}
        if index % 3:  # two in three are rich
            city, state, postal = rng.choice(_CITIES)
            item.update(
                firstName=rng.choice(_FIRST),
                gender=rng.choice(_GENDERS),
                birthDate=f"{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}-{rng.randint(1930, 2020)}",
                phone=f"+1 813 555 {rng.randint(0, 9999):04d}",
                email=f"patient{index}@example.org",
                mrn=f"MRN-{seed}-{index:06d}",
                active=rng.random() < 0.8,
                address={
                    "address1": f"{rng.randint(1, 9999)} Main St",
                    "city": city,
                    "state": state,
                    "postalCode": postal,
                },
            )
            if index % 3 == 2:
                item.update(
                    middleName=rng.choice(_FIRST), prefix="Dr.", suffix="Jr.", mobilePhone="+1 813 555 0199"
                )
                item["address"]["country"] = "US"
        else:
            item["gender"] = rng.choice(_GENDERS)
        items.append(attribute_values(item))
    return items


def every_type_item() -> dict[str, Any]:
    """One Patients item that also holds every AttributeValue type, in attributes the template ignores."""
    return attribute_values(
        {
            "id": "p-every-type",
            "lastName": "Types",
            "firstName": "Every",
            "xString": "text",
            "xNumber": Decimal("12.50"),
            "xBinary": b"\x00\x01\xfe\xff",
            "xBool": True,
            "xNull": None,
            "xMap": {"inner": "value", "depth": {"n": 1}},
            "xList": ["a", 1, False, None, b"\x02"],
            "xStringSet": {"a", "b"},
            "xNumberSet": {1, Decimal("2.5")},
            "xBinarySet": {b"\x00", b"\x01"},
        }
    )


def _iso(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _uuid(text: str) -> str:
    digest = hashlib.md5(text.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"
