"""The backfill's cost per item against the Lambda handler's own, on the same items, in one run.

- **handler**: the items as INSERT records in Pipe batches of 10, through `fhirpipes.handler.handler`,
  and the response encoded as the Lambda runtime encodes it (`fhirpipes.response.encode_response`):
  what the stream path pays per record, without any transport.
- **backfill, 1 worker**: the same items in a DynamoDB export (the real layout: gzip files of
  ``{"Item": ...}`` lines), read, mapped and written to NDJSON files by the local engine in this
  process: what a backfill pays per item on one core. The target: at most 10% over the handler.
- **backfill, 2 workers**: the same, on the process pool (its start-up included): the scaling, in wall
  time against one worker's (``backfill-1w``). The handler and one worker run in this process, and are
  compared in its CPU time (steadier than wall time on a shared machine).
- **Spark local[2]** (with ``--spark``; needs the ``spark`` extra): the same per-partition function
  on Spark in local mode (session start reported apart).

Lean and rich items alternate (`bench/records.py`). Best of ``--repeat`` runs, interleaved; on a
shared machine only the ratios within one run mean anything.

    python bench/bench_backfill.py [--items 20000] [--files 4] [--repeat 3] [--spark]
"""

from __future__ import annotations

import argparse
import os

# Both sides as a Lambda with logs at WARNING would run: the handler's INFO line per batch is not
# the mapping's cost, and the backfill logs nothing per item.
os.environ.setdefault("FHIRPIPES_LOG_LEVEL", "WARNING")
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from backfill_export import write_export  # the real export layout (tests/backfill_export.py)
from records import lean_item, rich_item

from fhirpipes.backfill.job import SourceSpec
from fhirpipes.backfill.run import execute, prepare
from fhirpipes.testing.stream import attribute_values, make_record


def plain_items(count: int) -> list[dict[str, Any]]:
    return [(lean_item if index % 2 == 0 else rich_item)(index) for index in range(count)]


def time_handler(items: list[dict[str, Any]]) -> float:
    from fhirpipes.handler import handler
    from fhirpipes.response import encode_response

    batches = [
        [make_record("Patients", item) for item in items[start : start + 10]]
        for start in range(0, len(items), 10)
    ]
    started = time.process_time()  # in this process only: CPU time, steadier than wall time here
    for batch in batches:
        encode_response(handler(batch, None))
    return time.process_time() - started


def time_backfill(
    export: Path, scratch: Path, workers: int, engine: str = "local", cpu: bool = False
) -> float:
    """Wall time (workers, Spark), or with ``cpu`` this process's CPU time (one worker runs here)."""
    clock = time.process_time if cpu else time.perf_counter
    out = scratch / f"out-{engine}-{workers}-{time.monotonic_ns()}"
    started = clock()
    job, partitions = prepare(SourceSpec(kind="export", location=str(export)), keys=("id",), out=str(out))
    manifest = execute(
        job,
        partitions,
        workers=workers,
        engine=engine,
        spark_master=f"local[{workers}]" if engine == "spark" else None,
    )
    elapsed = clock() - started
    assert manifest["counts"]["errors"] == 0, manifest["counts"]
    shutil.rmtree(out)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spark", action="store_true", help="also run the Spark engine in local mode")
    options = parser.parse_args()
    items = plain_items(options.items)
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        export = write_export(
            scratch / "bucket", [attribute_values(item) for item in items], files=options.files
        )
        time_handler(items[:200])  # warm: templates compiled, models imported, as on a warm Lambda
        time_backfill(export, scratch, 1)
        best: dict[str, float] = {}
        for _ in range(options.repeat):
            for label, run in (
                ("handler", lambda: time_handler(items)),
                ("backfill-1", lambda: time_backfill(export, scratch, 1, cpu=True)),
                ("backfill-1w", lambda: time_backfill(export, scratch, 1)),
                ("backfill-2", lambda: time_backfill(export, scratch, 2)),
            ):
                elapsed = run()
                best[label] = min(best.get(label, elapsed), elapsed)
        if options.spark:
            from fhirpipes.backfill.spark import session

            started = time.perf_counter()
            session(master="local[2]")
            print(f"Spark session start: {time.perf_counter() - started:.1f} s (not counted below)")
            time_backfill(export, scratch, 2, "spark")  # warm the executors' Python workers
            best["spark-2"] = min(time_backfill(export, scratch, 2, "spark") for _ in range(options.repeat))
    count = options.items
    cores = os.cpu_count()
    print(
        f"{count:,} items (lean and rich alternating), {options.files} data files, {cores} cores, best of {options.repeat}"
    )
    handler = best["handler"]
    for label, elapsed in best.items():
        print(
            f"  {label:<11} {elapsed:7.2f} s  {count / elapsed:8,.0f} items/s  {elapsed / handler:5.2f}x the handler's time"
        )
    print(
        f"  backfill, 1 worker, per item over the handler: {best['backfill-1'] / handler - 1:+.1%} (target <= +10%)"
    )
    print("  (handler and backfill-1: CPU time of this process; backfill-1w, backfill-2, spark-2: wall time)")
    print(f"  scaling 1 -> 2 workers (wall): {best['backfill-1w'] / best['backfill-2']:.2f}x")
    if "spark-2" in best:
        print(
            f"  Spark local[2] against the local engine with 2 workers: {best['spark-2'] / best['backfill-2']:.2f}x the time"
        )


if __name__ == "__main__":
    main()
