"""Where rate-control state shared by several clients lives: the protocol, and it in memory.

A client with a store still runs every mechanism of ``_rate_control`` itself (pauses with
their probes, the header budget's trust, the adaptive rate; no window is inferred from bare
429s while it shares a store); the store
holds what has to be one for every client on the same API key, wherever they run:

- the **server pause**: the latest moment any client's 429 said to wait until, numbered so a
  probe that ended it can say which one it ended;
- the **header budget** on a sequence number shared by every client: an answer to shared
  request ``s`` saying ``remaining: r`` lets requests up to ``s + r`` go before the window's
  end (``_header_budget``'s rule, with every client's requests counted). Requests of several
  clients reach the server in another order than they were numbered, so this count can run
  out before the server's: a probe admitted through it, numbered before any answer stated the
  window spent, recounts from its own answer (``Observation.rebase``); numbered after one, it
  shows the headers describe no fixed window. Answers to requests numbered before the tracked
  window opened are not counted in it;
- the **pacing rate**: the sum of the rates the clients learned (each measures its own
  admissions, so each rate is its share), capped by the lowest ``rate_limit``; sends are
  booked on one GCRA schedule at that rate;
- the **clients** seen lately, so a client cut off from the store can pace at its share.

One ``sync(report)`` reads and changes all of it at once (in Redis: one Lua script, one round
trip) and returns a ``View``. ``SharedLimit`` is that step in plain Python: the in-memory
store runs it, and it is the reference the Lua script is tested against.

Invariants:
- The shared pause only moves later, except to end at once when a probe ended that very pause.
- No request is admitted while the shared pause or spent budget holds it, unless it is a
  probe, and probes through a hold go one per ``probe_gap`` among all clients. Every
  admitted request takes the next sequence number; requests asking together are admitted in
  order until one is held.
- A paced request is booked a slot at least one interval after the previous booking; a slot
  booked up to ``CATCH_UP`` seconds late keeps the schedule (``GcraPacer.take``).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple, Protocol

from ._clock import Clock
from ._rate_model import CATCH_UP

__all__ = [
    "LIVE_SECONDS",
    "MemoryRateStore",
    "Observation",
    "RateStore",
    "RateStoreUnavailable",
    "Report",
    "SharedLimit",
    "View",
]

LIVE_SECONDS = 5.0
"""A client that has not synced for this long no longer counts among the store's clients."""


class RateStoreUnavailable(Exception):
    """The store did not answer, or not in time; the client paces alone until it does."""


class Observation(NamedTuple):
    """An answer's window budget, as a client reports it to the store.

    ``sent_age`` and ``age`` are durations on the client's own clock at the time of the
    report, so the store places them on its clock without comparing two hosts' clocks.
    """

    seq: int
    """The shared sequence number of the request answered."""
    remaining: int
    reset: float
    limit: int | None
    sent_age: float
    """Seconds since the request was sent."""
    age: float
    """Seconds since the answer arrived."""
    rebase: bool = False
    """A probe the server admitted through a spent count: recount the budget from it;
    numbered after an answer that stated the window spent, it shows the headers describe no
    fixed window."""


class Report(NamedTuple):
    """What one client tells the store in one sync."""

    client: str
    """The client's id: random, one per client."""
    rate: float | None
    """The rate the client learned (its share of the server's); ``None`` while unpaced."""
    cap: float | None
    """The client's ``rate_limit``."""
    admit: int = 0
    """Requests asking to go: each, unless something holds it, takes the next sequence
    number (and, when paced, the next send slot); they are admitted in order until one is
    held."""
    probe: bool = False
    """The request is a probe through a hold: admitted whatever holds, and never paced, unless
    another client's probe went out less than its ``probe_gap`` ago."""
    probe_gap: float = 0.0
    """Seconds no other client's probe may go after this one."""
    paced: bool = True
    """Whether the client paces its sends (a learned rate or a cap): only then does it take
    slots on the shared schedule. One that bursts a window's budget, or has met no throttle
    yet, goes as it would alone."""
    honour_pause: bool = True
    """Whether the shared pause holds this client (off once its probes beat pauses)."""
    pause: float = 0.0
    """Seconds of a server pause the client began, to share (0: none)."""
    pause_ended: int = 0
    """The number of a shared pause one of the client's probes ended (0: none)."""
    untrust: bool = False
    """A probe beat the spent budget: the headers describe no fixed window."""
    observations: tuple[Observation, ...] = ()


