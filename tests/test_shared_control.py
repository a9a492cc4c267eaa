"""Clients sharing rate control through a store, in virtual time (the in-memory store).

Two ``ClientRateControl``s on one ``MemoryRateStore`` and one ``VirtualClock`` stand for two
processes on one Redis: what one meets, the other holds; what they share, they share once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math

import pytest

import dialnexa_async as dnx
from dialnexa_async._pause import MIN_PROBE_GAP, PROBES
from dialnexa_async._rate_control import Answer, ClientRateControl, Ticket
from dialnexa_async._rate_store import MemoryRateStore, RateStoreUnavailable, Report, View
from dialnexa_async._sansio.headers import RateLimitInfo
from dialnexa_async._shared_control import REFRESH, REJOIN_AFTER, key_id_of
from dialnexa_async.testing import FixedWindow

OK = Answer(200, None, None)


class Store(MemoryRateStore):
    """The in-memory store, counting syncs, and failing while ``down``."""

    def __init__(self, clock: dnx.VirtualClock) -> None:
        super().__init__(clock)
        self.syncs = 0
        self.down = False

    async def sync(self, key_id: str, report: Report) -> View:
        if self.down:
            raise RateStoreUnavailable("ConnectionError")
        self.syncs += 1
        return await super().sync(key_id, report)


def _pair(
    clock: dnx.VirtualClock, store: Store, rate_limit: float | None = None
) -> tuple[ClientRateControl, ClientRateControl]:
    return tuple(  # type: ignore[return-value]
        ClientRateControl(
            clock, rate_limit=rate_limit, max_wait=60.0, store=store, key_id="key_test"
        )
        for _ in range(2)
    )


async def _settle() -> None:
    """Let a publish scheduled by ``observe`` reach the store."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_pause_one_client_met_holds_the_other_which_only_probes() -> None:
    """B, which met no 429, sends nothing before A's Retry-After but its spaced probes."""
    clock = dnx.VirtualClock()
    store = Store(clock)
    a, b = _pair(clock, store)
    ticket = await a.acquire()
    a.observe(Answer(429, None, 2.0), ticket)
    await _settle()
    start = clock.monotonic()
    probe = await b.acquire()
    gap = max(MIN_PROBE_GAP, 2.0 / (PROBES + 1))
    assert probe.sent_at == pytest.approx(start + gap, abs=0.02)
    # With the probe unanswered, B's next request waits for the pause's end, not another gap.
    after = await b.acquire(may_probe=False)
    assert after.sent_at >= start + 2.0 - 0.01


async def test_a_probe_that_gets_through_ends_the_pause_for_every_client() -> None:
    """B's admitted probe tells the store; A, paused by its own 429, goes at once after."""
    clock = dnx.VirtualClock()
    store = Store(clock)
    a, b = _pair(clock, store)
    a.observe(Answer(429, None, 10.0), await a.acquire())
    await _settle()
    probe = await b.acquire()
    assert probe.sent_at < 10.0
    b.observe(OK, probe)
    await _settle()
    assert store._limits["key_test"].pause_until <= clock.monotonic()
    # A's own pause still holds it locally until its own probe; the shared one is gone.
    assert b.paused_for == 0.0


async def test_a_shared_cap_holds_both_clients_together() -> None:
    """Two clients with ``rate_limit=10`` send 10 a second between them, not 20."""
    clock = dnx.VirtualClock()
    store = Store(clock)
    a, b = _pair(clock, store, rate_limit=10.0)

    sent = []
    while clock.monotonic() < 3.0:
        for control in (a, b):  # turns taken in alternation, as two busy processes would
            ticket = await control.acquire()
            sent.append(ticket.sent_at)
            control.observe(OK, ticket)
    assert len([t for t in sent if t < 3.0]) <= 31
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert min(gaps) >= 0.1 - 1e-9


async def test_a_window_budget_counts_both_clients_requests() -> None:
    """A's answer says two more fit in the window: B's second request waits for its end."""
    clock = dnx.VirtualClock()
    store = Store(clock)
    a, b = _pair(clock, store)
    ticket = await a.acquire()
    assert ticket.shared_seq > 0
    a.observe(Answer(200, RateLimitInfo(3, 2, 1.0), None), ticket)
    second = await a.acquire()  # carries the answer to the store, and is one of the two
    third = await b.acquire()
    assert second.sent_at == third.sent_at == 0.0
    fourth = await b.acquire(may_probe=False)
    assert fourth.sent_at >= 1.0 - 1e-9


async def test_a_budget_stated_spent_reaches_the_store_at_once() -> None:
    """``remaining: 0`` is told at once, not with A's next request: B waits for the reset."""
    clock = dnx.VirtualClock()
    store = Store(clock)
    a, b = _pair(clock, store)
    ticket = await a.acquire()
    a.observe(Answer(200, RateLimitInfo(1, 0, 1.0), None), ticket)
    await _settle()
    assert (await b.acquire(may_probe=False)).sent_at >= 1.0 - 1e-9


async def test_unthrottled_clients_sync_only_every_refresh() -> None:
    """With nothing throttled and no cap, requests between refreshes cost the store nothing."""
    clock = dnx.VirtualClock()
    store = Store(clock)
    a, _ = _pair(clock, store)
    sent = 0
    for _ in range(200):
        ticket = a.try_acquire() or await a.acquire()
        a.observe_success(ticket)
        sent += 1
        clock.advance(0.001)
    # 0.2 s of requests: the first sync, then one per REFRESH.
    assert store.syncs <= 1 + 0.2 / REFRESH + 1
    assert sent == 200


