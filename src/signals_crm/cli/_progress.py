"""A progress display for long commands: a rich bar with rate and ETA, or plain lines.

Progress always goes to standard error, so ``--json`` output on stdout stays one document.
Without ``rich`` (``pip install 'signals-crm[cli]'``) a plain line is printed at most every
``interval`` seconds with the same facts: done/total, percent, rate and ETA.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Self, TextIO

__all__ = ["Progress", "make_progress"]


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return str(timedelta(seconds=round(seconds)))


class Progress:
    """Counts done out of ``total`` (``None`` when unknown) since ``start``, shown plainly."""

    def __init__(
        self,
        label: str,
        total: int | None,
        stream: TextIO,
        *,
        initial: int = 0,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = initial
        self._stream = stream
        self._initial = initial
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._shown = float("-inf")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rate(self) -> float | None:
        """Items per second since this run started (resumed items excluded)."""
        elapsed = self._clock() - self._started
        moved = self.done - self._initial
        return moved / elapsed if elapsed > 0 and moved > 0 else None

    def eta(self) -> float | None:
        rate = self.rate()
        if rate is None or self.total is None:
            return None
        return max(self.total - self.done, 0) / rate

    def line(self) -> str:
        rate = self.rate()
        speed = f"{rate:,.1f}/s" if rate is not None else "-/s"
        if self.total:
            share = 100 * self.done / self.total
            return (
                f"{self.label}: {self.done:,}/{self.total:,} ({share:.0f}%) {speed} "
                f"ETA {_eta(self.eta())}"
            )
        return f"{self.label}: {self.done:,} {speed}"

    def update(self, done: int) -> None:
        self.done = done
        now = self._clock()
        if now - self._shown >= self._interval:
            self._shown = now
            print(self.line(), file=self._stream, flush=True)

    def close(self) -> None:
        print(self.line(), file=self._stream, flush=True)


class _RichProgress(Progress):
    def __init__(self, label: str, total: int | None, stream: TextIO, *, initial: int = 0) -> None:
        super().__init__(label, total, stream, initial=initial)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            ProgressColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichBar
        from rich.text import Text

        outer = self

        class RateColumn(ProgressColumn):
            def render(self, task: Any) -> Text:  # noqa: ARG002  # rich's signature
                rate = outer.rate()
                return Text(f"{rate:,.1f}/s" if rate is not None else "-/s")

        self._bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self._task = self._bar.add_task(label, total=total, completed=initial)
        self._bar.start()

    def update(self, done: int) -> None:
        self.done = done
        self._bar.update(self._task, completed=done)

    def close(self) -> None:
        self._bar.update(self._task, completed=self.done)
        self._bar.stop()


def make_progress(
    label: str, total: int | None, stream: TextIO, *, rich: bool, initial: int = 0
) -> Progress:
    """A rich progress bar when ``rich`` is wanted and installed, else plain lines."""
    if rich:
        return _RichProgress(label, total, stream, initial=initial)
    return Progress(label, total, stream, initial=initial)