class View(NamedTuple):
    """What the store answers one sync with."""

    now: float
    """The store's time (Redis ``TIME``), in seconds."""
    admitted: int
    """How many of the requests asking may go, the first ones (0 for a sync that asked none)."""
    seq: int
    """The shared sequence number the first of them took (the next took the next; 0: none)."""
    wait: float
    """Seconds until the first one's slot when any was admitted; else until the hold ends."""
    interval: float
    """Seconds between the slots booked for the admitted ones (0: unpaced)."""
    pause: float
    """Seconds left in the shared pause."""
    pause_id: int
    """The shared pause's number."""
    budget_wait: float
    """Seconds a spent budget holds the next request (0: none, or untrusted)."""
    budget_active: bool
    """Answers have stated a budget: every request needs a shared sequence number."""
    untrusted: bool
    """A probe beat the budget: it no longer holds anyone."""
    rate: float | None
    """The shared pacing rate in requests per second; ``None``: unpaced."""
    clients: int
    """Clients that synced in the last ``LIVE_SECONDS``, this one included."""
    budget_stated: bool = False
    """An answer stated the tracked window spent: a hold is the server's word, not only the
    shared count's (which requests reaching the server out of order can run out early)."""


class RateStore(Protocol):
    """Shared rate-control state for the clients of every process that uses the same store."""

    async def sync(self, key_id: str, report: Report) -> View:
        """Apply ``report`` to the state of ``key_id`` and answer with it, in one step.

        Raises:
            RateStoreUnavailable: the store did not answer in time.
        """
        ...

    def attach(self) -> None:
        """A client starts using the store."""
        ...

    async def release(self) -> None:
        """A client stops using the store; the last one to leave closes its connections."""
        ...


