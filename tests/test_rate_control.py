"""Client-wide rate control in virtual time: cooldowns, window budget, adaptive rate, pacing."""

from __future__ import annotations

import asyncio

import pytest

import dialnexa_async as dnx
from dialnexa_async._rate_control import (
    BARE_HOLD_INITIAL,
    Answer,
    ClientRateControl,
    Pacer,
    Ticket,
)
from dialnexa_async._sansio.headers import RateLimitInfo


def _control(
    clock: dnx.VirtualClock, rate_limit: float | None = None, concurrency: int = 64
) -> ClientRateControl:
    return ClientRateControl(
        clock, rate_limit=rate_limit, max_wait=60.0, max_concurrency=concurrency
    )


def _now(clock: dnx.VirtualClock, seq: int = 1) -> Ticket:
    return Ticket(seq, clock.monotonic())


async def test_a_429_pauses_every_new_request_once() -> None:
    """After a 429 with Retry-After, all waiting tasks sit out one shared pause."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(Answer(429, None, 2.0), _now(clock))
    starts: list[float] = []

    async def request() -> None:
        ticket = await control.acquire()
        starts.append(ticket.sent_at)

    await asyncio.gather(*(request() for _ in range(10)))
    assert all(start >= 2.0 for start in starts)
    assert max(starts) < 2.0 + 1e-9
    assert control.cooldowns == 1
    assert control.cooldown_seconds == pytest.approx(2.0)


async def test_pause_only_moves_forward() -> None:
    """A later, shorter wait never shortens a longer pause already in force."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(Answer(429, None, 5.0), _now(clock))
    control.observe(Answer(429, None, 1.0), _now(clock))
    assert control.paused_for == pytest.approx(5.0)
    control.observe(Answer(429, None, 8.0), _now(clock))
    assert control.paused_for == pytest.approx(8.0)
    assert control.cooldown_seconds == pytest.approx(8.0)


async def test_exhausted_window_holds_until_reset() -> None:
    """x-ratelimit-remaining: 0 holds new requests until x-ratelimit-reset."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    first = await control.acquire()
    control.observe(Answer(200, RateLimitInfo(150, 0, 40.0), None), first)
    await control.acquire()
    assert clock.monotonic() == pytest.approx(40.0)


async def test_window_budget_counts_requests_in_flight() -> None:
    """remaining: 3 for request 1 lets requests 2-4 go, and holds the fifth until the reset."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    first = await control.acquire()
    control.observe(Answer(200, RateLimitInfo(10, 3, 5.0), None), first)
    for _ in range(3):
        await control.acquire()
    assert clock.monotonic() == 0.0
    fifth = await control.acquire()
    assert fifth.sent_at == pytest.approx(5.0)


async def test_window_end_is_the_earliest_arrival_plus_reset() -> None:
    """Rounded-up resets from later answers tighten the estimate of the window's end."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    tickets = [await control.acquire() for _ in range(3)]
    control.observe(Answer(200, RateLimitInfo(3, 2, 1.0), None), tickets[0])
    clock.advance(0.6)
    # The server rounds "0.4 s left" up to 1 s: the earlier estimate (t=1.0) must stand.
    control.observe(Answer(200, RateLimitInfo(3, 0, 1.0), None), tickets[2])
    nxt = await control.acquire()
    assert nxt.sent_at == pytest.approx(1.0)


async def test_new_window_uses_the_known_limit() -> None:
    """Once a window is over, the next admits x-ratelimit-limit requests, then waits for it."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    first = await control.acquire()
    control.observe(Answer(200, RateLimitInfo(4, 0, 1.0), None), first)
    sent = [await control.acquire() for _ in range(5)]
    assert [t.sent_at for t in sent[:4]] == [pytest.approx(1.0)] * 4
    # No answer from the new window yet: its end is bounded by two window lengths.
    assert sent[4].sent_at == pytest.approx(3.0)


