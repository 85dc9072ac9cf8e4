"""The state folder: what a backfill has finished, so a rerun continues where it stopped.

``job.json`` says which backfill the folder belongs to (source, snapshot, keys, output, limits);
a rerun with another backfill's folder is refused, not mixed. ``partition-<index>.json`` is a
partition's `PartitionResult`, written last, after every file of the partition is in place:
its presence means the partition is done, and a rerun skips it. A partition without it is done
again from its first item, and writes the same files under the same names (they replace what
a killed run left), so the output never holds an item twice. ``errors-<index>.ndjson`` holds
the partition's error lines until the manifest step gathers them into ``errors.ndjson``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fhirpipes.backfill.folder import Folder
from fhirpipes.backfill.job import Job, PartitionResult, Snapshot
from fhirpipes.errors import ConfigurationError

JOB_FILE = "job.json"


def job_identity(job: Job) -> dict[str, Any]:
    """What must be equal for a rerun to continue a backfill (not the engine, workers or progress)."""
    return {
        "source": {
            "kind": job.source.kind,
            "location": job.source.location,
            "table": job.source.table,
            "segments": job.source.segments,
        },
        "snapshot": dataclasses.asdict(job.snapshot),
        "keys": list(job.keys),
        "out": job.out,
        "target": job.target,
        "maxFileBytes": job.max_file_bytes,
        "errors": job.errors,
    }


class State:
    """The state folder of one backfill."""

    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    def begin(self, job: Job) -> Job:
        """Claim the folder for ``job``, or continue the backfill it holds; returns the job to run.

        A scan can't be read twice as of one time: a rerun of a scan keeps the first run's
        snapshot (its time is the older, the safe lineage for the guard).
        """
        self.folder.clear_scratch()
        raw = self.folder.get_bytes(JOB_FILE)
        if raw is None:
            self.folder.put_bytes(JOB_FILE, json.dumps(job_identity(job), indent=2).encode())
            return job
        try:
            held = json.loads(raw)
            if job.snapshot.kind == "scan":
                job = dataclasses.replace(job, snapshot=Snapshot(**held["snapshot"]))
        except (ValueError, TypeError, KeyError):
            raise ConfigurationError(f"{self.folder.location(JOB_FILE)} is not a backfill's state") from None
        identity = job_identity(job)
        if held != identity:
            differs = (
                sorted(key for key in identity if held.get(key) != identity[key])
                if isinstance(held, dict)
                else []
            )
            raise ConfigurationError(
                f"the state folder {self.folder.url} belongs to another backfill "
                f"(its {', '.join(differs) or 'content'} differ): give another --state, or remove it to start over"
            )
        return job

    def result(self, index: int) -> PartitionResult | None:
        """The finished partition's result, or None if it isn't finished."""
        raw = self.folder.get_bytes(result_name(index))
        if raw is None:
            return None
        return PartitionResult(**json.loads(raw))

    def finish(self, result: PartitionResult) -> None:
        """Mark the partition finished (call after its files are in place)."""
        self.folder.put_bytes(result_name(result.index), json.dumps(dataclasses.asdict(result)).encode())

    def errors_name(self, index: int) -> str:
        """The name of a partition's error lines in this folder."""
        return f"errors-{index:05d}.ndjson"


def result_name(index: int) -> str:
    """The name of a finished partition's marker (its `PartitionResult`)."""
    return f"partition-{index:05d}.json"
