"""The local engine: `run_partition` over a pool of processes on this machine.

One process per worker (``spawn``: a worker starts clean, with none of the parent's clients
or threads), each loading the mappers once; partitions are handed out one at a time, biggest
first, so one large data file doesn't finish last alone. With one worker, partitions run in this
process (no pool to start: what the benchmark's per-core figure measures). Workers report how
many items they have read as they go, for the progress bar.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from fhirpipes.backfill import work
from fhirpipes.backfill.job import Job, Partition, PartitionResult

Progress = Callable[[int, int], None]
"""Called with (items read, errors) since the last call."""

_progress_queue: Any = None  # in a worker: where it reports items read


def run_local(
    job: Job, partitions: Sequence[Partition], *, workers: int, progress: Progress | None = None
) -> Iterator[PartitionResult]:
    """Yield each partition's result as it finishes (in no particular order)."""
    order = sorted(partitions, key=lambda part: -(part.item_count or 0))
    if workers <= 1 or len(order) <= 1:
        for partition in order:
            yield work.run_partition(job, partition, progress=progress)
        return
    context = multiprocessing.get_context("spawn")
    reports = context.Queue()
    with ProcessPoolExecutor(
        min(workers, len(order)), mp_context=context, initializer=_start_worker, initargs=(reports,)
    ) as pool:
        pending: set[Future[PartitionResult]] = {pool.submit(_run, job, part) for part in order}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(reports, progress)
                for future in done:
                    yield future.result()
            _drain(reports, progress)
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _start_worker(reports: Any) -> None:
    global _progress_queue
    _progress_queue = reports


def _run(job: Job, partition: Partition) -> PartitionResult:
    return work.run_partition(job, partition, progress=_report)


def _report(read: int, errors: int) -> None:
    _progress_queue.put((read, errors))


def _drain(reports: Any, progress: Progress | None) -> None:
    while True:
        try:
            read, errors = reports.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            progress(read, errors)
