"""Client-wide rate control: one shared cooldown, header pacing, and an optional send-rate cap.

Every request of a client calls ``acquire()`` before it is sent and ``observe()`` with each
answer. The state lives behind that small interface (``RateControl``) so it can later move into
a store shared by many worker processes.

Invariants:
- ``_hold_until`` only moves forward: a later, shorter ``Retry-After`` never shortens a pause
  that an earlier answer asked for.
- No task sleeps inside the pacer's bookkeeping; a reservation is computed synchronously and
  then slept outside it, so the event loop is never blocked and no lock is needed.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

from ._clock import Clock
from ._errors import RateLimitError
from ._sansio.headers import RateLimitInfo

__all__ = ["Answer", "ClientRateControl", "Pacer", "RateControl"]


class Answer(NamedTuple):
    """What rate control needs to know about one HTTP answer.

    Args:
        status: the HTTP status.
        rate_limit: the parsed ``x-ratelimit-*`` headers, when sent.
        retry_after: the server-given wait in seconds (``Retry-After``, or the reset on a 429).
    """

    status: int
    rate_limit: RateLimitInfo | None
    retry_after: float | None


class RateControl(Protocol):
    """Acquire before each request; observe each answer."""

    async def acquire(self) -> None:
        """Wait until a new request may be sent."""
        ...

    def observe(self, answer: Answer) -> None:
        """Learn from one answer."""
        ...


class Pacer:
    """Spaces sends at most ``rate`` per second (GCRA: a virtual schedule, no background task).

    Args:
        rate: requests per second.
        burst: how many requests may start back to back after an idle spell.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        self._tat = -math.inf  # theoretical arrival time of the next request
        self._burst = burst
        self.rate = rate

    @property
    def rate(self) -> float:
        """The current cap in requests per second."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"rate must be positive, got {value!r}")
        self._rate = value
        self._interval = 1.0 / value
        self._tolerance = (self._burst - 1) * self._interval

    def reserve(self, now: float) -> float:
        """Book the next send slot and return how long to wait for it (0 when it is now)."""
        tat = self._tat if self._tat > now else now
        start = tat - self._tolerance
        self._tat = tat + self._interval
        return start - now if start > now else 0.0


class ClientRateControl:
    """The rate control of one client: shared cooldown, header pacing, optional fixed cap.

    Args:
        clock: where time is read and waits are slept.
        rate_limit: requests per second the client never exceeds; ``None`` for no fixed cap.
        max_wait: the longest pause a new request will sit out; a longer one fails at once
            with ``RateLimitError`` carrying the remaining wait.
    """

    def __init__(self, clock: Clock, *, rate_limit: float | None, max_wait: float) -> None:
        self._clock = clock
        self._pacer = Pacer(rate_limit) if rate_limit is not None else None
        self._max_wait = max_wait
        self._hold_until = -math.inf
        self.cooldowns = 0
        """How many times an answer paused the whole client."""
        self.cooldown_seconds = 0.0
        """Total seconds the client spent paused (measured on the timeline, not per task)."""

    async def acquire(self) -> None:
        """Wait out any shared cooldown, then the pacing slot; raise if the pause is too long."""
        clock = self._clock
        while True:
            wait = self._hold_until - clock.monotonic()
            if wait <= 0:
                break
            if wait > self._max_wait:
                raise RateLimitError(
                    f"client is paused by the server's rate limit for {wait:.1f}s more, "
                    f"longer than max_retry_wait={self._max_wait:g}s",
                    status_code=429,
                    retry_after=wait,
                )
            await clock.sleep(wait)
        if self._pacer is not None:
            delay = self._pacer.reserve(clock.monotonic())
            if delay > 0:
                await clock.sleep(delay)

    def observe(self, answer: Answer) -> None:
        """Pause every new request after a 429 or an exhausted window."""
        if answer.status == 429:
            if answer.retry_after is not None:
                self._hold(answer.retry_after)
            return
        info = answer.rate_limit
        if info is not None and info.remaining == 0 and info.reset is not None:
            self._hold(info.reset)

    def _hold(self, seconds: float) -> None:
        now = self._clock.monotonic()
        until = now + seconds
        if until <= self._hold_until:
            return
        self.cooldowns += 1
        self.cooldown_seconds += until - max(now, self._hold_until)
        self._hold_until = until

    @property
    def paused_for(self) -> float:
        """Seconds left in the current shared pause (0 when none)."""
        return max(0.0, self._hold_until - self._clock.monotonic())
