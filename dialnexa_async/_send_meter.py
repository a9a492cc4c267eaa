"""Requests sent per second over the last second: what a client reports as its send rate.

Pure and clock-driven (every method takes ``now``), so it is tested without waiting.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["SendRateMeter"]


class SendRateMeter:
    """Requests sent per second over the last second, in ten buckets of 0.1 s."""

    _BUCKET = 0.1
    _BUCKETS = 10

    def __init__(self) -> None:
        self._counts: deque[int] = deque(maxlen=self._BUCKETS)
        self._bucket_start = -math.inf
        self._current = 0
        self._first = math.inf

    def record(self, now: float) -> None:
        """Count one send at ``now``."""
        if now - self._bucket_start >= self._BUCKET:
            self._roll(now)
            if self._first == math.inf:
                self._first = now
        self._current += 1

    def _roll(self, now: float) -> None:
        elapsed = now - self._bucket_start
        if elapsed >= self._BUCKET * self._BUCKETS:
            self._counts.clear()
        else:
            self._counts.append(self._current)
            for _ in range(int(elapsed / self._BUCKET) - 1):
                self._counts.append(0)
        self._current = 0
        self._bucket_start = now

    @property
    def first(self) -> float:
        """When the first send was recorded (infinity before any)."""
        return self._first

    def count(self, now: float) -> int:
        """Sends in the last second."""
        if now - self._bucket_start >= self._BUCKET:
            self._roll(now)
        return sum(self._counts) + self._current

    def rate(self, now: float) -> float:
        """The send rate over the last second (or since the first send, if sooner), per second."""
        span = min(self._BUCKET * self._BUCKETS, max(now - self._first, self._BUCKET))
        return self.count(now) / span