async def test_a_store_that_fails_is_paced_around_at_this_clients_share(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Store down: one warning however many failures, pacing at the cap over the clients
    last seen; store back: shared again after ``REJOIN_AFTER``, with one info line."""
    caplog.set_level(logging.INFO, logger="dialnexa_async")
    clock = dnx.VirtualClock()
    store = Store(clock)
    a, b = _pair(clock, store, rate_limit=20.0)
    await a.acquire()
    await b.acquire()  # the store has seen two clients
    await a.acquire()
    store.down = True
    sent = [(await a.acquire()).sent_at for _ in range(40)]
    shared = a.shared
    assert shared is not None
    assert not shared.joined
    assert a.send_rate_cap == pytest.approx(10.0)  # half of 20: two clients were live
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent[1:])]
    assert min(gaps) >= 0.1 - 1e-9
    assert shared.failures >= 2  # tried again every REJOIN_AFTER, warned once
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    store.down = False
    clock.advance(REJOIN_AFTER)
    await a.acquire()
    assert shared.joined
    assert a.send_rate_cap == pytest.approx(20.0)
    assert any("answers again" in r.getMessage() for r in caplog.records)


async def test_a_budget_a_probe_beat_stops_holding_every_client() -> None:
    """A's probe beats the spent budget well before its reset: B drops the budget too."""
    clock = dnx.VirtualClock()
    store = Store(clock)
    a, b = _pair(clock, store)
    ticket = await a.acquire()
    a.observe(Answer(200, RateLimitInfo(1, 0, 10.0), None), ticket)
    probe = await a.acquire()  # held by the spent budget: goes as its probe, early
    assert probe.sent_at < 5.0
    a.observe(OK, probe)
    assert not a.budget_trusted
    await _settle()
    await b.acquire()
    assert not b.budget_trusted


async def test_a_probe_beating_only_the_shared_count_recounts_and_keeps_the_budget() -> None:
    """The count ran out with no answer saying so (requests of several clients reach the
    server out of order): B probes at once, its answer recounts, and nobody stops trusting
    the headers or waits for the reset."""
    clock = dnx.VirtualClock()
    store = Store(clock)
    a, b = _pair(clock, store)
    ticket = await a.acquire()
    a.observe(Answer(200, RateLimitInfo(10, 1, 10.0), None), ticket)
    await a.acquire()  # the one more that fits; its answer is still on its way
    probe = await b.acquire()  # held by the count alone: goes at once as its probe
    assert probe.sent_at < 0.05  # not a tenth of the hold in, as a stated spent one would
    b.observe(Answer(200, RateLimitInfo(10, 5, 9.9), None), probe)
    await _settle()
    after = [await c.acquire(may_probe=False) for c in (a, b, a)]
    assert all(t.sent_at < 0.1 for t in after)  # the recount let them go, not the reset
    assert a.budget_trusted
    assert b.budget_trusted
    assert store._limits["key_test"].untrusted is False


async def test_a_client_on_a_store_infers_no_window_from_bare_429s() -> None:
    """Alone, one cycle of bare 429s from a fixed window engages an inferred window (see
    test_inferred_window); on a store it does not: each client's own window would burst into
    the server's one with the others', so the shared rate paces them instead."""
    clock = dnx.VirtualClock()
    store = Store(clock)
    control, _ = _pair(clock, store)
    server = FixedWindow(10, 1.0)
    while clock.monotonic() < 5.0:
        ticket = await control.acquire()
        admitted = server.admit(ticket.sent_at).admitted
        control.observe(OK if admitted else Answer(429, None, None), ticket)
        assert not control.window.engaged
    assert control.send_rate_cap is not None  # paced by the adaptive rate
    assert control.admitted >= 40  # four of the five windows' budgets used, at least


def test_the_key_id_is_the_part_before_the_colon_and_never_the_secret() -> None:
    """State is named by the id; a key without one by a digest that shows none of it."""
    assert key_id_of("key_live42:s3cret") == "key_live42"
    digest = key_id_of("sk_live_s3cret")
    assert digest.startswith("sha256-")
    assert "s3cret" not in digest
    assert key_id_of(":s3cret").startswith("sha256-")


async def test_a_client_without_a_store_takes_no_shared_number() -> None:
    """``rate_store=None`` (the default) is the client alone, as before stores existed."""
    clock = dnx.VirtualClock()
    control = ClientRateControl(clock, rate_limit=None, max_wait=60.0)
    assert control.shared is None
    assert (control.try_acquire() or await control.acquire()) == Ticket(1, 0.0)


async def test_a_client_sharing_a_store_reads_no_penalty_off_its_own_budgets_end() -> None:
    """Alone, a 429 asking past the budget's end and a rounded second is a block to sit out;
    sharing, the client's own budget sees only its own answers and its end can lag the
    window the store tracks, so the same 429 is left to the shared budget."""
    clock = dnx.VirtualClock()
    alone = ClientRateControl(clock, rate_limit=None, max_wait=60.0)
    a, _ = _pair(clock, Store(clock))
    for control in (alone, a):
        first = await control.acquire()
        control.observe(Answer(200, RateLimitInfo(10, 5, 1.0), None), first)  # ends at t=1
        late = await control.acquire()
        control.observe(Answer(429, RateLimitInfo(10, 0, 2.5), 2.5), late)
    await _settle()
    assert alone.pause.until == pytest.approx(2.5)
    assert a.pause.until == -math.inf
