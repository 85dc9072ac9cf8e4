"""The delivery guarantee under SIGKILL at every step of a batch, and under failing writes.

The guarantee (README, "Delivery guarantees"): nothing is lost; the file target and the
dead-letter file hold each event exactly once, whole; stdout (like CloudWatch Logs and SQS) gets
each event at least once, repeats only of the batch in hand at the kill, each with its eventID.
A real child process (tests/pipes_crash.py) kills itself with SIGKILL at the chosen step; the
restart runs here, on the same checkpoint file.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pipes_crash import OVERSIZED, POISON, expected_event_ids, make_runner, make_target

from fhirpipes.pipes.runner import STEPS
from fhirpipes.pipes.targets import FileTarget, deliver

DRIVER = Path(__file__).with_name("pipes_crash.py")


def crash(workdir: Path, kind: str, step: str, nth: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(DRIVER.parent)}
    completed = subprocess.run(
        [sys.executable, str(DRIVER), str(workdir), kind, step, str(nth)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert completed.returncode == -signal.SIGKILL, completed.stderr
    return completed


def lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file, each of which must parse (no torn or merged line)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "the file ends in a torn line"
    return [json.loads(line) for line in text.splitlines()]


def restart(workdir: Path, kind: str) -> None:
    target = make_target(workdir, kind)
    result = make_runner(workdir, target).run(once=True)
    target.close()
    assert result.reason == "caught-up"


def dead_letter_ids(workdir: Path) -> list[str]:
    return [entry["eventID"] for entry in lines(workdir / "checkpoints.dead-letters.jsonl")]


def committed_length(workdir: Path) -> int:
    """The target file's length as the checkpoint file holds it (0 before the first checkpoint)."""
    path = workdir / "checkpoints.json"
    if not path.exists():
        return 0
    key = f"file:{os.path.abspath(workdir / 'events.jsonl')}"
    return int(json.loads(path.read_text())["outputs"].get(key, {}).get("offset", 0))


KILL_POINTS = [(step, 3) for step in STEPS] + [("torn-write", 3), ("before-map", 1), ("after-write", 1)]


@pytest.mark.slow
@pytest.mark.parametrize(("step", "nth"), KILL_POINTS)
def test_a_kill_at_any_step_loses_nothing_and_repeats_nothing_in_the_file(
    tmp_path: Path, step: str, nth: int
) -> None:
    crash(tmp_path, "file", step, nth)
    written = (tmp_path / "events.jsonl").stat().st_size if (tmp_path / "events.jsonl").exists() else 0
    committed = committed_length(tmp_path)
    restart(tmp_path, "file")
    events = lines(tmp_path / "events.jsonl")
    ids = [event["eventID"] for event in events]
    expected = [event_id for event_id in expected_event_ids() if event_id != OVERSIZED]
    assert sorted(ids) == sorted(expected)  # each event once: nothing lost, nothing repeated
    assert [c for c, n in collections.Counter(ids).items() if n > 1] == []
    assert dead_letter_ids(tmp_path) == [OVERSIZED]
    assert next(e for e in events if e["eventID"] == POISON)["details"]["command"] == "ERROR"
    if step in ("torn-write", "after-write", "before-checkpoint"):
        # The kill left bytes after the length the checkpoint holds: the case that used to repeat.
        assert written > committed
    # Once more from the checkpoint: nothing left to deliver, nothing written.
    size = (tmp_path / "events.jsonl").stat().st_size
    restart(tmp_path, "file")
    assert (tmp_path / "events.jsonl").stat().st_size == size


@pytest.mark.slow
def test_kills_at_every_step_in_turn_over_restarts(tmp_path: Path) -> None:
    for step in ("torn-write", *STEPS):
        crash(tmp_path, "file", step, 2)
    restart(tmp_path, "file")
    ids = [event["eventID"] for event in lines(tmp_path / "events.jsonl")]
    assert ids == [event_id for event_id in expected_event_ids() if event_id != OVERSIZED]
    assert dead_letter_ids(tmp_path) == [OVERSIZED]


