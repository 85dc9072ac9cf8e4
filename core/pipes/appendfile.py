"""An append-only file whose committed length is saved with the checkpoint: exactly-once appends.

The file target and the dead-letter file are JSON lines appended to a file. Appending and
checkpointing can't be one atomic step, so the checkpoint carries the file's length too: after a
batch is appended and fsynced, the checkpoint that moves the shard past it also records the new
length (and a hash of the bytes just before it), in the same atomic rename. On restart, anything
after the recorded length was written by a batch that was never checkpointed (or is half a line
torn by a crash): it is cut off, and the batch, read again from the stream, is appended again.
So each batch ends up in the file once, whole, wherever the process died.

A failed write (a disk that filled up) is cut off at once, before the retry: the retry appends
the chunk again, from the length before it. Writes go straight to the file descriptor
(``os.write``), so no buffer keeps an unwritten tail to flush later.

A run holds an exclusive lock (``flock``) on the file while it has it open, so a second run on the
same file is refused. What the file also guards against: a file shorter than its recorded length, or whose bytes before that
length are not the ones written, was changed outside the run; that is refused rather than
guessed at. The file belongs to the run that checkpoints it: don't append to it from elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fhirpipes.errors import ConfigurationError
from fhirpipes.logs import logger

TAIL_BYTES = 256  # how much of the file before the committed length is hashed
FILE_MODE = 0o600  # the lines are FHIR resources: PHI


def check_writable(path: Path, what: str, *, folder: bool = False) -> None:
    """`ConfigurationError` unless ``path`` can be created or appended to (checked, not created);
    with ``folder``, its folder must be writable too (a file replaced by a rename)."""
    if path.is_dir():
        raise ConfigurationError(f"{what} {path} is a directory; name a file")
    if path.exists():
        if not path.is_file():
            raise ConfigurationError(f"{what} {path} is not a regular file")
        if not os.access(path, os.W_OK):
            raise ConfigurationError(f"{what} {path} is not writable")
        if not folder:
            return
    ancestor = path.parent if str(path.parent) else Path()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigurationError(f"{what} {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigurationError(f"{what} {path}: the directory {ancestor} is not writable")


class AppendFile:
    """Appends bytes to ``path``; `state` is what the checkpoint saves, `recover` applies it.

    Args:
        path: the file (its folders are created on the first append).
        write: the function that writes to the descriptor (``os.write``; tests pass one that fails).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, write: Callable[[int, memoryview], int] = os.write
    ) -> None:
        self.path = Path(path)
        self.key = f"file:{os.path.abspath(self.path)}"
        self._write = write
        self._fd: int | None = None
        self.length: int | None = None  # None until `recover` (or the first append) reads the file
        self.committed: int | None = None
        self._tail = b""

    # --- the checkpoint protocol ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The length written so far and a hash of the bytes before it (for the checkpoint)."""
        self._ensure_length()
        return {"offset": self.length, "tail": hashlib.sha256(self._tail).hexdigest()}

    def recover(self, state: dict[str, Any] | None) -> None:
        """Bring the file to the state the checkpoint recorded (``None``: no record of this file).

        With a state: cut anything after its length (an uncheckpointed batch, a torn line); refuse a
        file shorter than it, or whose bytes before it changed. Without: keep the file as it is,
        except a last line torn by a crash (no newline at the end), which is cut off.
        """
        size = self._size()
        if state is None:
            length = size
            if size:
                tail = self._read_tail(size)
                if not tail.endswith(b"\n"):
                    length = _last_line_end(self.path, size)
        else:
            offset = state.get("offset")
            if not isinstance(offset, int) or offset < 0:
                raise ConfigurationError(f"the checkpoint's record of {self.path} is not valid")
            if size < offset:
                raise ConfigurationError(
                    f"{self.path} is shorter ({size} bytes) than the checkpoint recorded ({offset}): it was "
                    "changed outside the run; move it or the checkpoint file away to start over"
                )
            tail = self._read_tail(offset) if offset else b""
            if hashlib.sha256(tail).hexdigest() != state.get("tail"):
                raise ConfigurationError(
                    f"{self.path} is not the file the checkpoint recorded (its content before byte {offset} "
                    "changed); move it or the checkpoint file away to start over"
                )
            length = offset
        if length < size:
            logger.warning(
                "cut the end of an output file: a batch written but not checkpointed, or a line torn by a "
                "crash; the batch is read and written again",
                extra={"fhirpipes": {"file": str(self.path), "bytes": size - length}},
            )
            self._truncate(length)
        self.length = self.committed = length
        self._tail = self._read_tail(length) if length else b""

    def commit(self) -> None:
        """The checkpoint holding `state` is saved: a later restart keeps everything up to here."""
        self.committed = self.length

    def rollback(self) -> None:
        """Cut what was appended since the last `commit` (a batch that will be read again)."""
        if self.committed is not None and self.length is not None and self.length > self.committed:
            self._truncate(self.committed)

    # --- writing --------------------------------------------------------------------------------

    def append(self, data: bytes) -> None:
        """Append ``data`` and fsync; on any failure the file is cut back to where it was, so a
        retry sends the same bytes again and nothing of the failed try stays."""
        fd = self._open()
        start = self._ensure_length()
        try:
            view = memoryview(data)
            while view:
                written = self._write(fd, view)
                if written <= 0:
                    raise OSError(errno.EIO, "no progress writing")
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                self._truncate(start)
            raise
        self.length = start + len(data)
        self._tail = (self._tail + data)[-TAIL_BYTES:]

    def open(self) -> None:
        """Open (creating it and its folders) and lock the file now rather than at the first append."""
        self._open()

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # --- internals ------------------------------------------------------------------------------

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
            try:
                # Two runs appending to one file would interleave their batches and cut each
                # other's at restart: the second is refused while the first holds the file.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ConfigurationError(
                    f"{self.path} is being written by another run; give each run its own file"
                ) from None
            self._fd = fd
        return self._fd

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _ensure_length(self) -> int:
        if self.length is None:
            self.recover(None)
        assert self.length is not None
        return self.length

    def _read_tail(self, end: int) -> bytes:
        with self.path.open("rb") as handle:
            handle.seek(max(0, end - TAIL_BYTES))
            return handle.read(end - max(0, end - TAIL_BYTES))

    def _truncate(self, length: int) -> None:
        fd = self._open()
        os.ftruncate(fd, length)
        os.fsync(fd)
        self.length = length
        self._tail = self._read_tail(length) if length else b""


def _last_line_end(path: Path, size: int) -> int:
    """The length of ``path`` up to and including its last newline (0 if none)."""
    chunk = 64 * 1024
    with path.open("rb") as handle:
        end = size
        while end > 0:
            start = max(0, end - chunk)
            handle.seek(start)
            data = handle.read(end - start)
            at = data.rfind(b"\n")
            if at >= 0:
                return start + at + 1
            end = start
    return 0
