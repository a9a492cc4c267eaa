"""Showing a bulk fetch as it runs: a live bar on a terminal, periodic lines elsewhere.

Both reporters are fed the SDK's ``BulkProgress`` snapshots through ``iter_leads(progress=)``
and must return quickly: they run inside the fetch loop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Protocol, TextIO

import dialnexa_async as dnx

__all__ = [
    "LineReporter",
    "Reporter",
    "SilentReporter",
    "describe",
    "make_reporter",
]

LINE_INTERVAL = 2.0
"""Seconds between two progress lines when stderr is not a terminal (a log, a CI job)."""


class Reporter(Protocol):
    """Where progress snapshots and occasional messages go while a fetch runs."""

    def __call__(self, progress: dnx.BulkProgress) -> None:
        """Show one snapshot.

        Args:
            progress: the SDK's counters for this fetch.
        """

    def message(self, text: str) -> None:
        """Print one line without garbling the display."""

    def close(self) -> None:
        """Leave the display in a clean state."""


def _eta(progress: dnx.BulkProgress, rate: float) -> str:
    if progress.total is None or rate <= 0:
        return "?"
    return f"{(progress.total - progress.done) / rate:.0f}s"


def describe(
    progress: dnx.BulkProgress, *, initial: int = 0, grand_total: int | None = None
) -> str:
    """One line of counters, e.g. for a log.

    Args:
        progress: the snapshot.
        initial: ids already done by earlier runs, added to the done count shown.
        grand_total: all distinct ids of the input, earlier runs included.
    """
    rate = progress.done / progress.elapsed if progress.elapsed > 0 else 0.0
    total = grand_total if grand_total is not None else progress.total
    done = initial + progress.done
    of = f"/{total}" if total is not None else ""
    percent = f" ({100 * done / total:.0f}%)" if total else ""
    return (
        f"progress: {done}{of}{percent} done, {progress.ok} ok, {progress.failed} failed, "
        f"{rate:.0f} ids/s, eta {_eta(progress, rate)}, {progress.retries} retries, "
        f"{progress.rate_limited} 429s, concurrency {progress.concurrency}, "
        f"cooldown {progress.cooldown_seconds:.1f}s, elapsed {progress.elapsed:.1f}s"
    )


class SilentReporter:
    """Shows nothing but messages; for ``--no-progress``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, progress: dnx.BulkProgress) -> None:
        """Ignore the snapshot."""

    def message(self, text: str) -> None:
        """Print ``text`` on its own line."""
        print(text, file=self._stream, flush=True)

    def close(self) -> None:
        """Nothing to clean up."""


class LineReporter:
    """A line of counters every ``interval`` seconds, for logs where a bar would be noise.

    Args:
        stream: where lines go, usually stderr.
        interval: the least time between two lines.
        initial: ids done by earlier runs.
        grand_total: distinct ids of the whole input.
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = LINE_INTERVAL,
        initial: int = 0,
        grand_total: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interval = interval
        self._initial = initial
        self._grand_total = grand_total
        self._clock = clock
        self._next = clock() + interval

    def __call__(self, progress: dnx.BulkProgress) -> None:
        """Print a line if ``interval`` has passed since the last one."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval
        self.message(describe(progress, initial=self._initial, grand_total=self._grand_total))

    def message(self, text: str) -> None:
        """Print ``text`` on its own line."""
        print(text, file=self._stream, flush=True)

    def close(self) -> None:
        """Nothing to clean up: every line is already whole."""


class BarReporter:
    """A tqdm bar: done/total, rate and ETA, then ok/failed, retries, 429s and concurrency.

    Args:
        stream: the terminal stream, usually stderr.
        initial: ids done by earlier runs; the bar starts there and its rate ignores them.
        grand_total: distinct ids of the whole input.
    """

    def __init__(self, stream: TextIO, *, initial: int, grand_total: int | None) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=grand_total,
            initial=initial,
            file=stream,
            unit="id",
            dynamic_ncols=True,
            mininterval=0.1,
            smoothing=0.1,
        )
        self._initial = initial

    def __call__(self, progress: dnx.BulkProgress) -> None:
        """Move the bar to the snapshot and refresh its counters."""
        self._bar.set_postfix_str(
            f"ok={progress.ok} failed={progress.failed} retries={progress.retries} "
            f"429s={progress.rate_limited} conc={progress.concurrency}",
            refresh=False,
        )
        # update() rather than assigning n, so tqdm's smoothed rate and ETA see each step.
        self._bar.update(self._initial + progress.done - self._bar.n)

    def message(self, text: str) -> None:
        """Print ``text`` above the bar."""
        self._bar.write(text, file=self._bar.fp)

    def close(self) -> None:
        """Draw the bar a last time and leave it on screen."""
        self._bar.close()


def _columns(stream: TextIO) -> int:
    """The terminal's width; 0 when unknown (some ptys report 0 and tqdm then draws nothing)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


def make_reporter(
    stream: TextIO, *, enabled: bool, initial: int = 0, grand_total: int | None = None
) -> Reporter:
    """Pick the reporter for ``stream``: a bar on a terminal, lines otherwise.

    Args:
        stream: where progress goes, usually stderr.
        enabled: ``False`` for ``--no-progress``: messages only.
        initial: ids done by earlier runs.
        grand_total: distinct ids of the whole input.
    """
    if not enabled:
        return SilentReporter(stream)
    if stream.isatty() and _columns(stream) > 0:
        try:
            return BarReporter(stream, initial=initial, grand_total=grand_total)
        except ImportError:
            # tqdm comes with the ``cli`` extra; without it, lines still tell the story.
            pass
    return LineReporter(stream, initial=initial, grand_total=grand_total)
