"""A folder that a backfill's output and state go to: a local directory, or an S3 prefix (``s3://bucket/prefix``).

Every write is whole or absent: a local file is written beside its name and renamed into place
(`os.replace` is atomic), an S3 object is one PUT. So a backfill killed at any point leaves
each file either as a finished run wrote it or not there, and a rerun that writes it again
writes the same bytes under the same name: nothing is ever there twice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from fhirpipes.errors import ConfigurationError
from fhirpipes.pipes.aws import AwsConfig


class Folder:
    """Files by relative name (``data/Patient-00000-000.ndjson``) under a local or S3 root."""

    def __init__(self, url: str, aws: AwsConfig | None = None) -> None:
        self.url = url.rstrip("/") if url.startswith("s3://") else url
        self._aws = aws or AwsConfig()
        if self.url.startswith("s3://"):
            bucket, _, prefix = self.url[len("s3://") :].partition("/")
            if not bucket:
                raise ConfigurationError(f"{url}: give s3://BUCKET/PREFIX")
            self._bucket, self._prefix = bucket, f"{prefix}/" if prefix else ""
            self._root: Path | None = None
        else:
            self._root = Path(url)

    @property
    def is_local(self) -> bool:
        """Whether this is a local directory (else an S3 prefix)."""
        return self._root is not None

    def path(self, name: str) -> Path:
        """The local path of ``name`` (local folders only)."""
        assert self._root is not None
        return self._root / name

    def location(self, name: str) -> str:
        """Where ``name`` is, as a user would look for it (a path or an ``s3://`` URL)."""
        return str(self.path(name)) if self._root is not None else f"s3://{self._bucket}/{self._prefix}{name}"

    def clear_scratch(self) -> None:
        """Remove what killed runs left in the scratch space (call before any worker starts)."""
        if self._root is not None:
            shutil.rmtree(self._root / ".tmp", ignore_errors=True)

    def scratch(self) -> tempfile.TemporaryDirectory[str]:
        """A temporary directory to build files in: inside the folder when local (so `put_file` is a rename)."""
        if self._root is not None:
            base = self._root / ".tmp"
            base.mkdir(parents=True, exist_ok=True)
            return tempfile.TemporaryDirectory(dir=base)
        return tempfile.TemporaryDirectory(prefix="fhirpipes-backfill-")

    def put_file(self, name: str, source: Path) -> None:
        """Move the finished file ``source`` to ``name``, replacing what is there."""
        if self._root is not None:
            target = self.path(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(source, target)
            except OSError:  # another file system (the state folder elsewhere): copy beside, then rename
                partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
                shutil.copyfile(source, partial)
                os.replace(partial, target)
        else:
            self._s3().upload_file(str(source), self._bucket, self._prefix + name)

    def put_bytes(self, name: str, data: bytes) -> None:
        """Write ``data`` as ``name``, whole or not at all."""
        if self._root is not None:
            target = self.path(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            with open(partial, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, target)
        else:
            self._s3().put_object(Bucket=self._bucket, Key=self._prefix + name, Body=data)

    def get_bytes(self, name: str) -> bytes | None:
        """The content of ``name``, or None when there is no such file."""
        if self._root is not None:
            try:
                return self.path(name).read_bytes()
            except FileNotFoundError:
                return None
        client = self._s3()
        try:
            body = client.get_object(Bucket=self._bucket, Key=self._prefix + name)["Body"]
        except client.exceptions.NoSuchKey:
            return None
        data: bytes = body.read()
        return data

    def copy_into(self, name: str, handle: IO[bytes]) -> None:
        """Append the content of ``name`` to ``handle``, streamed (a file may be larger than memory);
        `FileNotFoundError` when there is no such file."""
        if self._root is not None:
            with open(self.path(name), "rb") as source:
                shutil.copyfileobj(source, handle)
            return
        client = self._s3()
        try:
            client.download_fileobj(self._bucket, self._prefix + name, handle)
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(self.location(name)) from None
            raise

    def _s3(self) -> Any:
        from fhirpipes.backfill.sources import aws_client  # one client per process (boto3: lazily)

        return aws_client(self._aws, "s3")
