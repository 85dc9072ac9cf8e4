"""The dead-letter file: events a target can never take, set aside so the run goes on.

As a Pipe sends what its target refuses to its dead-letter queue, the local runner appends one
JSON line per such event to a file beside the checkpoints (``<checkpoint>.dead-letters.jsonl``):
where it came from (Pipe, stream ARN, shard, sequence number, eventID), which target refused it
and why. The event itself is written only when asked for (``--dead-letter-bodies``): it is PHI.
The file is an `AppendFile` whose length is saved with the checkpoint, so an entry is written
once, whatever the crash. Without a path (memory-only checkpoints from Python), entries are
kept in `DeadLetters.entries`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from fhirpipes.pipes.appendfile import AppendFile, check_writable

SUFFIX = ".dead-letters.jsonl"


def dead_letter_path(checkpoint: str | os.PathLike[str]) -> Path:
    """The dead-letter file beside a checkpoint file: ``cp.json`` -> ``cp.dead-letters.jsonl``."""
    path = Path(checkpoint)
    return path.with_name(path.stem + SUFFIX)


class DeadLetters:
    """Where refused events go (``path=None``: kept in memory, in `entries`).

    Args:
        path: the dead-letter file (created on the first entry).
        bodies: also write the refused event itself (PHI: off unless asked for).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, bodies: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.bodies = bodies
        self.file = AppendFile(self.path) if self.path is not None else None
        self.entries: list[dict[str, Any]] = []

    def check(self) -> None:
        """`ConfigurationError` unless the file can be written (checked before the run starts)."""
        if self.path is not None:
            check_writable(self.path, "the dead-letter file")

    def add(self, entries: list[dict[str, Any]], events: list[Any]) -> None:
        """Append one entry per refused event (``events[i]`` goes with ``entries[i]``, written only
        with ``bodies``), fsynced before the batch is checkpointed."""
        if not entries:
            return
        time = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        lines = []
        for entry, event in zip(entries, events, strict=True):
            line = {"time": time, **entry}
            if self.bodies:
                line["event"] = event
            lines.append(line)
        if self.file is None:
            self.entries.extend(lines)
            return
        text = "".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines)
        self.file.append(text.encode("utf-8"))

    # The checkpoint protocol, as `Target` has it (see `fhirpipes.pipes.appendfile`).

    @property
    def key(self) -> str:
        return self.file.key if self.file is not None else "dead-letters"

    def position(self) -> dict[str, Any] | None:
        return self.file.state() if self.file is not None else None

    def recover(self, position: dict[str, Any] | None) -> None:
        if self.file is not None:
            self.file.recover(position)

    def commit(self) -> None:
        if self.file is not None:
            self.file.commit()

    def rollback(self) -> None:
        if self.file is not None:
            self.file.rollback()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
