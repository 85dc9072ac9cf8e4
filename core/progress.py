"""The command line's progress bars (backfill items, ``package`` steps, ``conformance`` checks, ``map``
records), drawn with rich on stderr, and lines printed above them.

rich is imported only when a bar is shown: the Lambda never imports this module (nor rich: it is
left out of the package), and ``fhirpipes map`` on a pipe pays nothing for it. A bar is shown when
asked, else only when stderr is a terminal (not ``TERM=dumb``): CI logs and files get no escape
codes. rich itself honours ``NO_COLOR``.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import IO, Any


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default: stderr) is an interactive terminal that takes escape codes."""
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
    except ValueError:  # a closed stream
        return False


def show_bar(asked: bool | None = None) -> bool:
    """A bar's on/off: ``asked`` (``--progress/--no-progress``) if given, else whether stderr is a terminal."""
    return is_terminal() if asked is None else asked


def wants_color(stream: IO[str] | None = None) -> bool:
    """Colour on ``stream`` (default: stderr): a terminal, and no ``NO_COLOR`` (https://no-color.org)."""
    return is_terminal(stream) and not os.environ.get("NO_COLOR")


class ProgressBar:
    """``with ProgressBar("backfill", total, enabled=...) as bar: bar.advance(done, errors)``.

    Args:
        label: what is counted, at the bar's left (`describe` changes it: a step's name).
        total: how many there are (None: unknown, the bar pulses).
        enabled: draw it (see `show_bar`); when False, nothing is imported or drawn, and `echo`
            prints plain lines to stderr.
        unit: the counted things' name, after the count (``items``, ``checks``, ``steps``).
        rate: show the rate per second.
        errors: show the errors counted by `advance`.
        eta: show the estimated time left.
        keep: leave the finished bar on screen (default: it goes, leaving the lines printed above it).
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        enabled: bool,
        unit: str = "",
        rate: bool = False,
        errors: bool = False,
        eta: bool = False,
        keep: bool = False,
    ) -> None:
        self.label, self.total, self.enabled, self.unit = label, total, enabled, unit
        self._columns = (rate, errors, eta, keep)
        self.done = self.errors = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            self._progress = _rich_progress(self.unit, *self._columns)
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, rate="-", errors=0)
        return self

    def advance(self, count: int = 1, errors: int = 0) -> None:
        """Count ``count`` more done, ``errors`` of them errors."""
        self.done += count
        self.errors += errors
        if self._progress is not None:
            speed = self._progress.tasks[0].speed
            rate = f"{speed:,.0f}" if speed else "-"
            self._progress.update(self._task, advance=count, errors=self.errors, rate=rate)

    def describe(self, label: str) -> None:
        """Change the label (the step under way)."""
        self.label = label
        if self._progress is not None:
            self._progress.update(self._task, description=label)

    def echo(self, line: str) -> None:
        """Print ``line`` on stderr: above the bar while it is drawn, as is otherwise."""
        if self._progress is not None:
            # Through rich's console, which redraws the bar below the line; markup off: a line is text.
            self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _rich_progress(unit: str, rate: bool, errors: bool, eta: bool, keep: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    counted = unit
    if rate:
        counted += ", {task.fields[rate]}/s"
    if errors:
        counted += ", {task.fields[errors]} errors"
    columns: list[ProgressColumn | str] = [
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn(counted),
        TimeElapsedColumn(),
    ]
    if eta:
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
    # stdout goes above the bar only when it is the terminal too: rich would send it to stderr otherwise.
    return Progress(
        *columns, console=Console(stderr=True), transient=not keep, redirect_stdout=is_terminal(sys.stdout)
    )
