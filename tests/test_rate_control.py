"""Client-wide rate control in virtual time: shared cooldown, window holds, the pacing cap."""

from __future__ import annotations

import asyncio

import pytest

import dialnexa_async as dnx
from dialnexa_async._rate_control import Answer, ClientRateControl, Pacer
from dialnexa_async._sansio.headers import RateLimitInfo


def _control(clock: dnx.VirtualClock, rate_limit: float | None = None) -> ClientRateControl:
    return ClientRateControl(clock, rate_limit=rate_limit, max_wait=60.0)


async def test_a_429_pauses_every_new_request_once() -> None:
    """After a 429 with Retry-After, all waiting tasks sit out one shared pause."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(Answer(429, None, 2.0))
    starts: list[float] = []

    async def request() -> None:
        await control.acquire()
        starts.append(clock.monotonic())

    await asyncio.gather(*(request() for _ in range(10)))
    assert all(start >= 2.0 for start in starts)
    assert max(starts) < 2.0 + 1e-9
    assert control.cooldowns == 1
    assert control.cooldown_seconds == pytest.approx(2.0)


async def test_pause_only_moves_forward() -> None:
    """A later, shorter wait never shortens a longer pause already in force."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(Answer(429, None, 5.0))
    control.observe(Answer(429, None, 1.0))
    assert control.paused_for == pytest.approx(5.0)
    control.observe(Answer(429, None, 8.0))
    assert control.paused_for == pytest.approx(8.0)
    assert control.cooldown_seconds == pytest.approx(8.0)


async def test_exhausted_window_holds_until_reset() -> None:
    """x-ratelimit-remaining: 0 holds new requests until x-ratelimit-reset."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(Answer(200, RateLimitInfo(150, 3, 40.0), None))
    assert control.paused_for == 0.0
    control.observe(Answer(200, RateLimitInfo(150, 0, 40.0), None))
    assert control.paused_for == pytest.approx(40.0)
    await control.acquire()
    assert clock.monotonic() == pytest.approx(40.0)


async def test_bare_429_does_not_pause_the_client() -> None:
    """A 429 without any server-given wait leaves the pause to the backoff of that request."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(Answer(429, None, None))
    assert control.paused_for == 0.0


async def test_pause_longer_than_max_wait_fails_fast() -> None:
    """A pause longer than max_retry_wait fails new requests at once with the remaining wait."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(Answer(429, None, 3600.0))
    with pytest.raises(dnx.RateLimitError) as caught:
        await control.acquire()
    assert caught.value.retry_after == pytest.approx(3600.0)
    assert clock.sleeps == []


async def test_rate_limit_spaces_sends() -> None:
    """rate_limit=10 starts 21 concurrent requests over two seconds, evenly spaced."""
    clock = dnx.VirtualClock()
    control = _control(clock, rate_limit=10.0)
    starts: list[float] = []

    async def request() -> None:
        await control.acquire()
        starts.append(clock.monotonic())

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
