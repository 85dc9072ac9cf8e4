"""Where an export is read from: a local folder or an S3 prefix, listed, read and opened as streams.

S3 has no folders: a "folder" is a key prefix, its subfolders the common prefixes one ``/``
deeper. Files are opened as streams (S3's GetObject body), never read whole, except the small
manifests (`Folder.read`).
"""

from __future__ import annotations

import contextlib
import datetime
import pathlib
from typing import IO, Protocol

from fhirpipes.backfill.sources import SourceError, aws_client, error_code
from fhirpipes.pipes.aws import AwsConfig


class Folder(Protocol):
    """What the export reader asks of a folder."""

    @property
    def uri(self) -> str:
        """The folder as the user would write it: a local path, or ``s3://bucket/key`` (no ``/`` after)."""

    @property
    def name(self) -> str:
        """The last part of the path."""

    def child(self, name: str) -> Folder:
        """The subfolder ``name``."""

    def entries(self) -> tuple[list[str], dict[str, datetime.datetime]]:
        """The subfolders' names (sorted) and the files' names with their modification times (UTC)."""

    def read(self, name: str) -> bytes | None:
        """The whole of the (small) file ``name``, or ``None`` when there is none."""

    def location(self, name: str) -> str:
        """The file ``name``'s location, as `open_file` takes it."""


def folder(aws: AwsConfig, location: str) -> Folder:
    """The folder at ``location`` (``s3://bucket/key`` or a local path; a trailing ``/`` is allowed)."""
    if location.startswith("s3://"):
        bucket, key = split_s3(location)
        return S3Folder(aws, bucket, key)
    return LocalFolder(pathlib.Path(location).absolute())


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> ``("bucket", "a/b")``."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise SourceError(f"{uri}: an S3 location is s3://bucket/key")
    return bucket, key.strip("/")


def open_file(aws: AwsConfig, location: str) -> IO[bytes]:
    """A binary stream of the file at ``location`` (a local path or ``s3://bucket/key``)."""
    if location.startswith("s3://"):
        bucket, key = split_s3(location)
        try:
            body = aws_client(aws, "s3").get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as exc:  # botocore's ClientError (NoSuchKey, AccessDenied, ...) and friends
            raise SourceError(f"{location}: can't read it ({error_code(exc)})") from exc
        # StreamingBody has read() and close(), which is all gzip asks of it.
        return contextlib.closing(body)  # type: ignore[return-value]
    try:
        return open(location, "rb")  # the caller closes it
    except OSError as exc:
        raise SourceError(f"{location}: can't read it ({type(exc).__name__})") from exc


class LocalFolder:
    """A folder on this machine."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    @property
    def uri(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def child(self, name: str) -> Folder:
        return LocalFolder(self.path / name)

    def entries(self) -> tuple[list[str], dict[str, datetime.datetime]]:
        if not self.path.is_dir():
            return [], {}
        folders, files = [], {}
        for entry in sorted(self.path.iterdir()):
            if entry.is_dir():
                folders.append(entry.name)
            elif entry.is_file():
                files[entry.name] = datetime.datetime.fromtimestamp(entry.stat().st_mtime, datetime.UTC)
        return folders, files

    def read(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"{self.path / name}: can't read it ({type(exc).__name__})") from exc

    def location(self, name: str) -> str:
        return str(self.path / name)


class S3Folder:
    """A key prefix in an S3 bucket."""

    def __init__(self, aws: AwsConfig, bucket: str, key: str) -> None:
        self.aws = aws
        self.bucket = bucket
        self.key = key.strip("/")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def child(self, name: str) -> Folder:
        return S3Folder(self.aws, self.bucket, f"{self.key}/{name}" if self.key else name)

    def _prefix(self) -> str:
        return f"{self.key}/" if self.key else ""

    def entries(self) -> tuple[list[str], dict[str, datetime.datetime]]:
        prefix = self._prefix()
        folders: list[str] = []
        files: dict[str, datetime.datetime] = {}
        try:
            pages = aws_client(self.aws, "s3").get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                folders.extend(
                    entry["Prefix"][len(prefix) :].rstrip("/") for entry in page.get("CommonPrefixes", ())
                )
                for entry in page.get("Contents", ()):
                    name = entry["Key"][len(prefix) :]
                    if name:  # the "folder" object some tools create
                        files[name] = entry["LastModified"].astimezone(datetime.UTC)
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"{self.uri}: can't list it ({error_code(exc)})") from exc
        return sorted(folders), files

    def read(self, name: str) -> bytes | None:
        try:
            answer = aws_client(self.aws, "s3").get_object(Bucket=self.bucket, Key=self._prefix() + name)
            return bytes(answer["Body"].read())
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise SourceError(f"{self.location(name)}: can't read it ({error_code(exc)})") from exc

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._prefix()}{name}"
