"""The Spark engine: `run_partition` over a Spark cluster, one Spark task per partition.

The partitions are parallelised into as many Spark partitions (one data file or scan segment per
task), each task runs the very `fhirpipes.backfill.work.run_partition` the local engine runs, and
the results come back to the driver. The `Job` travels in the task's closure (it is a plain,
picklable value); each executor's Python worker loads the mappers once and keeps them for its
next tasks (Spark reuses its Python workers).

Executors must import fhirpipes and its plugins: in local mode they run this very interpreter (its
virtual environment); on a cluster the wheels come with the job (Glue:
``--additional-python-modules``, EMR / spark-submit: a packed virtual environment or
``--py-files``), see README "Backfill on Spark and AWS Glue".

pyspark is imported inside the functions that use it: ``fhirpipes backfill`` with the local
engine never pays for it, and pyspark is an optional extra (``fhirpipes[spark]``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.resources
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from fhirpipes.backfill.job import Job, Partition, PartitionResult
from fhirpipes.errors import ConfigurationError, FhirpipesError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

APP_NAME = "fhirpipes-backfill"
DEFAULT_MASTER = "local[*]"
LOOPBACK = "127.0.0.1"


class SparkJobError(FhirpipesError):
    """Partitions failed on Spark: names each one and its error's type (and a fhirpipes error's
    message, which names where, never what). The other partitions finished: a rerun does the rest."""


@dataclasses.dataclass(frozen=True)
class _Failed:
    """What an executor sends back for a partition whose `run_partition` raised a fhirpipes error."""

    index: int
    name: str
    error: str


def run_on_spark(
    job: Job,
    partitions: Sequence[Partition],
    *,
    spark: SparkSession | None = None,
    master: str | None = None,
) -> Iterator[PartitionResult]:
    """Run every partition on Spark; yield each one's result (in no particular order).

    ``spark``: the session to use; else the active one; else a new one (see `session`),
    stopped at the end. A partition whose run raised a fhirpipes error (an unreadable data file, a
    mapper that can't load) doesn't stop the others: once they are done, `SparkJobError` names it.
    Any other exception fails its task, which Spark retries (``spark.task.maxFailures``, 4 on a
    cluster), then the job, also as `SparkJobError`.
    """
    # Spark starts tasks in order: the biggest first, so one large data file doesn't finish last alone.
    todo = sorted(partitions, key=lambda part: -(part.item_count or 0))
    if not todo:
        return
    session, owned = (spark, False) if spark is not None else _session_for_run(master)
    try:
        rdd = session.sparkContext.parallelize(todo, numSlices=len(todo))
        try:
            # collect() leaves its socket to the garbage collector (pyspark says so): that is
            # pyspark's ResourceWarning, not a leak of ours, and it fails a run under -W error.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                outcomes = rdd.map(functools.partial(_run, job)).collect()
        except Exception as exc:  # py4j's Py4JJavaError, pyspark's PythonException: the job failed
            raise SparkJobError(f"the Spark job failed: {_cause(exc)}") from None
    finally:
        if owned:
            stop(session)
    failed = [outcome for outcome in outcomes if isinstance(outcome, _Failed)]
    yield from (outcome for outcome in outcomes if isinstance(outcome, PartitionResult))
    if failed:
        lines = "; ".join(f"partition {fail.index} ({fail.name}): {fail.error}" for fail in failed)
        raise SparkJobError(f"{len(failed)} of {len(todo)} partitions failed: {lines}")


def session(master: str | None = None) -> SparkSession:
    """A new (or the running) SparkSession for a backfill.

    ``master``: the given one; else, under spark-submit (Glue, EMR, ``spark-submit glue.py``), the
    master it was given (``--master``, ``spark.master``); else ``local[*]``. A local session binds
    to 127.0.0.1 only, with no UI and no progress bar, logs warnings and errors only, and runs its
    Python workers on this interpreter (the one that has fhirpipes installed).
    """
    from pyspark.sql import SparkSession

    resolved = master or (None if _under_spark_submit() else DEFAULT_MASTER)
    builder = SparkSession.builder.appName(APP_NAME)
    if resolved is None:
        return _started(builder)
    builder = builder.master(resolved)
    if not resolved.startswith("local"):
        return _started(builder)
    log_config = importlib.resources.files("fhirpipes.backfill").joinpath("log4j2.properties")
    builder = (
        builder.config("spark.driver.host", LOOPBACK)
        .config("spark.driver.bindAddress", LOOPBACK)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(os.cpu_count() or 1))
        # Spark adds its own Java 17 --add-opens options to these (checked in the tests).
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log_config}")
    )
    # Read when the JVM starts (SPARK_LOCAL_IP: every listening socket on loopback) and when the
    # context starts (PYSPARK_PYTHON: the workers' interpreter, default `python3` on the PATH,
    # which may well lack fhirpipes); the caller's environment is restored afterwards.
    with _environ(SPARK_LOCAL_IP=LOOPBACK, PYSPARK_PYTHON=sys.executable):
        return _started(builder)


def stop(spark: SparkSession) -> None:
    """Stop ``spark`` and give Ctrl-C back to Python.

    A SparkContext started in the main thread takes SIGINT (to cancel its jobs, then raise
    KeyboardInterrupt) and doesn't give it back when stopped: this puts back what was there
    before `session` started it.
    """
    spark.stop()
    if _sigint_before and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _sigint_before.pop())


_sigint_before: list[Any] = []
"""SIGINT's handler before `session` started a SparkContext (at most one: one per process)."""


def _session_for_run(master: str | None) -> tuple[SparkSession, bool]:
    """The active session (kept running), or a new one (the caller stops it)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    try:
        return session(master), True
    except Exception as exc:  # pyspark's PySparkRuntimeError (no Java), a bad master URL, ...
        raise ConfigurationError(f"can't start Spark (master {master or 'default'}): {_cause(exc)}") from exc


def _started(builder: Any) -> SparkSession:
    """``builder.getOrCreate()``, remembering SIGINT's handler for `stop` if a context starts now."""
    from pyspark import SparkContext

    handler = signal.getsignal(signal.SIGINT)
    started: SparkSession = builder.getOrCreate()
    if SparkContext._active_spark_context is not None and signal.getsignal(signal.SIGINT) is not handler:
        _sigint_before[:] = [handler]
    return started


def _under_spark_submit() -> bool:
    # spark-submit starts the JVM first and tells the Python driver its gateway's port.
    return "PYSPARK_GATEWAY_PORT" in os.environ


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run(job: Job, partition: Partition) -> PartitionResult | _Failed:
    """One Spark task (on an executor): the partition's result, or why it failed."""
    from fhirpipes.backfill.work import run_partition

    try:
        return run_partition(job, partition)
    except FhirpipesError as exc:
        # Its message names where, never what: safe to send back (and to show).
        return _Failed(partition.index, partition.name, f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        # Anything else may quote a value (a library's KeyError, ValueError, ...): Spark logs a
        # failed task's exception, so it gets only the type and where it was raised. Not chained.
        raise RuntimeError(f"partition {partition.index} ({partition.name}): {_where(exc)}") from None


def _where(exc: BaseException) -> str:
    """``KeyError at fhirpipes/backfill/work.py:123 in _records``: the innermost frame, no message."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    path = last.filename.replace(os.sep, "/")
    short = path[path.rfind("/fhirpipes/") + 1 :] if "/fhirpipes/" in path else path.rsplit("/", 1)[-1]
    return f"{type(exc).__name__} at {short}:{last.lineno} in {last.name}"


def _cause(exc: BaseException) -> str:
    """What a failed Spark job's exception can say safely: our own `RuntimeError` line if there."""
    text = str(exc)
    for line in reversed(text.splitlines()):
        if line.startswith("RuntimeError: partition "):
            return line[len("RuntimeError: ") :]
    return type(exc).__name__
