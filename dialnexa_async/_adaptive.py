"""Finding the server's sustainable send rate from its 429s: a CUBIC curve over a rate meter.

Pure and clock-driven (every method takes ``now``), so it is tested without waiting. It is the
rate half of the adaptive control; ``_limiter.AdaptiveLimiter`` is the concurrency half.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["CubicRate", "SendRateMeter"]

BETA = 0.7
"""After a throttle, the rate drops to this share of the rate that was throttled (as botocore)."""

SCALE = 0.4
"""CUBIC's C: how fast the rate regrows (as botocore); the time to regain the old rate is
``cbrt(w_max * (1 - BETA) / SCALE)`` seconds."""

PLATEAU = 0.95
"""CUBIC lingers near ``PLATEAU * w_max``: the throttled rate itself is known to be too fast,
so the curve flattens just below it and probes past it only slowly."""

MIN_RATE = 0.5
"""Requests per second the adaptive rate never goes below, so a probe always gets out."""


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


class CubicRate:
    """The adaptive send-rate cap: ``None`` until the first throttle, then a CUBIC curve.

    After a throttle at rate ``w_max`` the cap drops to ``BETA * w_max``, climbs back to
    ``w_max`` in ``K`` seconds along a concave curve, lingers near it, then probes above it.
    """

    def __init__(self) -> None:
        self.rate: float | None = None
        self._w_max = 0.0
        self._k = 0.0
        self._cut_at = 0.0

    def on_throttle(self, now: float, measured: float) -> None:
        """Cut the rate after a 429 that a request sent at the current rate received.

        Args:
            now: the current time.
            measured: the send rate actually achieved recently.
        """
        base = measured if self.rate is None else min(self.rate, max(measured, MIN_RATE))
        base = max(base, MIN_RATE)
        self._w_max = base * PLATEAU
        self._k = (self._w_max - base * BETA) ** (1.0 / 3.0) / SCALE ** (1.0 / 3.0)
        self._cut_at = now
        self.rate = max(MIN_RATE, base * BETA)

    def reset(self) -> None:
        """Lift the cap, as before the first throttle."""
        self.rate = None

    def on_success(self, now: float) -> float | None:
        """Move the rate along the curve; returns the new rate (``None`` while unthrottled)."""
        if self.rate is None:
            return None
        t = now - self._cut_at - self._k
        self.rate = max(MIN_RATE, SCALE * t * t * t + self._w_max)
        return self.rate
