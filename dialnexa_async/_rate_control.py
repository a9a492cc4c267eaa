"""Client-wide rate control: keep every request of a client under the server's limit.

Every request calls ``acquire()`` before it is sent and ``observe()`` with its answer; the
state lives behind that small interface (``RateControl``) so it can later move into a store
shared by many worker processes. Five mechanisms share it:

- **Shared cooldown.** A 429 with a server-given wait pauses every new request until then,
  instead of each in-flight task discovering the limit on its own.
- **Window budget.** With ``x-ratelimit-*`` headers, an answer to request number ``s`` saying
  ``remaining: r`` means requests up to number ``s + r`` fit in the window; later ones wait
  for the window's end, estimated as the earliest ``arrival + reset`` seen in that window (an
  upper bound of the true end, tight even when the server rounds ``reset`` up to seconds).
- **Inferred window.** A 429 without any hint that ends a run of successes is taken as a
  fixed window's end: the window's budget and length are inferred and followed
  (``_window_guess``), with one probe per window and no pause.
- **Adaptive rate.** A 429 that carries no window headers and does not fit an inferred window
  cuts a CUBIC send-rate cap (``_adaptive``); a 429 without any hint also pauses the client
  briefly, doubling while throttles continue, so a gateway that says nothing is still found
  out from 429s alone.
- **Fixed cap.** ``rate_limit=`` spaces sends with a GCRA pacer that the adaptive cap tightens.

Invariants:
- ``_hold_until`` only moves forward: a later, shorter wait never shortens a pause in force.
- A throttle episode reacts once: 429s to requests sent before the episode began are the
  echo of the same overload and change nothing.
- No lock and no background task: reservations are computed synchronously, then slept.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

from ._adaptive import CubicRate, SendRateMeter
from ._clock import Clock
from ._errors import RateLimitError
from ._limiter import AdaptiveLimiter
from ._sansio.answer import Answer
from ._sansio.headers import RateLimitInfo
from ._window_guess import MIN_BUDGET, WindowGuess

__all__ = ["Answer", "ClientRateControl", "Pacer", "RateControl", "Ticket"]

BARE_HOLD_INITIAL = 0.1
"""Seconds the client pauses after a 429 that gave no hint at all; doubles per repeat."""

BARE_HOLD_MAX = 5.0
"""The longest pause a hintless 429 causes; probing continues at this spacing."""

CONCURRENCY_BACKOFF = 0.5
"""The share of the concurrency limit kept after each throttle."""

MIN_MEASURED_SENDS = 10
"""Below this many sends in the last second a 429 is not blamed on the send rate: the pauses and the
concurrency cut handle it, and the rate cap is not dragged to the floor by a cold start."""


class Ticket(NamedTuple):
    """A request's place in the client's sending order, handed out by ``acquire()``."""

    seq: int
    sent_at: float


class RateControl(Protocol):
    """Acquire before each request; observe each answer."""

    async def acquire(self) -> Ticket:
        """Wait until a new request may be sent."""
        ...

    def observe(self, answer: Answer, ticket: Ticket) -> None:
        """Learn from the answer to the request that ``ticket`` was issued for."""
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
    """The rate control of one client.

    Args:
        clock: where time is read and waits are slept.
        rate_limit: requests per second the client never exceeds; ``None`` for no fixed cap.
        max_wait: the longest pause a new request will sit out; a longer one fails at once
            with ``RateLimitError`` carrying the remaining wait.
        max_concurrency: the ceiling of the adaptive limit on requests in flight.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        rate_limit: float | None,
        max_wait: float,
        max_concurrency: int = 64,
    ) -> None:
        self._clock = clock
        self._ceiling = rate_limit
        self._pacer = Pacer(rate_limit) if rate_limit is not None else None
        self._max_wait = max_wait
        self.adaptive = CubicRate()
        self.meter = SendRateMeter()
        self.concurrency = AdaptiveLimiter(max_concurrency)
        self._hold_until = -math.inf
        self._seq = 0
        self._window_end = -math.inf
        self._window_last_seq: float = math.inf
        self._window_limit: int | None = None
        self._window_length = 0.0
        self._episode_start = -math.inf
        self._in_episode = False
        self._bare_hold = BARE_HOLD_INITIAL
        self.guess = WindowGuess(max_length=max_wait)
        self.admitted = 0
        """Answers other than 429 so far."""
        self._calm_since: float | None = None  # None: since the first send
        self._calm_seq = 1
        self._calm_admitted = 0
        self._calm_answered: float | None = None  # the first answer since calm began
        self.cooldowns = 0
        """How many times an answer paused the whole client."""
        self.cooldown_seconds = 0.0
        """Total seconds the client spent paused (measured on the timeline, not per task)."""

    def send_rate(self) -> float:
        """Requests sent per second over the last second."""
        return self.meter.rate(self._clock.monotonic())

    @property
    def send_rate_cap(self) -> float | None:
        """The current cap on sends per second (fixed and adaptive together), if any."""
        return None if self._pacer is None else self._pacer.rate

    def try_acquire(self) -> Ticket | None:
        """A ticket at once when nothing would make the request wait, else ``None``.

        The common case of an unthrottled client, without the cost of a coroutine.
        """
        if self._pacer is not None or self._seq >= self._window_last_seq or self.guess.engaged:
            return None
        now = self._clock.monotonic()
        if now < self._hold_until:
            return None
        self._seq += 1
        self.meter.record(now)
        return Ticket(self._seq, now)

    async def acquire(self) -> Ticket:
        """Wait out any pause, window and pacing slot; raise if the pause is too long."""
        clock = self._clock
        now = await self._wait_for_room()
        pacer = self._pacer
        if pacer is not None:
            delay = pacer.reserve(now)
            if delay > 0:
                await clock.sleep(delay)
                # A pause may have begun while this request waited for its slot.
                now = await self._wait_for_room()
        self._seq += 1
        self.meter.record(now)
        return Ticket(self._seq, now)

    async def _wait_for_room(self) -> float:
        """Sleep until no pause is in force and the window has room; return the time then."""
        clock = self._clock
        while True:
            now = clock.monotonic()
            wait = self._hold_until - now
            if self._seq >= self._window_last_seq:
                if now >= self._window_end:
                    # The tracked window is over: trust the known limit until answers from
                    # the new one speak. The server opens it at our first request, so its end
                    # is about one length away; twice that is a bound the answers will tighten.
                    limit = self._window_limit
                    self._window_last_seq = math.inf if limit is None else self._seq + limit
                    self._window_end = now + 2 * self._window_length
                else:
                    wait = max(wait, self._window_end - now)
            if wait > self._max_wait:
                raise RateLimitError(
                    f"client is paused by the server's rate limit for {wait:.1f}s more, "
                    f"longer than max_retry_wait={self._max_wait:g}s",
                    status_code=429,
                    retry_after=wait,
                )
            if wait <= 0 and self.guess.engaged:
                # Our own inference, not a wait the server gave, so never refused. A window
                # known to be longer than max_retry_wait ends the guess, so this passes it only
                # while the length is still being narrowed (by less than a search step, 5 s).
                wait = self.guess.wait(self._seq + 1, now)
            if wait <= 0:
                break
            await clock.sleep(wait)
        return now

    def observe(self, answer: Answer, ticket: Ticket) -> None:
        """Learn from one answer: window budget, throttles, and regrowth on success."""
        now = self._clock.monotonic()
        info = answer.rate_limit
        if info is not None and info.remaining is not None and info.reset is not None:
            self._track_window(info, ticket, now)
            if self.guess.engaged:
                self.guess.disengage()  # the server states its window: no need to guess
        if answer.status == 429:
            self._throttled(answer, ticket, now)
            return
        self.admitted += 1
        if self._calm_answered is None:
            self._calm_answered = now
        if self.guess.engaged:
            self.guess.admitted(ticket)
        if self._in_episode and ticket.sent_at >= self._episode_start:
            self._in_episode = False
            self._bare_hold = BARE_HOLD_INITIAL
            self._calm_since = ticket.sent_at
            self._calm_seq = ticket.seq
            self._calm_admitted = self.admitted - 1
            self._calm_answered = now
        if self.adaptive.rate is not None:
            self.adaptive.on_success(now)
            self._apply_rate()
        self.concurrency.increase()

    def observe_success(self, ticket: Ticket) -> None:
        """``observe`` for a 2xx without rate-limit headers (the common case), no ``Answer``."""
        if (
            self._in_episode
            or self.adaptive.rate is not None
            or self.guess.engaged
            or self._calm_answered is None
        ):
            self.observe(Answer(200, None, None), ticket)
        else:
            self.admitted += 1
            self.concurrency.increase()

    def _track_window(self, info: RateLimitInfo, ticket: Ticket, now: float) -> None:
        remaining, reset = info.remaining, info.reset
        assert remaining is not None
        assert reset is not None
        end = now + reset
        last_seq = ticket.seq + remaining
        if info.limit is not None:
            self._window_limit = info.limit
        if reset > self._window_length:
            self._window_length = reset
        if ticket.sent_at >= self._window_end:
            # Sent after the tracked window surely ended: this answer opens a newer window.
            self._window_end = end
            self._window_last_seq = last_seq
            return
        if end < self._window_end:
            self._window_end = end
        if last_seq < self._window_last_seq:
            self._window_last_seq = last_seq

    def _throttled(self, answer: Answer, ticket: Ticket, now: float) -> None:
        if answer.rate_limit is None and answer.retry_after is None:
            if self._guessed(ticket):
                return
        elif self.guess.engaged:
            self.guess.disengage()  # a hint came: the pauses and the window budget take over
        if ticket.sent_at < self._episode_start:
            return
        first = not self._in_episode
        self._in_episode = True
        self._episode_start = now
        # Every throttle that is not an echo halves the requests in flight, so that probes
        # after a pause go out one by one instead of as a crowd.
        self.concurrency.decrease(CONCURRENCY_BACKOFF)
        if first and answer.rate_limit is None and self.meter.count(now) >= MIN_MEASURED_SENDS:
            self.adaptive.on_throttle(now, self.meter.rate(now))
            self._apply_rate()
        if answer.rate_limit is not None and answer.rate_limit.reset is not None:
            # The window budget knows the end more precisely than a rounded Retry-After.
            return
        if answer.retry_after is not None:
            self._hold(answer.retry_after)
        else:
            self._hold(self._bare_hold)
            self._bare_hold = min(self._bare_hold * 2, BARE_HOLD_MAX)

    def _guessed(self, ticket: Ticket) -> bool:
        """Whether the window guess accounts for this hintless 429 (so nothing else reacts)."""
        guess = self.guess
        was_engaged = guess.engaged
        if not was_engaged and (
            ticket.sent_at < self._episode_start or self.admitted - self._calm_admitted < MIN_BUDGET
        ):
            # An echo of an episode already handled, or too little success to call a window.
            return False
        calm = self.meter.first if self._calm_since is None else self._calm_since
        answered = ticket.sent_at if self._calm_answered is None else self._calm_answered
        if not guess.throttled(ticket, calm, self._calm_seq, answered - calm):
            return False
        if not was_engaged and self.adaptive.rate is not None:
            # Bursts of a window's budget are the point now; the rate cap would spread them.
            self.adaptive.reset()
            self._apply_rate()
        return True

    def _apply_rate(self) -> None:
        rate = self.adaptive.rate
        if self._ceiling is not None:
            rate = self._ceiling if rate is None else min(rate, self._ceiling)
        if rate is None:
            self._pacer = None
        elif self._pacer is None:
            self._pacer = Pacer(rate)
        else:
            self._pacer.rate = rate

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
