"""The clock every wait goes through, so tests can run retries and cooldowns in virtual time."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "VirtualClock"]


class Clock(Protocol):
    """Where the SDK reads the time and sleeps."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for deadlines and pacing."""
        ...

    def time(self) -> float:
        """Wall-clock POSIX time, for HTTP dates in ``Retry-After``."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the running loop."""
        await asyncio.sleep(seconds)


class VirtualClock:
    """A clock whose time moves only when someone sleeps: waits cost no real time.

    Every ``sleep`` is recorded in ``sleeps`` and moves the time to the sleeper's wake-up moment
    (never backwards), so concurrent sleepers see the time of the latest one among them. Use it
    in tests of code that retries or paces, with a mocked or local server.

    Args:
        start: the wall-clock POSIX time at virtual zero.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = 0.0
        self._start = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The virtual time."""
        return self._now

    def time(self) -> float:
        """The virtual time as a POSIX timestamp."""
        return self._start + self._now

    def advance(self, seconds: float) -> None:
        """Move the time forward without sleeping."""
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait, jump to its end, and let other tasks run once."""
        self.sleeps.append(seconds)
        self._now = max(self._now, self._now + seconds)
        await asyncio.sleep(0)