class SharedLimit:
    """The shared state of one API key, and the step that reads and changes it.

    Pure and clock-driven. The Lua script of ``_redis_store`` is this class, line for line.
    """

    def __init__(self) -> None:
        self.pause_until = -math.inf
        self.pause_id = 0
        self.sent: int | None = None
        """The last shared sequence number taken. It starts at the store's time in microseconds,
        so the numbers of a store that restarted empty are above every number taken before."""
        self.last_seq = math.inf
        self.end = -math.inf
        self.limit: int | None = None
        self.length = 0.0
        self.spent_seq = math.inf
        """The number of the first request answered ``remaining: 0`` in the tracked window."""
        self.opened_seq = 0
        """The first number of the tracked window: answers to earlier ones are old."""
        self.untrusted = False
        self.tat = -math.inf
        self.interval = 0.0
        self.probe_next = -math.inf
        self.clients: dict[str, tuple[float, float | None, float | None]] = {}

    def step(self, report: Report, now: float) -> View:
        """One sync at ``now``."""
        if self.sent is None:
            self.sent = round(now * 1_000_000)
        rate, live = self._rate(report, now)
        if report.pause > 0:
            until = now + report.pause
            if until > self.pause_until:
                self.pause_until = until
                self.pause_id += 1
        if report.pause_ended and report.pause_ended == self.pause_id and self.pause_until > now:
            self.pause_until = now
        if report.untrust:
            self.untrusted = True
        for observation in report.observations:
            self._observe(observation, now)
        pause_left = max(0.0, self.pause_until - now)
        admitted = 0
        seq = 0
        wait = 0.0
        gap = 0.0
        held = 0.0
        for _ in range(report.admit):
            budget = 0.0 if self.untrusted else self._budget_wait(now)
            held = max(pause_left if report.honour_pause else 0.0, budget)
            if report.probe and held > 0:
                if now < self.probe_next:
                    held = self.probe_next - now  # one probe at a time, for every client
                    break
                self.probe_next = now + report.probe_gap
            elif held > 0:
                break
            assert self.sent is not None
            self.sent += 1
            admitted += 1
            if admitted == 1:
                seq = self.sent
            if rate is not None and report.paced and not report.probe:
                tat = self.tat
                if tat < now - CATCH_UP:
                    tat = now
                if admitted == 1:
                    wait = max(0.0, tat - now)
                    gap = self.interval
                self.tat = tat + self.interval
        if report.admit and not admitted:
            wait = held
        budget_wait = 0.0 if self.untrusted else self._budget_wait(now)
        return View(
            now=now,
            admitted=admitted,
            seq=seq,
            wait=wait,
            interval=gap,
            pause=pause_left,
            pause_id=self.pause_id,
            budget_wait=budget_wait,
            budget_active=self.end > -math.inf and not self.untrusted,
            untrusted=self.untrusted,
            rate=rate,
            clients=live,
            budget_stated=self.spent_seq < math.inf,
        )

    def _rate(self, report: Report, now: float) -> tuple[float | None, int]:
        """Record the client; the pacing rate of the live clients together, and their count."""
        self.clients[report.client] = (now, report.rate, report.cap)
        total = 0.0
        cap = math.inf
        live = 0
        for client, (seen, rate, client_cap) in list(self.clients.items()):
            if seen < now - LIVE_SECONDS:
                del self.clients[client]
                continue
            live += 1
            if rate is not None:
                total += rate
            if client_cap is not None:
                cap = min(cap, client_cap)
        pacing: float | None = total if total > 0 else None
        if cap < math.inf:
            pacing = cap if pacing is None else min(pacing, cap)
        if pacing is None:
            self.tat = -math.inf
            self.interval = 0.0
        else:
            interval = 1.0 / pacing
            if interval != self.interval:
                if self.tat > -math.inf:
                    # The next slot stays one interval after the last booking, at the new one.
                    self.tat += interval - self.interval
                self.interval = interval
        return pacing, live

    def _observe(self, observation: Observation, now: float) -> None:
        """``HeaderBudget.observe`` on the shared sequence."""
        if observation.seq <= 0:
            return  # sent before the budget needed numbers: nothing to count from
        arrived = now - observation.age
        sent_at = now - observation.sent_age
        end = arrived + observation.reset
        last_seq = observation.seq + observation.remaining
        if observation.limit is not None:
            self.limit = observation.limit
        if observation.reset > self.length:
            self.length = observation.reset
        seq = observation.seq
        if seq < self.opened_seq and sent_at < self.end:
            return  # in flight when the tracked window opened: it speaks of the one before
        if observation.rebase and seq > self.spent_seq:
            self.untrusted = True  # admitted after the server said spent: no fixed window
            return
        if observation.rebase and self.spent_seq == math.inf:
            # Only the shared count said spent: recount from the probe.
            self.last_seq = last_seq
            self.end = end if self.end == -math.inf else min(self.end, end)
            if observation.remaining == 0:
                self.spent_seq = seq
            return
        if sent_at >= self.end:
            self.end = end
            self.last_seq = last_seq
            self.spent_seq = seq if observation.remaining == 0 else math.inf
            self.opened_seq = seq
            return
        if observation.remaining == 0 and seq < self.spent_seq:
            self.spent_seq = seq
        if end < self.end:
            self.end = end
        if last_seq < self.last_seq:
            self.last_seq = last_seq

    def _budget_wait(self, now: float) -> float:
        """``HeaderBudget.wait`` for the next shared request."""
        assert self.sent is not None
        if self.sent < self.last_seq:
            return 0.0
        if now >= self.end:
            self.last_seq = math.inf if self.limit is None else self.sent + self.limit
            self.end = now + 2 * self.length
            self.spent_seq = math.inf
            self.opened_seq = self.sent + 1
            return 0.0
        return self.end - now


class MemoryRateStore:
    """A store in this process's memory: clients of one process, on any event loop, share it.

    Args:
        clock: where time is read (``time.monotonic`` by default).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock
        self._limits: dict[str, SharedLimit] = {}

    async def sync(self, key_id: str, report: Report) -> View:
        """Apply ``report`` to ``key_id``'s state and answer with it."""
        limit = self._limits.get(key_id)
        if limit is None:
            limit = self._limits[key_id] = SharedLimit()
        now = self._clock.monotonic() if self._clock is not None else time.monotonic()
        return limit.step(report, now)

    def attach(self) -> None:
        """Nothing to open."""

    async def release(self) -> None:
        """Nothing to close."""
