"""The backfill's progress bar (items, rate, ETA, errors), drawn with rich on stderr.

rich is imported only when the bar is shown: the Lambda never imports this, and a backfill in a
pipe or a CI log gets no escape codes. rich itself honours ``NO_COLOR``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any


class ProgressBar:
    """``with ProgressBar(total, enabled=...) as bar: bar.advance(read, errors)``."""

    def __init__(self, total: int | None, *, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.read = self.errors = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("backfill"),
                BarColumn(),
                TaskProgressColumn(),
                MofNCompleteColumn(),
                TextColumn("items, {task.fields[rate]}/s, {task.fields[errors]} errors"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task("backfill", total=self.total, rate="-", errors=0)
        return self

    def advance(self, read: int, errors: int) -> None:
        """Count ``read`` more items, ``errors`` of them error lines."""
        self.read += read
        self.errors += errors
        if self._progress is not None:
            task = self._progress.tasks[0]
            speed = task.speed
            rate = f"{speed:,.0f}" if speed else "-"
            self._progress.update(self._task, advance=read, errors=self.errors, rate=rate)

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
