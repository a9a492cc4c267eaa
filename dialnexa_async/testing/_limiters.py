"""The rate-limiting algorithms real gateways run, as small pure classes on an injected clock.

Every method takes ``now`` (monotonic seconds) from the caller: nothing here reads a clock,
sleeps or touches asyncio, so a test or a virtual-time harness drives each limiter with plain
calls. Each ``admit`` returns a ``Verdict`` stating what a server would tell the client.

- ``FixedWindow``: ``limit`` per window; a window opens at the first request after the last.
- ``SlidingWindowLog``: fewer than ``limit`` admitted in the last ``window`` seconds.
- ``SlidingWindowCounter``: the previous window's count, weighted by its overlap, plus this one's.
- ``TokenBucket``: GCRA (redis-cell); ``burst`` requests at once, then one per ``1/rate``.
- ``LeakyBucket``: nginx ``limit_req`` without ``nodelay``: admits what the token bucket
  admits, but holds each request until the queue ahead of it has drained.
- ``ConcurrencyLimit``: at most ``limit`` requests admitted and not yet released.
- ``BlockPenalty``: a fixed window whose first refusal blocks everything for ``block`` seconds.
- ``ChangingLimit``: any of the above, rescaled at scheduled moments.

Moments compared here are often sums of differences, so they carry float noise; ``_EPSILON``
is the slack that makes a request sent at exactly ``now + retry_after`` count as on time.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections import deque
from collections.abc import Sequence
from typing import Literal, Protocol, get_args

LimiterKind = Literal[
    "fixed-window",
    "sliding-log",
    "sliding-counter",
    "token-bucket",
    "leaky-bucket",
    "concurrency",
    "block",
]
LIMITER_KINDS: tuple[LimiterKind, ...] = get_args(LimiterKind)

CONCURRENCY_RETRY_AFTER = 0.1
"""Seconds a concurrency limiter asks a refused client to wait: a slot frees whenever any
answer is sent, which no clock can predict, so it states a short poll interval."""

CONCURRENCY_WINDOW = 1.0
"""The policy window a concurrency limiter states (``w=``); it has none, so one second."""

# Float slack on moments computed by subtraction: far below any delay a client can act on.
_EPSILON = 1e-9
# Added to a wait that ends where the sliding-window estimate equals the limit exactly, at
# which instant a request is still refused; large enough to beat float noise on the estimate.
_NUDGE = 1e-6


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """One limiter decision and what a server states about its quota alongside it.

    Args:
        admitted: Whether the request may proceed.
        limit: The quota stated to clients: requests per window, bucket size, or most in flight.
        remaining: Requests that would still be admitted right now (never negative).
        reset: Seconds until the quota is fully restored or the window resets (never negative).
        retry_after: On a refusal, seconds until a request would be admitted; 0.0 if admitted.
        window: The policy window in seconds, as stated in ``RateLimit-Policy`` ``w=``.
        delay: Seconds the server holds this request before answering (queueing limiters).
    """

    admitted: bool
    limit: int
    remaining: int
    reset: float
    retry_after: float
    window: float
    delay: float = 0.0


class Limiter(Protocol):
    """What the simulator needs of a limiter."""

    def admit(self, now: float) -> Verdict:
        """Decide on a request arriving at ``now``, counting it if admitted.

        Args:
            now: Monotonic seconds.
        """
        ...

    def release(self, now: float) -> None:
        """Note that the answer to an admitted request was sent (only concurrency cares).

        Args:
            now: Monotonic seconds.
        """
        ...


class ScalableLimiter(Limiter, Protocol):
    """A limiter whose quota can be rescaled mid-run, as ``ChangingLimit`` needs."""

    def rescale(self, factor: float, now: float) -> None:
        """Set the quota to ``factor`` times the one it was built with, keeping what was counted.

        Args:
            factor: Multiplier of the original limit (and rate, for buckets); positive.
            now: Monotonic seconds.
        """
        ...


def _scaled_count(base: int, factor: float) -> int:
    """Scale a whole-request quota, rounding down but never below one request."""
    return max(1, math.floor(base * factor + _EPSILON))


def _require_count(name: str, value: int) -> None:
    """Reject a request count below one."""
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value!r}")


def _require_positive(name: str, value: float) -> None:
    """Reject a duration, rate or factor that is not positive and finite."""
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


class FixedWindow:
    """``limit`` requests per ``window`` seconds, the window opening at the first request.

    Args:
        limit: Requests admitted per window.
        window: Window length in seconds.
    """

    def __init__(self, limit: int, window: float) -> None:
        _require_count("limit", limit)
        _require_positive("window", window)
        self._base_limit = limit
        self.limit = limit
        self.window = window
        # Invariant: _count is the number admitted since _start; it is 0 when _start is None.
        self._start: float | None = None
        self._count = 0

    def restart(self) -> None:
        """Forget the open window, so the next request opens a fresh one."""
        self._start = None
        self._count = 0

    def admit(self, now: float) -> Verdict:
        """Admit if the window in force has room; see ``Limiter.admit``."""
        start = self._start
        elapsed = 0.0 if start is None else now - start
        # A clock that went backwards also opens a new window rather than a negative reset.
        if start is None or elapsed < 0 or elapsed >= self.window - _EPSILON:
            self._start = now
            self._count = 0
            elapsed = 0.0
        reset = self.window - elapsed
        admitted = self._count < self.limit
        if admitted:
            self._count += 1
        return Verdict(
            admitted=admitted,
            limit=self.limit,
            remaining=max(0, self.limit - self._count),
            reset=reset,
            retry_after=0.0 if admitted else reset,
            window=self.window,
        )

    def release(self, now: float) -> None:
        """Nothing to do: a window counts arrivals, not requests in flight."""

    def rescale(self, factor: float, now: float) -> None:
        """Change the per-window limit; the open window keeps its count."""
        self.limit = _scaled_count(self._base_limit, factor)


class SlidingWindowLog:
    """Admits while fewer than ``limit`` requests were admitted in ``(now - window, now]``.

    Args:
        limit: Requests admitted per any window-long span.
        window: Span length in seconds.
    """

    def __init__(self, limit: int, window: float) -> None:
        _require_count("limit", limit)
        _require_positive("window", window)
        self._base_limit = limit
        self.limit = limit
        self.window = window
        # Admission times, oldest first. Only the newest `limit` can ever decide an admission,
        # so the log is capped at `limit` entries (and refused requests are not logged).
        self._log: deque[float] = deque(maxlen=limit)

    def admit(self, now: float) -> Verdict:
        """Admit if the log of the last window has room; see ``Limiter.admit``."""
        log = self._log
        if log and now < log[-1]:
            # A clock that went backwards starts afresh rather than keeping entries "from
            # the future" that would never expire.
            log.clear()
        horizon = now - self.window + _EPSILON
        while log and log[0] <= horizon:
            log.popleft()
        admitted = len(log) < self.limit
        if admitted:
            log.append(now)
        # The oldest entry leaving the window is the moment a slot frees.
        until_slot = log[0] + self.window - now
        return Verdict(
            admitted=admitted,
            limit=self.limit,
            remaining=max(0, self.limit - len(log)),
            reset=until_slot,
            retry_after=0.0 if admitted else until_slot,
            window=self.window,
        )

    def release(self, now: float) -> None:
        """Nothing to do: the log counts arrivals, not requests in flight."""

    def rescale(self, factor: float, now: float) -> None:
        """Change the limit, keeping the newest entries, which are the ones that still matter."""
        self.limit = _scaled_count(self._base_limit, factor)
        self._log = deque(self._log, maxlen=self.limit)


class SlidingWindowCounter:
    """The weighted two-window estimate (Cloudflare, ``limits``): admits while it is below limit.

    Windows are ``window`` long and back to back from the first request. The estimate at
    ``elapsed`` seconds into the current window is
    ``previous * (1 - elapsed / window) + current``.

    Args:
        limit: The estimate a request must stay below to be admitted.
        window: Window length in seconds.
    """

    def __init__(self, limit: int, window: float) -> None:
        _require_count("limit", limit)
        _require_positive("window", window)
        self._base_limit = limit
        self.limit = limit
        self.window = window
        # Invariant: _current counts admissions since _start; _previous those of the window
        # right before it (0 if that window saw none or more than one window has passed).
        self._start: float | None = None
        self._previous = 0
        self._current = 0

    def _advance(self, now: float) -> float:
        """Roll the windows forward to ``now``; return the seconds elapsed in the current one."""
        start = self._start
        if start is None or now < start:
            # First request, or a clock that went backwards: begin afresh.
            self._start = now
            self._previous = self._current = 0
            return 0.0
        passed = math.floor((now - start) / self.window)
        if passed >= 1:
            self._previous = self._current if passed == 1 else 0
            self._current = 0
            start += passed * self.window
            self._start = start
        return max(0.0, now - start)

    def admit(self, now: float) -> Verdict:
        """Admit if the weighted estimate is below the limit; see ``Limiter.admit``."""
        elapsed = self._advance(now)
        window, limit = self.window, self.limit
        estimate = self._previous * (1.0 - elapsed / window) + self._current
        admitted = estimate < limit
        if admitted:
            self._current += 1
            estimate += 1
            # Each further request adds one; those that keep the estimate below the limit.
            remaining = max(0, math.ceil(round(limit - estimate, 9)))
            retry_after = 0.0
        else:
            remaining = 0
            retry_after = self._wait(elapsed)
        # The estimate is zero once both windows have aged out.
        if self._current:
            reset = 2 * window - elapsed
        elif self._previous:
            reset = window - elapsed
        else:
            reset = 0.0
        return Verdict(
            admitted=admitted,
            limit=limit,
            remaining=remaining,
            reset=max(reset, retry_after),
            retry_after=retry_after,
            window=window,
        )

    def _wait(self, elapsed: float) -> float:
        """The shortest wait after which the estimate is below the limit, with no new traffic."""
        window, limit = self.window, self.limit
        previous, current = self._previous, self._current
        if current < limit:
            # Still in this window: previous * (1 - (elapsed + d) / window) + current < limit.
            # (previous > 0 here, or the estimate would already be below the limit.)
            wait = window * (1.0 - (limit - current) / previous) - elapsed
        else:
            # Only the next window helps, where this window's count becomes the previous one
            # and weighs current * (1 - t / window) after t seconds into it.
            wait = window - elapsed + window * (1.0 - limit / current)
        return max(0.0, wait) + _NUDGE

    def release(self, now: float) -> None:
        """Nothing to do: the counter counts arrivals, not requests in flight."""

    def rescale(self, factor: float, now: float) -> None:
        """Change the limit; both windows keep their counts."""
        self.limit = _scaled_count(self._base_limit, factor)


class TokenBucket:
    """GCRA as in redis-cell: ``burst`` requests at once, refilling one per ``1 / rate`` seconds.

    ``burst=1`` is strict spacing: one request per ``1 / rate`` and never two closer. This is
    also nginx ``limit_req`` with ``nodelay`` (whose ``burst=`` is this ``burst`` minus one).

    Args:
        rate: Requests per second refilled.
        burst: Bucket size: requests admitted at once from a full bucket.
    """

    def __init__(self, rate: float, burst: int) -> None:
        _require_positive("rate", rate)
        _require_count("burst", burst)
        self._base_rate = rate
        self._base_burst = burst
        self.rate = rate
        self.burst = burst
        # Theoretical arrival time: the moment the bucket is full again. Invariant after each
        # admission at t: t < _tat <= t + burst / rate.
        self._tat: float | None = None

    @property
    def limit(self) -> int:
        """The bucket size, stated as the limit."""
        return self.burst

    @property
    def window(self) -> float:
        """Seconds an empty bucket takes to refill."""
        return self.burst / self.rate

    def admit(self, now: float) -> Verdict:
        """Admit if a whole token is left; see ``Limiter.admit``."""
        interval = 1.0 / self.rate
        full_in = self.burst * interval
        # Clamped so that a clock that went backwards never owes more than a full bucket.
        tat = now if self._tat is None else min(max(self._tat, now), now + full_in)
        wait = tat + interval - full_in - now
        admitted = wait <= _EPSILON
        if admitted:
            tat += interval
            self._tat = tat
        owed = tat - now
        return Verdict(
            admitted=admitted,
            limit=self.burst,
            remaining=max(0, math.floor(self.burst - owed * self.rate + _EPSILON)),
            reset=owed,
            retry_after=0.0 if admitted else wait,
            window=self.window,
        )

    def release(self, now: float) -> None:
        """Nothing to do: tokens refill with time, not with answers."""

    def rescale(self, factor: float, now: float) -> None:
        """Scale rate and bucket size; the tokens already taken stay taken."""
        taken = 0.0 if self._tat is None else max(0.0, self._tat - now) * self.rate
        self.rate = self._base_rate * factor
        self.burst = _scaled_count(self._base_burst, factor)
        if self._tat is not None:
            self._tat = now + taken / self.rate


class LeakyBucket:
    """nginx ``limit_req`` without ``nodelay``: a queue drained at ``rate``, ``burst`` deep.

    A request that fits in the bucket (itself plus the work still queued ahead of it at most
    ``burst``) is admitted but answered only after ``delay`` seconds, when the work ahead has
    drained; one that does not fit is refused at once. It admits exactly what
    ``TokenBucket(rate, burst)`` admits, only later. ``burst`` is nginx's ``burst=`` plus one,
    the request being served.

    Args:
        rate: Requests per second drained.
        burst: Bucket depth, in requests.
    """

    def __init__(self, rate: float, burst: int) -> None:
        _require_positive("rate", rate)
        _require_count("burst", burst)
        self._base_rate = rate
        self._base_burst = burst
        self.rate = rate
        self.burst = burst
        # Work queued at _last, in requests, including the request admitted then.
        # Invariant: 0 <= _level <= burst.
        self._level = 0.0
        self._last: float | None = None

    @property
    def limit(self) -> int:
        """The bucket depth, stated as the limit."""
        return self.burst

    @property
    def window(self) -> float:
        """Seconds a full bucket takes to drain."""
        return self.burst / self.rate

    def _ahead(self, now: float) -> float:
        """Work still queued at ``now``, in requests; a clock that went back drains nothing."""
        if self._last is None:
            return 0.0
        return max(0.0, self._level - self.rate * max(0.0, now - self._last))

    def admit(self, now: float) -> Verdict:
        """Admit if the request fits in the bucket, and say how long it waits; see ``Limiter``."""
        ahead = self._ahead(now)
        wait = (ahead + 1.0 - self.burst) / self.rate
        admitted = wait <= _EPSILON
        if admitted:
            self._level = ahead + 1.0
            self._last = now
            queued = self._level
        else:
            queued = ahead
        return Verdict(
            admitted=admitted,
            limit=self.burst,
            remaining=max(0, math.floor(self.burst - queued + _EPSILON)),
            reset=queued / self.rate,
            retry_after=0.0 if admitted else wait,
            window=self.window,
            delay=ahead / self.rate if admitted else 0.0,
        )

    def release(self, now: float) -> None:
        """Nothing to do: the queue drains with time, not with answers."""

    def rescale(self, factor: float, now: float) -> None:
        """Scale rate and depth; the work queued so far stays queued."""
        self._level = self._ahead(now)
        self._last = now
        self.rate = self._base_rate * factor
        self.burst = _scaled_count(self._base_burst, factor)


class ConcurrencyLimit:
    """At most ``limit`` requests admitted and not yet released.

    Args:
        limit: Most requests in flight.
        in_flight: Requests already in flight when the limiter is built (say, rebuilt mid-run).
    """

    def __init__(self, limit: int, *, in_flight: int = 0) -> None:
        _require_count("limit", limit)
        self._base_limit = limit
        self.limit = limit
        # Invariant: in_flight >= 0; it only exceeds limit after a rescale down.
        self.in_flight = max(0, in_flight)

    def admit(self, now: float) -> Verdict:
        """Admit if a slot is free; see ``Limiter.admit``."""
        admitted = self.in_flight < self.limit
        if admitted:
            self.in_flight += 1
        return Verdict(
            admitted=admitted,
            limit=self.limit,
            remaining=max(0, self.limit - self.in_flight),
            reset=CONCURRENCY_RETRY_AFTER,
            retry_after=0.0 if admitted else CONCURRENCY_RETRY_AFTER,
            window=CONCURRENCY_WINDOW,
        )

    def release(self, now: float) -> None:
        """Free the slot of an admitted request whose answer was sent."""
        self.in_flight = max(0, self.in_flight - 1)

    def rescale(self, factor: float, now: float) -> None:
        """Change the limit; requests in flight stay in flight."""
        self.limit = _scaled_count(self._base_limit, factor)


class BlockPenalty:
    """A fixed window whose first refusal blocks every request for ``block`` seconds.

    When the block ends the count starts over in a fresh window, so a client that waits out
    the ``Retry-After`` of any refusal is admitted.

    Args:
        limit: Requests admitted per window.
        window: Window length in seconds.
        block: Seconds everything is refused after a request over the limit.
    """

    def __init__(self, limit: int, window: float, block: float) -> None:
        _require_positive("block", block)
        self._counter = FixedWindow(limit, window)
        self.block = block
        # Invariant: when set, no request is admitted before _blocked_until.
        self._blocked_until: float | None = None

    @property
    def limit(self) -> int:
        """Requests admitted per window."""
        return self._counter.limit

    def admit(self, now: float) -> Verdict:
        """Refuse during a block, else count in the window; see ``Limiter.admit``."""
        until = self._blocked_until
        if until is not None:
            if now < until - _EPSILON:
                return self._refusal(until - now)
            self._blocked_until = None
        verdict = self._counter.admit(now)
        if verdict.admitted:
            return verdict
        self._blocked_until = now + self.block
        # A request after the block opens a new window rather than meeting this full one.
        self._counter.restart()
        return self._refusal(self.block)

    def _refusal(self, blocked_for: float) -> Verdict:
        """The verdict on a request refused while a block lasts ``blocked_for`` more seconds."""
        return Verdict(
            admitted=False,
            limit=self._counter.limit,
            remaining=0,
            reset=blocked_for,
            retry_after=blocked_for,
            window=self._counter.window,
        )

    def release(self, now: float) -> None:
        """Nothing to do: blocks and windows count arrivals, not requests in flight."""

    def rescale(self, factor: float, now: float) -> None:
        """Change the per-window limit; a block in force stays in force."""
        self._counter.rescale(factor, now)


class ChangingLimit:
    """Another limiter whose quota changes at scheduled moments, as when a plan is changed.

    Args:
        inner: The limiter to rescale; it keeps its traffic counts across each change.
        schedule: ``(seconds_after_first_request, factor)`` pairs: from that moment on, the
            quota is ``factor`` times the inner limiter's original one. Before the first
            entry the factor is 1.
    """

    def __init__(self, inner: ScalableLimiter, schedule: Sequence[tuple[float, float]]) -> None:
        steps = sorted(((float(at), float(factor)) for at, factor in schedule), key=lambda s: s[0])
        for at, factor in steps:
            if not at >= 0 or math.isinf(at):
                raise ValueError(f"a schedule time must be a non-negative number, got {at!r}")
            _require_positive("a schedule factor", factor)
        self.inner = inner
        self.schedule = tuple(steps)
        self._times = [at for at, _ in steps]
        # Invariant: the inner limiter is scaled by `factor` (1.0 until the first step applies).
        self.factor = 1.0
        self._first: float | None = None

    def factor_at(self, elapsed: float) -> float:
        """The factor in force ``elapsed`` seconds after the first request.

        Args:
            elapsed: Seconds since the first request; negative means before it.
        """
        index = bisect.bisect_right(self._times, elapsed + _EPSILON)
        return self.schedule[index - 1][1] if index else 1.0

    def admit(self, now: float) -> Verdict:
        """Apply the factor in force at ``now``, then ask the inner limiter."""
        if self._first is None:
            self._first = now
        factor = self.factor_at(now - self._first)
        if factor != self.factor:
            self.inner.rescale(factor, now)
            self.factor = factor
        return self.inner.admit(now)

    def release(self, now: float) -> None:
        """Pass the release on to the inner limiter."""
        self.inner.release(now)
