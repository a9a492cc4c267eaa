"""Client-wide rate control: keep every request of a client under the server's limit.

Every request calls ``acquire()`` before it is sent and ``observe()`` with its answer. Each
mechanism is its own small object that says how long the next request must wait; the
controller sleeps the longest of those waits:

- **Server pause** (``_pause``). A 429 with a server-given wait pauses every new request
  until then, tested by one probe at a time so a rounded or gradual limit costs little.
- **Header budget** (``_header_budget``). Rate-limit headers in any dialect that state
  ``remaining`` and ``reset`` bound how many requests fit before the window ends. A spent
  budget is held like a pause, with probes; one admitted before the stated reset shows the
  headers describe no fixed window (a bucket, a sliding window), and they stop holding the
  client for good: the adaptive rate paces it instead.
- **Adaptive rate** (``_rate_model``). Every throttle sets an evenly spaced send rate to the
  admissions measured over the server's period, never below them, and the rate regrows along
  a cubic curve. The period is what the server states (a policy window, a reset, a
  ``Retry-After``) or, with bare 429s, the longest time a refusal took to clear.
- **Fixed cap.** ``rate_limit=`` caps the adaptive rate.

Invariants:
- No mechanism holds the client below what the server was measured admitting, except for
  the server's own stated waits while they prove exact.
- A throttle episode reacts once: 429s to requests sent before the reaction are its echo.
- No lock and no background task: waits are computed synchronously, then slept.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import NamedTuple, Protocol

from ._clock import Clock
from ._errors import RateLimitError
from ._header_budget import HeaderBudget
from ._inferred_window import MIN_REST, InferredWindow
from ._limiter import AdaptiveLimiter
from ._pause import ServerPause
from ._rate_model import LOG_SECONDS, AdmissionRate, GcraPacer
from ._rate_store import RateStore
from ._sansio.answer import Answer
from ._send_meter import SendRateMeter
from ._shared_control import SharedRateControl

__all__ = ["Answer", "ClientRateControl", "GcraPacer", "RateControl", "Ticket"]

MIN_SERVER_WAIT = 0.05
"""Seconds a 429 pauses the client at least, even when it says ``Retry-After: 0``."""

MIN_HORIZON = 1.0
"""Seconds of admissions a throttle measures at least (most limits are stated per second);
longer once the server's period is known to be."""

ROUND_PERIODS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0)
"""Periods limits are stated in. A run of bare refusals that took ``t`` seconds to clear
lengthens the horizon to the longest of these up to ``t``: probes find the reopening late,
never early, so ``t`` overstates the period."""

COSTLY_SECONDS = 1.5
"""A run of refusals that lasted this long is a penalty (a block), or a long window's rest:
either way the rate is held under what the run before it was admitted at, per second."""

SETTLING = 0.25
"""Seconds after a long run of refusals ends in which a new refusal is still that episode's
edge (a rounded wait, a log emptying gradually): it sets no new rate."""

BARE_HOLD_INITIAL = 0.1
"""Seconds a 429 without any hint pauses the client at first; doubles while refusals go on."""

BARE_HOLD_MAX = 5.0
"""The longest pause one hintless 429 causes."""

REOPEN_GUARD = 0.005
"""Seconds past a round period since the first answer of a run of admissions before a bare
hold's probe goes: timers and the server's clock drift a little."""

RESET_ROUNDING = 1.0
"""Seconds a stated reset may overstate a window's end: servers round resets up to seconds.
A refusal whose wait, counted from its request's send, ends later than the budget's end by
more is a penalty, not rounding."""

SLOT_NAP = 0.05
"""Seconds the request at the head of the pacing queue sleeps at most before looking again."""


class Ticket(NamedTuple):
    """A request's place in the client's sending order, handed out by ``acquire()``."""

    seq: int
    sent_at: float
    shared_seq: int = 0
    """Its place in the order of every client on a shared store (0: none taken)."""


class RateControl(Protocol):
    """Acquire before each request; observe each answer."""

    async def acquire(self) -> Ticket:
        """Wait until a new request may be sent."""
        ...

    def observe(self, answer: Answer, ticket: Ticket) -> None:
        """Learn from the answer to the request that ``ticket`` was issued for."""
        ...


