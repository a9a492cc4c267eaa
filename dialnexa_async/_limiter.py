"""A concurrency limit that can move: the client's requests in flight, cut on 429s, regrown slowly.

Invariants:
- ``_in_flight`` counts slots handed out and not yet released, including slots handed to a
  waiter that has not resumed yet.
- A waiter is only ever woken with a slot already counted for it, so waking never races.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["AdaptiveLimiter"]


class AdaptiveLimiter:
    """Bounds requests in flight to a limit between 1 and ``maximum`` (AIMD-adjusted).

    Args:
        maximum: the ceiling the limit never exceeds (the client's ``max_concurrency``).
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self._limit = float(maximum)
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        """The current limit on requests in flight."""
        return int(self._limit)

    @property
    def in_flight(self) -> int:
        """Slots currently held."""
        return self._in_flight

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued for it."""
        if self._in_flight < self._limit and not self._waiters:
            self._in_flight += 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot."""
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just before the cancellation landed: give it back.
                self.release()
            raise

    def release(self) -> None:
        """Give a slot back and hand free slots to waiters."""
        self._in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self._in_flight < self._limit:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled waiter stays queued until reached here
                self._in_flight += 1
                waiter.set_result(None)

    def decrease(self, factor: float) -> None:
        """Cut the limit multiplicatively, never below one request."""
        self._limit = max(1.0, self._limit * factor)

    def increase(self) -> None:
        """Grow the limit by one request per ``limit`` calls (additive increase)."""
        if self._limit < self.maximum:
            self._limit = min(float(self.maximum), self._limit + 1.0 / self._limit)
            self._wake()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
