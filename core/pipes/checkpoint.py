"""Checkpoints: the last delivered sequence number of each shard, per Pipe and stream, and the
length of each exactly-once output file.

The runner advances a shard's checkpoint only after the target accepted the batch, and a
restart resumes ``AFTER_SEQUENCE_NUMBER`` it: no change is lost. Whether one is delivered twice
depends on the target (`fhirpipes.pipes.targets`): a kill after the target's write and before
this file's rename repeats the batch, unless the target is exactly-once. For those (the file
target, the dead-letter file) the same write also records the output's length (``outputs``), so
a restart cuts what was written after it (`fhirpipes.pipes.appendfile`). The file is JSON,
written atomically (a temporary file in the same folder, flushed, fsynced and renamed over the
old one), so a crash leaves the old or the new version, never half::

    {"version": 2,
     "pipes": {"<pipe name>": {"<stream ARN>": {"<shard id>": "<sequence number>"}}},
     "outputs": {"file:<absolute path>": {"offset": <bytes>, "tail": "<sha256 of the bytes before>"}}}

Version 1 files (no ``outputs``) are read as they are. Keys are stream ARNs, so the checkpoints
of a table that was deleted and recreated (a new stream label) never apply to the new stream.
Only sequence numbers, lengths and hashes are stored: no record value.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fhirpipes.errors import ConfigurationError

VERSION = 2
READABLE_VERSIONS = (1, 2)
DEFAULT_PATH = Path(".fhirpipes") / "checkpoints.json"


class Checkpoints:
    """Checkpoints in memory, saved to ``path`` on each `advance` (``path=None``: memory only)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._pipes: dict[str, dict[str, dict[str, str]]] = {}
        self._outputs: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            self._pipes, self._outputs = _load(self.path)

    def shards(self, pipe: str, stream_arn: str) -> dict[str, str]:
        """Shard id -> last delivered sequence number, for one Pipe and stream (a copy)."""
        return dict(self._pipes.get(pipe, {}).get(stream_arn, {}))

    def get(self, pipe: str, stream_arn: str, shard_id: str) -> str | None:
        """The last delivered sequence number of a shard, or ``None``."""
        return self._pipes.get(pipe, {}).get(stream_arn, {}).get(shard_id)

    def output(self, key: str) -> dict[str, Any] | None:
        """What was saved for an exactly-once output (`Target.position`), or ``None``."""
        saved = self._outputs.get(key)
        return dict(saved) if saved is not None else None

    def record_outputs(self, outputs: dict[str, dict[str, Any]]) -> None:
        """Save the outputs' positions (where they start, before the first batch)."""
        if self._update_outputs(outputs):
            self.save()

    def advance(
        self,
        pipe: str,
        stream_arn: str,
        shard_id: str,
        sequence_number: str,
        outputs: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Record that everything up to ``sequence_number`` in the shard was delivered, with the
        outputs' positions after it, and save: one atomic write for both."""
        changed = self._update_outputs(outputs or {})
        current = self.get(pipe, stream_arn, shard_id)
        if current is None or int(current) < int(sequence_number):
            self._pipes.setdefault(pipe, {}).setdefault(stream_arn, {})[shard_id] = sequence_number
            changed = True
        if changed:
            self.save()

    def _update_outputs(self, outputs: dict[str, dict[str, Any]]) -> bool:
        changed = False
        for key, position in outputs.items():
            if self._outputs.get(key) != position:
                self._outputs[key] = dict(position)
                changed = True
        return changed

    def save(self) -> None:
        """Write the file atomically (nothing to do in memory-only mode)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(
            {"version": VERSION, "pipes": self._pipes, "outputs": self._outputs}, indent=2, sort_keys=True
        )
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
        # The folder is not fsynced: if a power cut loses this rename, the old checkpoint is
        # read, the outputs are cut back to its lengths and the batch is written again, once.


def _load(path: Path) -> tuple[dict[str, dict[str, dict[str, str]]], dict[str, dict[str, Any]]]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"can't read the checkpoint file {path}: {type(exc).__name__}") from exc
    readable = isinstance(data, dict) and data.get("version") in READABLE_VERSIONS
    pipes = data.get("pipes") if readable else None
    outputs = data.get("outputs", {}) if readable else None
    valid = isinstance(pipes, dict) and all(
        isinstance(streams, dict)
        and all(
            isinstance(shards, dict)
            and all(isinstance(k, str) and isinstance(v, str) and v.isdigit() for k, v in shards.items())
            for shards in streams.values()
        )
        for streams in pipes.values()
    )
    valid = valid and isinstance(outputs, dict) and all(isinstance(v, dict) for v in outputs.values())
    if not valid:
        raise ConfigurationError(
            f"the checkpoint file {path} is not a fhirpipes checkpoint file (version {VERSION}); "
            "move it away to start over"
        )
    return pipes, outputs  # type: ignore[return-value]