async def test_hintless_429_pauses_briefly_and_doubles_while_throttled() -> None:
    """A bare 429 pauses the client 0.1 s, then 0.2 s for a probe that is throttled again."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    first = await control.acquire()
    control.observe(Answer(429, None, None), first)
    assert control.paused_for == pytest.approx(BARE_HOLD_INITIAL)
    probe = await control.acquire()
    assert probe.sent_at == pytest.approx(BARE_HOLD_INITIAL)
    control.observe(Answer(429, None, None), probe)
    assert control.paused_for == pytest.approx(2 * BARE_HOLD_INITIAL)
    ok = await control.acquire()
    control.observe(Answer(200, None, None), ok)
    later = await control.acquire()
    control.observe(Answer(429, None, None), later)
    assert control.paused_for == pytest.approx(BARE_HOLD_INITIAL)


async def test_an_episode_reacts_once() -> None:
    """429s to requests sent before the first throttle change neither pause, rate nor limit."""
    clock = dnx.VirtualClock()
    control = _control(clock, concurrency=64)
    tickets = [await control.acquire() for _ in range(20)]
    clock.advance(0.01)
    control.observe(Answer(429, None, None), tickets[0])
    rate = control.adaptive.rate
    limit = control.concurrency.limit
    paused = control.paused_for
    for ticket in tickets[1:]:
        control.observe(Answer(429, None, None), ticket)
    assert control.adaptive.rate == rate
    assert control.concurrency.limit == limit == 32
    assert control.paused_for == pytest.approx(paused)


async def test_each_counted_throttle_halves_the_concurrency_limit() -> None:
    """A probe that is throttled again halves the in-flight limit once more; success regrows it."""
    clock = dnx.VirtualClock()
    control = _control(clock, concurrency=16)
    control.observe(Answer(429, None, None), await control.acquire())
    assert control.concurrency.limit == 8
    control.observe(Answer(429, None, None), await control.acquire())
    assert control.concurrency.limit == 4
    for _ in range(40):
        control.observe(Answer(200, None, None), await control.acquire())
    assert control.concurrency.limit > 8


async def test_slow_sender_429_leaves_the_rate_cap_off() -> None:
    """A 429 while sending under 10 requests a second does not drag the rate cap down."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(Answer(429, None, None), await control.acquire())
    assert control.send_rate_cap is None


async def test_hintless_429_cuts_the_send_rate_to_a_share_of_the_measured_rate() -> None:
    """A 429 without window headers caps the send rate below what was being sent."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    assert control.send_rate_cap is None
    tickets = []
    for _ in range(100):
        tickets.append(await control.acquire())
        clock.advance(0.01)
    control.observe(Answer(429, None, 1.0), tickets[-1])
    cap = control.send_rate_cap
    assert cap is not None
    assert 50 <= cap <= 80


async def test_429_with_window_headers_leaves_the_rate_alone() -> None:
    """When the server reports its window, the budget paces and the rate cap stays off."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    ticket = await control.acquire()
    control.observe(Answer(429, RateLimitInfo(100, 0, 1.0), 1.0), ticket)
    assert control.send_rate_cap is None


async def test_rate_regrows_after_a_cut() -> None:
    """Successes move the cut rate back up to the old rate, then beyond it."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    tickets = []
    for _ in range(100):
        tickets.append(await control.acquire())
        clock.advance(0.01)
    control.observe(Answer(429, None, None), tickets[-1])
    cut = control.send_rate_cap
    assert cut is not None
    clock.advance(3.0)
    control.observe(Answer(200, None, None), await control.acquire())
    regrown = control.send_rate_cap
    assert regrown is not None
    assert regrown > cut
    clock.advance(30.0)
    control.observe(Answer(200, None, None), await control.acquire())
    assert control.send_rate_cap is not None
    assert control.send_rate_cap > 100


async def test_fixed_cap_bounds_the_adaptive_rate() -> None:
    """rate_limit stays the ceiling however far the adaptive rate regrows."""
    clock = dnx.VirtualClock()
    control = _control(clock, rate_limit=20.0)
    ticket = await control.acquire()
    control.observe(Answer(429, None, None), ticket)
    clock.advance(1000.0)
    control.observe(Answer(200, None, None), await control.acquire())
    assert control.send_rate_cap == 20.0


async def test_pause_longer_than_max_wait_fails_fast() -> None:
    """A pause longer than max_retry_wait fails new requests at once with the remaining wait."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(Answer(429, None, 3600.0), _now(clock))
    with pytest.raises(dnx.RateLimitError) as caught:
        await control.acquire()
    assert caught.value.retry_after == pytest.approx(3600.0)
    assert clock.sleeps == []


async def test_rate_limit_spaces_sends() -> None:
    """rate_limit=10 starts 21 concurrent requests over two seconds, one per slot."""
    clock = dnx.VirtualClock()
    control = _control(clock, rate_limit=10.0)
    starts: list[float] = []

    async def request() -> None:
        starts.append((await control.acquire()).sent_at)

    await asyncio.gather(*(request() for _ in range(21)))
    starts.sort()
    assert starts[0] == 0.0
    # No request starts before its slot k/10, and the last slot is not later than needed.
    assert all(start >= k * 0.1 - 1e-9 for k, start in enumerate(starts))
    assert starts[-1] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("burst", "now_list", "waits"),
    [
        (1, [0.0, 0.0, 0.0], [0.0, 0.5, 1.0]),
        (2, [0.0, 0.0, 0.0], [0.0, 0.0, 0.5]),
        (1, [0.0, 10.0, 10.0], [0.0, 0.0, 0.5]),
    ],
)
def test_pacer_reservations(burst: int, now_list: list[float], waits: list[float]) -> None:
    """The GCRA pacer books slots 1/rate apart, lets a burst through, and forgets idle time."""
    pacer = Pacer(2.0, burst=burst)
    assert [pacer.reserve(now) for now in now_list] == pytest.approx(waits)


def test_pacer_rejects_non_positive_rates() -> None:
    """A zero or negative rate is a ValueError, not a division by zero later."""
    with pytest.raises(ValueError, match="positive"):
        Pacer(0.0)