class ClientRateControl:
    """The rate control of one client.

    Args:
        clock: where time is read and waits are slept.
        rate_limit: requests per second the client never exceeds; ``None`` for no fixed cap.
        max_wait: the longest server-given pause a new request will sit out; a longer one
            fails at once with ``RateLimitError`` carrying the remaining wait.
        max_concurrency: the most requests in flight.
        store: where state shared with other clients lives (``_rate_store``); ``None`` keeps
            all of it here.
        key_id: the API key's id, which names the shared state in ``store``.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        rate_limit: float | None,
        max_wait: float,
        max_concurrency: int = 64,
        store: RateStore | None = None,
        key_id: str = "",
    ) -> None:
        self._clock = clock
        self._ceiling = rate_limit
        self._pacer = GcraPacer(rate_limit) if rate_limit is not None else None
        self._max_wait = max_wait
        self.model = AdmissionRate()
        self.pause = ServerPause()
        self.bare_hold = ServerPause(settles=False)
        self._bare_seconds = BARE_HOLD_INITIAL
        self._bare_next = -math.inf  # when the doubling hold's next probe goes
        self.budget = HeaderBudget()
        self.budget_hold = ServerPause()
        self.budget_trusted = True
        """Whether a spent header budget holds the client (off once a probe beat its reset)."""
        self.window = InferredWindow()
        self._open_at = -math.inf  # send time of the first admission after refusals (-inf: none)
        self._open_admitted = 0  # admissions of requests sent since then, before refusals
        # When the first of those admissions was answered: the server began counting the run's
        # window by then (at the first request's arrival), whichever request that was.
        self._open_answered = math.inf
        self._first_refused = math.inf  # send time of the first refusal since then
        self.meter = SendRateMeter()
        self.concurrency = AdaptiveLimiter(max_concurrency)
        self._turnstile: deque[asyncio.Future[None]] = deque()
        self._seq = 0
        self._horizon = MIN_HORIZON
        self._refused_since: float | None = None  # send time of the oldest uncleared refusal
        self._bare_streak = False  # the current run of refusals began with a bare 429
        self._long_streak_cleared = -math.inf  # when the last run of COSTLY_SECONDS ended
        self.admitted = 0
        """Answers other than 429 so far."""
        # --- shared store hook: None keeps every bit of state in this client ---
        self._shared = None if store is None else SharedRateControl(self, store, key_id, clock)

    def send_rate(self) -> float:
        """Requests sent per second over the last second."""
        return self.meter.rate(self._clock.monotonic())

    @property
    def send_rate_cap(self) -> float | None:
        """The current cap on sends per second (fixed and adaptive together), if any."""
        return None if self._pacer is None else self._pacer.rate

    @property
    def horizon(self) -> float:
        """Seconds over which a throttle measures admissions: the server's period, as known."""
        return self._horizon

    @property
    def resets_overstate(self) -> bool:
        """Whether the server has admitted requests well before the resets it stated: its
        headers describe no fixed window, or probes beat its pauses."""
        return not self.budget_trusted or not self.pause.trusted

    @property
    def cooldowns(self) -> int:
        """How many times a server-given wait paused the whole client."""
        return self.pause.count

    @property
    def cooldown_seconds(self) -> float:
        """Total seconds of server-given pauses (on the timeline, not per task)."""
        return self.pause.seconds

    @property
    def paused_for(self) -> float:
        """Seconds left in the current server-given pause (0 when none)."""
        return self.pause.remaining(self._clock.monotonic())

    def try_acquire(self) -> Ticket | None:
        """A ticket at once when nothing would make the request wait, else ``None``.

        The common case of an unthrottled client, without the cost of a coroutine.
        """
        if self._pacer is not None or self._seq >= self.budget.last_seq or self.window.engaged:
            return None
        now = self._clock.monotonic()
        if now < self.pause.until or now < self.budget_hold.until or now < self.bare_hold.until:
            return None
        if self._shared is not None and not self._shared.quiet(now):
            return None  # shared store hook: a sync is due, or another client is throttled
        self._seq += 1
        self.meter.record(now)
        return Ticket(self._seq, now)

    async def acquire(self, *, may_probe: bool = True) -> Ticket:
        """Wait out any pause, spent budget and pacing slot; raise if a server's pause is long.

        Args:
            may_probe: whether this request may go out as the probe of a pause or hold. A
                retry should not: a refused probe would cost its call an attempt, and one
                call could carry probe after probe until its retries run out.
        """
        clock = self._clock
        shared_seq = 0
        while True:
            now = await self._wait_for_room(may_probe)
            # --- shared store hook: the store's turn replaces the local pacer while joined ---
            shared = self._shared
            if shared is not None and shared.may_sync(now):
                turn = await shared.turn(probe=self._holding(now))
                if turn is None:
                    continue  # the store holds the request (adopted here), or it failed
                now, shared_seq = turn
                if self._turnstile and self._pacer is not None:
                    # Requests still queue on the own schedule from a spell alone: go after
                    # them, or both schedules together would send at twice the rate.
                    await self._take_slot()
                    now = clock.monotonic()
                if self._room_wait(now, may_probe) <= 0:
                    break
                continue  # a pause began while this request waited for its slot
            # --- end of the hook ---
            pacer = self._pacer
            if pacer is None or self._holding(now):
                break  # no pacing, or a probe through a hold: its own spacing applies
            if not self._turnstile and pacer.next_free(now) <= 0:
                pacer.take(now)
                break
            await self._take_slot()
            now = clock.monotonic()
            if self._room_wait(now, may_probe) <= 0:
                break
            # A pause began while this request queued for its slot: a slot kept through it
            # would go out in a burst when it ends, so wait it out and queue again.
        self._seq += 1
        self.meter.record(now)
        self.pause.sent(self._seq, now)
        self.bare_hold.sent(self._seq, now)
        self.budget_hold.sent(self._seq, now)
        self.window.sent(self._seq, now)
        return Ticket(self._seq, now, shared_seq)

    async def _take_slot(self) -> None:
        """Queue for the next pacing slot; only the head of the queue sleeps.

        A slot is booked when it is due, at the rate in force then, so a rate that rises
        while requests wait speeds them up at once instead of after slots booked at the old
        rate.
        """
        turnstile = self._turnstile
        me: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        turnstile.append(me)
        try:
            if turnstile[0] is not me:
                await me  # set by the request ahead when it has taken its slot
            clock = self._clock
            while True:
                pacer = self._pacer
                if pacer is None:
                    return
                now = clock.monotonic()
                if self.model.rate is not None and self._refused_since is None:
                    self.model.regrow(now)
                    self._apply_rate()
                delay = pacer.next_free(now)
                if delay <= 0:
                    pacer.take(now)
                    return
                # In short naps: a rate that rises meanwhile (a slow start) frees slots sooner.
                await clock.sleep(min(delay, SLOT_NAP))
        finally:
            head = turnstile[0] is me
            turnstile.remove(me)
            if head and turnstile:
                nxt = turnstile[0]
                if not nxt.done():
                    nxt.set_result(None)

    def _holding(self, now: float) -> bool:
        """Whether a pause or hold is in force (a request let through now is its probe)."""
        return now < max(self.pause.until, self.budget_hold.until, self.bare_hold.until)

    def _room_wait(self, now: float, may_probe: bool = True) -> float:
        """Seconds until no pause or spent budget holds the next request; raise if too long."""
        pause = self.pause
        hold = self.budget_hold
        # Shared store hook: while joined, the store's budget (every client's requests) holds.
        if self.budget_trusted and not self._sharing:
            budget = self.budget
            spent = budget.wait(self._seq, now)
            if spent > 0:
                # Spent by the client's count of answers alone, which requests reaching the
                # server out of order run out early: one probe asks the server at once.
                counted = budget.spent_seq == math.inf and not budget.assumed
                hold.hold(now, spent, probe_now=counted)
        held = max(pause.remaining(now), hold.remaining(now))
        if held > self._max_wait:
            raise RateLimitError(
                f"client is paused by the server's rate limit for {held:.1f}s more, "
                f"longer than max_retry_wait={self._max_wait:g}s",
                status_code=429,
                retry_after=held,
            )
        bare = self.bare_hold
        window = self.window.wait(now, may_probe)
        if not may_probe:
            return max(pause.remaining(now), hold.remaining(now), bare.remaining(now), window)
        return max(pause.wait(now), hold.wait(now), bare.wait(now), window)

    async def _wait_for_room(self, may_probe: bool = True) -> float:
        """Sleep until no pause or spent budget holds the next request; return the time then."""
        clock = self._clock
        while True:
            now = clock.monotonic()
            wait = self._room_wait(now, may_probe)
            if wait <= 0:
                return now
            await clock.sleep(wait)

    def observe(self, answer: Answer, ticket: Ticket) -> None:
        """Learn from one answer: budget, pauses, the server's period, and the rate."""
        now = self._clock.monotonic()
        admitted = answer.status != 429
        hold = self.budget_hold
        info = answer.rate_limit
        stated = info is not None and info.remaining is not None and info.reset is not None
        rebase = False
        recounted = False
        if admitted and hold.early(ticket.seq, now):
            if stated and self._sharing:
                # The shared count can run out before the server's (requests of several
                # clients reach it in another order than they were numbered): the store
                # recounts from this answer, or, if an answer stated the window spent before
                # it, stops trusting the headers for every client.
                rebase = True
            elif stated and info is not None and self.budget.recount(info, ticket):
                # Only the client's own count said spent, and requests that reached the server
                # out of order made it run out early: the probe's answer recounts it.
                recounted = True
            else:
                # The server took a request after it said the budget was spent: its headers
                # describe no fixed window, so they no longer hold the client.
                self.budget_trusted = False
        hold.answered(ticket.seq, admitted, now, recount=rebase or recounted)
        self.pause.answered(ticket.seq, admitted, now)
        self.bare_hold.answered(ticket.seq, admitted, now)
        if info is not None:
            if stated:
                sent = None if self._shared is not None else self._seq
                if not self.budget.observe(info, ticket, now, sent):
                    self.budget_trusted = False  # a sliding window, not a fixed one
            period = info.window if info.window is not None else info.reset
            if period is not None:
                self._lengthen(period)
        if admitted:
            self._admitted(ticket, now)
        else:
            self._throttled(answer, ticket, now)
        if self._shared is not None:
            self._shared.observed(info, ticket, now, rebase)  # shared store hook

    def observe_success(self, ticket: Ticket) -> None:
        """``observe`` for a 2xx without rate-limit headers (the common case), no ``Answer``."""
        if (
            self._refused_since is not None
            or self.model.rate is not None
            or self.pause.until > -math.inf
            or self.budget_hold.until > -math.inf
            or self.bare_hold.until > -math.inf
        ):
            self.observe(Answer(200, None, None), ticket)
        else:
            self.admitted += 1
            self.model.admitted(ticket.sent_at)
            if self._open_at <= ticket.sent_at < self._first_refused:
                self._open_admitted += 1
            if self._open_answered == math.inf:
                self._open_answered = self._clock.monotonic()

    def _lengthen(self, period: float) -> None:
        """Measure admissions over at least ``period`` seconds from now on."""
        if period > self._horizon:
            self._horizon = min(LOG_SECONDS, period)

    def _admitted(self, ticket: Ticket, now: float) -> None:
        self.admitted += 1
        if self._open_answered == math.inf:
            self._open_answered = now
        self.model.admitted(ticket.sent_at)
        window = self.window
        if window.engaged:
            window.admitted(ticket.seq)
            if not window.engaged:
                self._apply_rate()  # a probe found room in the window's rest: pace instead
        refused_since = self._refused_since
        if refused_since is not None and ticket.sent_at >= refused_since:
            # How long the server took to admit again after refusing: its period, as far as
            # bare 429s tell (a window's rest, a block, a bucket's refill of one request).
            self._refused_since = None
            cleared = ticket.sent_at - refused_since
            if cleared >= COSTLY_SECONDS:
                self._long_streak_cleared = ticket.sent_at
                # Refused for seconds on end: a penalty (a block) or a long window's rest.
                # Either way the rate resumes at, and stays under, the most admissions seen
                # in one second before: over it, a block costs seconds. The whole log counts,
                # not just the last period: a client held back then (by other clients on the
                # key, by its own holds) was not shown what the server admits.
                peak = self.model.log.peak(
                    now, refused_since - LOG_SECONDS, refused_since, MIN_HORIZON
                )
                if peak > 0:
                    self.model.stay_under(peak / MIN_HORIZON, now)
                    self._apply_rate()
            self._lengthen(max((p for p in ROUND_PERIODS if p <= cleared), default=0.0))
            if cleared >= MIN_REST:
                # A window's rest, not requests crossing in flight: the next window opened.
                # Not while sharing a store: each client would infer its own window and burst
                # into the server's one together; the shared adaptive rate paces them all.
                if self._bare_streak and not self._sharing:
                    was_engaged = self.window.engaged
                    self.window.cycle(
                        self._open_admitted,
                        max(self._open_at, self.meter.first),  # the first send opened one
                        self._first_refused,
                        ticket.sent_at,
                        ticket.seq,
                    )
                    if self.window.engaged and not was_engaged:
                        self._apply_rate()  # bursts of a window's budget are the point now
                self._open_at = ticket.sent_at
                self._open_answered = now
                self._open_admitted = 0
                self._first_refused = math.inf
        if self._open_at <= ticket.sent_at < self._first_refused:
            self._open_admitted += 1
        if self.model.rate is not None and self._refused_since is None and not self.window.engaged:
            self.model.regrow(now)
            self._apply_rate()

    def _throttled(self, answer: Answer, ticket: Ticket, now: float) -> None:
        info = answer.rate_limit
        retry_after = answer.retry_after
        bare = info is None and retry_after is None
        window = self.window
        if window.engaged:
            if not bare:
                window.engaged = False  # the server speaks: its words, not our inference
            elif not window.refused(ticket.seq, now) and window.engaged:
                return  # the window's own edge, as inferred: wait for the next one
            else:
                self._apply_rate()
        if self._open_at <= ticket.sent_at < self._first_refused:
            self._first_refused = ticket.sent_at
        streak_begins = self._refused_since is None
        if streak_begins:
            self._refused_since = ticket.sent_at
            self._bare_seconds = BARE_HOLD_INITIAL
            self._bare_next = -math.inf
            self._bare_streak = bare
        reset = None if info is None else info.reset
        if self.budget_trusted and reset is not None:
            # A trusted window budget knows the end more precisely than a rounded Retry-After,
            # and it, not the rate, says when to send again; unless the refusal asks for more
            # than the window's end and a rounded second: a penalty (a block) the window's
            # count does not know of.
            # Not while sharing a store: this client's own budget then sees only its own
            # answers, and its end can lag the window the store tracks for every client.
            wait = max(reset, retry_after or 0.0)
            if not self._sharing and ticket.sent_at + wait > self.budget.end + RESET_ROUNDING:
                self.pause.hold(now, wait)
            return
        if retry_after is not None:
            self.pause.hold(now, max(retry_after, MIN_SERVER_WAIT))
            if self.pause.trusted:
                self._lengthen(retry_after)
        elif info is None and ticket.sent_at >= self.bare_hold.until:
            # No hint at all: pause briefly, longer while refusals go on, probing meanwhile.
            if now >= self._bare_next:
                # The doubling hold's own probe (or the run's first refusal): double it.
                self._bare_next = now + self._bare_seconds
                self._bare_seconds = min(2 * self._bare_seconds, BARE_HOLD_MAX)
            self.bare_hold.hold(now, self._bare_hold_until(now) - now)
        if not streak_begins:
            return  # one reaction per run of refusals: the rest are its echo
        if ticket.sent_at - self._long_streak_cleared < SETTLING:
            return  # the edge of a long pause the server just ended: the same episode
        if self.model.throttled(now, ticket.sent_at, self._horizon):
            self._apply_rate()

    def _bare_hold_until(self, now: float) -> float:
        """When a hintless 429 lets the next probe go: the doubling hold's end, or sooner, just
        after the next round period since the run of admissions before the refusals began.

        A fixed window that opened with those admissions (most open at the first request's
        arrival) reopens then, and a doubled hold would overshoot it by up to half its length.
        Such a probe, refused, leaves the doubling hold's schedule as it was.
        """
        until = self._bare_next
        opened = self._open_answered
        if opened == math.inf:
            return until
        for period in ROUND_PERIODS:
            reopens = opened + period + REOPEN_GUARD
            if reopens > now:
                return min(until, reopens)
        return until

    def _apply_rate(self) -> None:
        rate = None if self.window.engaged else self.model.rate
        ceiling = self._ceiling
        if self._shared is not None:
            ceiling = self._shared.local_ceiling(ceiling)  # shared store hook: a share, alone
        if ceiling is not None:
            rate = ceiling if rate is None else min(rate, ceiling)
        if rate is None:
            self._pacer = None
        elif self._pacer is None:
            self._pacer = GcraPacer(rate)
        else:
            self._pacer.rate = rate

    # --- shared store hooks -----------------------------------------------------------------------

    @property
    def rate_cap(self) -> float | None:
        """The fixed cap, ``rate_limit=``."""
        return self._ceiling

    @property
    def _sharing(self) -> bool:
        """Whether the client is joined to a shared store now (not pacing alone)."""
        return self._shared is not None and self._shared.joined

    @property
    def shared(self) -> SharedRateControl | None:
        """The link to the shared store, if the client has one."""
        return self._shared

    def share_changed(self) -> None:
        """The client joined or left its shared store: its own pacer's cap changes."""
        self._apply_rate()

    async def aclose(self) -> None:
        """Let go of the shared store, if any."""
        if self._shared is not None:
            await self._shared.close()
