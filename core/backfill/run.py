"""A whole backfill: describe the source, claim the state folder, run every partition on an engine,
gather the error lines and write the manifest.

The manifest (``manifest.json``, beside ``data/``) follows the FHIR Bulk Data export manifest
(``transactionTime``, ``output`` with ``type``, ``url`` and ``count`` per file, ``error``), with
what a backfill adds: the source and its snapshot, the counts (``read == written + skipped +
errors``, checked here) and the hand-over to the live stream (`fhirpipes.backfill.plan`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from fhirpipes.backfill.folder import Folder
from fhirpipes.backfill.job import Job, Partition, PartitionResult, SourceSpec
from fhirpipes.backfill.state import State, result_name
from fhirpipes.errors import ConfigurationError

Engine = Literal["local", "spark"]
MANIFEST = "manifest.json"
ERRORS = "errors.ndjson"
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
"""Below AWS HealthLake's documented safe NDJSON file size (about 50 MB)."""


def settings_environ(environ: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """The ``FHIRPIPES_*`` settings of this process, for workers that don't inherit it (Spark executors)."""
    source = os.environ if environ is None else environ
    return tuple(sorted((key, value) for key, value in source.items() if key.startswith("FHIRPIPES_")))


def prepare(
    source: SourceSpec,
    *,
    keys: Sequence[str] | None = None,
    out: str | None = None,
    target: str | None = None,
    fhir_auth: str | None = None,
    state: str | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    errors: Literal["events", "locations"] = "events",
) -> tuple[Job, list[Partition]]:
    """Check the arguments, describe the source and claim the state folder: everything before work."""
    from fhirpipes.backfill.sources import describe, key_names

    if (out is None) == (target is None):
        raise ConfigurationError("give one of --out DIR or --target fhir:URL")
    if max_file_bytes < 1024:
        raise ConfigurationError("--max-file-bytes must be at least 1024")
    if state is None:
        if out is None:
            raise ConfigurationError(
                "with --target, give --state DIR (where the backfill keeps its progress)"
            )
        state = f"{out.rstrip('/')}/state"
    snapshot, partitions = describe(source)
    job = Job(
        source=source,
        snapshot=snapshot,
        keys=key_names(source, snapshot, keys),
        state=state,
        out=out,
        target=target,
        fhir_auth=fhir_auth,
        max_file_bytes=max_file_bytes,
        errors=errors,
        environ=settings_environ(),
    )
    if target is not None:
        from fhirpipes.backfill.store import StoreWriter

        writer = StoreWriter(target, fhir_auth, dict(os.environ))
        writer.check()
        writer.prepare()  # the server answers, and is a FHIR server, before any item is read
    job = State(Folder(state, source.aws)).begin(job)
    return job, partitions


def execute(
    job: Job,
    partitions: Sequence[Partition],
    *,
    engine: Engine = "local",
    workers: int | None = None,
    spark_master: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_result: Callable[[PartitionResult], None] | None = None,
) -> dict[str, Any]:
    """Run every partition not yet finished, then write and return the manifest."""
    results: Iterable[PartitionResult]
    if engine == "spark":
        from fhirpipes.backfill.spark import run_on_spark

        results = run_on_spark(job, partitions, master=spark_master)
    else:
        from fhirpipes.backfill.local import run_local

        results = run_local(job, partitions, workers=workers or os.cpu_count() or 1, progress=progress)
    finished = []
    for result in results:
        finished.append(result)
        if on_result is not None:
            on_result(result)
    return write_manifest(job, sorted(finished, key=lambda result: result.index), len(partitions))


def backfill(
    source: SourceSpec,
    *,
    engine: Engine = "local",
    workers: int | None = None,
    spark_master: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """`prepare` and `execute` in one call (what the Glue entry point runs); returns the manifest."""
    job, partitions = prepare(source, **options)
    return execute(job, partitions, engine=engine, workers=workers, spark_master=spark_master)


def write_manifest(job: Job, results: Sequence[PartitionResult], partitions: int) -> dict[str, Any]:
    """Gather the partitions' error lines into ``errors.ndjson`` and write ``manifest.json``.

    Written to the output folder, or with ``--target`` to the state folder.
    """
    from fhirpipes.backfill.plan import hand_over

    state = State(Folder(job.state, job.source.aws))
    report = Folder(job.out, job.source.aws) if job.out else state.folder
    counts = {
        name: sum(getattr(result, name) for result in results)
        for name in ("read", "written", "skipped", "errors")
    }
    if counts["read"] != counts["written"] + counts["skipped"] + counts["errors"]:  # pragma: no cover
        raise AssertionError(f"backfill counts don't add up: {counts}")
    by_type: dict[str, int] = {}
    output = []
    for result in results:
        for file in result.files:
            by_type[file["type"]] = by_type.get(file["type"], 0) + file["count"]
            output.append(file)
    _gather_errors(state, report, results)
    manifest = {
        "transactionTime": job.snapshot.time,
        "requiresAccessToken": False,
        "source": {**dataclasses.asdict(job.snapshot), "keys": list(job.keys), "partitions": partitions},
        "target": job.target,
        "counts": {**counts, "byType": dict(sorted(by_type.items()))},
        "complete": len(results) == partitions,
        "output": output,
        "error": [{"type": "fhirpipes.ErrorEvent", "url": ERRORS, "count": counts["errors"]}],
        "handOver": hand_over(job.snapshot),
    }
    report.put_bytes(MANIFEST, json.dumps(manifest, indent=2).encode())
    return manifest


def _gather_errors(state: State, report: Folder, results: Sequence[PartitionResult]) -> None:
    """``errors.ndjson``: the partitions' error lines in partition order, streamed (a broken template
    makes every item an error line: more than memory holds). A part that has gone missing fails the
    manifest step, rather than leave its lines out; a rerun writes the part again."""
    with state.folder.scratch() as scratch:
        gathered = Path(scratch) / ERRORS
        with open(gathered, "wb") as handle:
            for result in results:
                if result.error_file is None:
                    continue
                try:
                    state.folder.copy_into(result.error_file["url"], handle)
                except FileNotFoundError:
                    raise ConfigurationError(
                        f"{state.folder.location(result.error_file['url'])} is gone: remove "
                        f"{state.folder.location(result_name(result.index))} and rerun"
                    ) from None
        report.put_file(ERRORS, gathered)
