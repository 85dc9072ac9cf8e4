"""Checkpoints: the last delivered sequence number of each shard, per Pipe and stream.

The runner advances a shard's checkpoint only after the target accepted the batch, and a
restart resumes ``AFTER_SEQUENCE_NUMBER`` it: no change is lost or delivered twice (as long as
a delivery that fails is not retried by hand with the same events). The file is JSON, written
atomically (a temporary file in the same folder, flushed, fsynced and renamed over the old one),
so a crash leaves the old or the new version, never half of one::

    {"version": 1,
     "pipes": {"<pipe name>": {"<stream ARN>": {"<shard id>": "<sequence number>"}}}}

Keys are stream ARNs, so the checkpoints of a table that was deleted and recreated (a new stream
label) never apply to the new stream. Only sequence numbers are stored: no record value.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fhirpipes.errors import ConfigurationError

VERSION = 1
DEFAULT_PATH = Path(".fhirpipes") / "checkpoints.json"


class Checkpoints:
    """Checkpoints in memory, saved to ``path`` on each `advance` (``path=None``: memory only)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._pipes: dict[str, dict[str, dict[str, str]]] = {}
        if self.path is not None and self.path.exists():
            self._pipes = _load(self.path)

    def shards(self, pipe: str, stream_arn: str) -> dict[str, str]:
        """Shard id -> last delivered sequence number, for one Pipe and stream (a copy)."""
        return dict(self._pipes.get(pipe, {}).get(stream_arn, {}))

    def get(self, pipe: str, stream_arn: str, shard_id: str) -> str | None:
        """The last delivered sequence number of a shard, or ``None``."""
        return self._pipes.get(pipe, {}).get(stream_arn, {}).get(shard_id)

    def advance(self, pipe: str, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        """Record that everything up to ``sequence_number`` in the shard was delivered, and save."""
        current = self.get(pipe, stream_arn, shard_id)
        if current is not None and int(current) >= int(sequence_number):
            return
        self._pipes.setdefault(pipe, {}).setdefault(stream_arn, {})[shard_id] = sequence_number
        self.save()

    def save(self) -> None:
        """Write the file atomically (nothing to do in memory-only mode)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"version": VERSION, "pipes": self._pipes}, indent=2, sort_keys=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _load(path: Path) -> dict[str, dict[str, dict[str, str]]]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"can't read the checkpoint file {path}: {type(exc).__name__}") from exc
    pipes = data.get("pipes") if isinstance(data, dict) and data.get("version") == VERSION else None
    valid = isinstance(pipes, dict) and all(
        isinstance(streams, dict)
        and all(
            isinstance(shards, dict)
            and all(isinstance(k, str) and isinstance(v, str) and v.isdigit() for k, v in shards.items())
            for shards in streams.values()
        )
        for streams in pipes.values()
    )
    if not valid:
        raise ConfigurationError(
            f"the checkpoint file {path} is not a fhirpipes checkpoint file (version {VERSION}); "
            "move it away to start over"
        )
    return pipes  # type: ignore[return-value]