@pytest.mark.slow
def test_kills_at_random_moments_over_restarts(tmp_path: Path) -> None:
    # As the fault was first found: SIGKILL from outside at random moments, wherever the runner
    # is (mapping, writing, inside the checkpoint's own write and rename), restart after each.
    import random
    import time

    records, rng, kills = 1000, random.Random(20261201), 0
    out = tmp_path / "events.jsonl"
    env = {**os.environ, "PYTHONPATH": str(DRIVER.parent)}
    for _ in range(5):
        child = subprocess.Popen(
            [sys.executable, str(DRIVER), str(tmp_path), "file", "none", "0", str(records)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The moment: once the file grew by a random amount (so the kill lands mid-run however
        # fast the machine), plus a random few milliseconds: anywhere in a batch's steps.
        start = out.stat().st_size if out.exists() else 0
        growth = rng.uniform(5_000, 60_000)
        while child.poll() is None and (out.stat().st_size if out.exists() else 0) < start + growth:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.01))
        child.send_signal(signal.SIGKILL)
        _, errors = child.communicate()
        assert child.returncode in (0, -signal.SIGKILL), errors  # finished first, or killed
        kills += child.returncode == -signal.SIGKILL
    assert kills == 5
    target = make_target(tmp_path, "file")
    make_runner(tmp_path, target, records=records).run(once=True)
    target.close()
    ids = [event["eventID"] for event in lines(tmp_path / "events.jsonl")]
    assert sorted(ids) == sorted(e for e in expected_event_ids(records) if e != OVERSIZED)
    assert len(ids) == len(set(ids))
    assert dead_letter_ids(tmp_path) == [OVERSIZED]


@pytest.mark.slow
@pytest.mark.parametrize("step", ["after-write", "before-checkpoint", "after-checkpoint"])
def test_stdout_is_at_least_once_repeating_only_the_batch_in_hand(tmp_path: Path, step: str) -> None:
    killed = crash(tmp_path, "stdout", step, 3)
    first = [json.loads(line) for line in killed.stdout.splitlines()]
    out = tmp_path / "restart.jsonl"
    with out.open("w") as stream:
        saved, sys.stdout = sys.stdout, stream
        try:
            restart(tmp_path, "stdout")
        finally:
            sys.stdout = saved
    second = lines(out)
    delivered = [event["eventID"] for event in first + second]
    assert set(delivered) == set(expected_event_ids())  # nothing lost (stdout has no size limit)
    repeated = [event_id for event_id, n in collections.Counter(delivered).items() if n > 1]
    if step == "after-checkpoint":
        assert repeated == []
    else:
        # The third batch was written, not checkpointed: it, and only it, comes again.
        assert repeated == [e["eventID"] for e in first[-4:]]
    assert dead_letter_ids(tmp_path) == []


# --- failed writes leave nothing to resend -----------------------------------------------------


class DiskFull:
    """``os.write`` on a disk that is full for the first ``times`` calls: each writes part of
    what it was given (as a real short write does), then fails with ENOSPC."""

    def __init__(self, times: int) -> None:
        self.times = times

    def __call__(self, fd: int, data: memoryview) -> int:
        if self.times:
            self.times -= 1
            os.write(fd, data[: max(1, len(data) // 3)])
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)


def test_a_transient_disk_full_is_retried_and_leaves_no_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    target = FileTarget(path, write=DiskFull(times=2))
    sleeps: list[float] = []
    delivery = deliver(
        target, [{"eventID": f"e{n}", "pad": "x" * 50} for n in range(300)], sleep=sleeps.append
    )
    target.close()
    assert delivery.delivered == 300
    assert len(sleeps) == 2  # two failures, two waits, then success
    assert [event["eventID"] for event in lines(path)] == [f"e{n}" for n in range(300)]


def test_a_disk_that_stays_full_fails_cleanly_and_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    from fhirpipes.pipes.targets import DeliveryError

    path = tmp_path / "events.jsonl"
    path.write_text('{"eventID":"old"}\n')
    target = FileTarget(path, write=DiskFull(times=99))
    with pytest.raises(DeliveryError) as raised:
        deliver(target, [{"eventID": "new"}], attempts=3, sleep=lambda seconds: None)
    target.close()
    assert str(raised.value) == (
        f"file:{path}: delivery failed after 3 attempts (OSError (ENOSPC)); "
        "the batch is not checkpointed and will be read again"
    )
    assert path.read_text() == '{"eventID":"old"}\n'


@pytest.mark.slow
def test_a_real_file_size_limit_is_a_failed_write_cut_back(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the kernel cut a write short and then fail it (EFBIG), as a full disk
    # does; raised again between attempts, as a disk that frees. In a child: the limit is the
    # process's.
    code = f"""
import resource, signal, sys
sys.path.insert(0, {str(DRIVER.parent)!r})
from fhirpipes import logs
from fhirpipes.pipes.targets import FileTarget, deliver
logs.configure("WARNING", sys.stderr)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
def free(seconds):
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
target = FileTarget({str(tmp_path / "events.jsonl")!r})
print(deliver(target, [{{"eventID": "e%d" % n, "pad": "x" * 40}} for n in range(300)], sleep=free).delivered)
"""
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "300"
    assert [event["eventID"] for event in lines(tmp_path / "events.jsonl")] == [f"e{n}" for n in range(300)]
    assert "OSError (EFBIG)" in completed.stderr  # the retry's warning names the failure
