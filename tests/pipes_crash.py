"""A local Pipe run that SIGKILLs itself at a chosen step of a batch: the fault-injection driver.

``python tests/pipes_crash.py WORKDIR TARGET STEP N [RECORDS]`` runs the runner on a deterministic fake
stream (two shards, a poison record, a record whose event is over the target's limit) with
checkpoints in WORKDIR, and kills its own process with SIGKILL the Nth time it reaches STEP:
one of `fhirpipes.pipes.runner.STEPS`, or ``torn-write`` (half of a write to the target file is
on disk, then the kill). TARGET is ``file`` (WORKDIR/events.jsonl, exactly once) or ``stdout``
(at least once). STEP ``none`` runs to the end (or until the test kills it from outside);
RECORDS (default 30) makes the stream longer. The test restarts the run in its own process
(`make_runner`) and checks what the outputs hold.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipes_fakes import STREAM_ARN, FakeStreams

from fhirpipes.dispatch import Dispatcher
from fhirpipes.pipes.checkpoint import Checkpoints
from fhirpipes.pipes.runner import PipeDefinition, Runner
from fhirpipes.pipes.targets import FileTarget, StreamTarget, Target, too_large
from fhirpipes.plugins import load_registry
from fhirpipes.settings import Settings
from fhirpipes.testing.stream import attribute_values

LIMIT = 8_000  # bytes: the file target's stand-in for CloudWatch Logs' 256 KB
BATCH_SIZE = 4
POISON = "evt-105"
OVERSIZED = "evt-110"


class LimitedFile(FileTarget):
    """The file target with a per-message limit, so the dead-letter path is exercised too."""

    def refuse(self, message: str) -> str | None:
        return too_large(message, LIMIT, "test")


def stream(records: int = 30) -> FakeStreams:
    """Two shards, ``records`` INSERTs: ``evt-105`` can't be mapped, ``evt-110``'s event is over `LIMIT`."""
    fake = FakeStreams()
    fake.add_shard("s1")
    fake.add_shard("s2")
    for n in range(records):
        item: dict[str, Any] = {"id": f"p{n}", "firstName": "Zebediah", "lastName": "Smith"}
        if n == 4:
            item["birthDate"] = "not-a-date"
        if n == 9:
            item["lastName"] = "S" * (LIMIT + 100)
        fake.put("s1" if n < records * 3 // 5 else "s2", "INSERT", f"p{n}", new=attribute_values(item))
    return fake


def expected_event_ids(records: int = 30) -> list[str]:
    """Every event of the stream (one per record), in stream order."""
    return [f"evt-{101 + n}" for n in range(records)]


def make_runner(
    workdir: Path, target: Target, on_step: Callable[[str], None] | None = None, records: int = 30
) -> Runner:
    dispatcher = Dispatcher(load_registry(only=["patient"]), Settings())
    pipe = PipeDefinition(
        name="Patients-Patient-Pipe", table="Patients", stream_arn=STREAM_ARN, batch_size=BATCH_SIZE
    )
    return Runner(
        dispatcher,
        [pipe],
        streams_client=stream(records),
        target=target,
        checkpoints=Checkpoints(workdir / "checkpoints.json"),
        on_step=on_step,
        poll_seconds=0,
        delivery_backoff=0,
    )


def make_target(workdir: Path, kind: str, write: Callable[[int, memoryview], int] = os.write) -> Target:
    if kind == "file":
        return LimitedFile(workdir / "events.jsonl", write=write)
    return StreamTarget(sys.stdout)


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(workdir: Path, kind: str, step: str, nth: int, records: int = 30) -> None:
    seen = [0]

    def on_step(name: str) -> None:
        if name == step:
            seen[0] += 1
            if seen[0] == nth:
                kill()

    def torn_write(fd: int, data: memoryview) -> int:
        seen[0] += 1
        if seen[0] == nth:
            os.write(fd, data[: len(data) // 2])
            os.fsync(fd)
            kill()
        return os.write(fd, data)

    target = make_target(workdir, kind, torn_write if step == "torn-write" else os.write)
    make_runner(workdir, target, on_step, records).run(once=True)
    target.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), *map(int, sys.argv[5:6]))
