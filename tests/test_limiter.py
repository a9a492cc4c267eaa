"""AdaptiveLimiter: the client's slots for requests in flight, and their waiters."""

from __future__ import annotations

import asyncio

import pytest

from dialnexa_async._limiter import AdaptiveLimiter

# --- AdaptiveLimiter -------------------------------------------------------------------------


async def _settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_limiter_decrease_is_multiplicative_and_never_below_one() -> None:
    """decrease() multiplies the limit and stops at one request, however often it is called."""
    limiter = AdaptiveLimiter(16)
    assert limiter.limit == 16
    limiter.decrease(0.5)
    assert limiter.limit == 8
    limiter.decrease(0.5)
    assert limiter.limit == 4
    for _ in range(20):
        limiter.decrease(0.5)
    assert limiter.limit == 1


def test_limiter_increase_is_additive_and_capped_at_maximum() -> None:
    """increase() adds about one request per ``limit`` calls and never passes the maximum."""
    limiter = AdaptiveLimiter(8)
    limiter.decrease(0.5)
    assert limiter.limit == 4
    for _ in range(3):
        limiter.increase()
    assert limiter.limit == 4  # 3 calls at limit 4 add 3/4 of a request, not 3 requests
    for _ in range(2):
        limiter.increase()
    assert limiter.limit == 5
    for _ in range(1000):
        limiter.increase()
    assert limiter.limit == 8
    assert limiter._limit == 8.0  # the float state is clamped too, not just its int view


async def test_limiter_holds_new_requests_while_over_a_decreased_limit() -> None:
    """After a cut below the requests in flight, a waiter waits until in flight < limit."""
    limiter = AdaptiveLimiter(4)
    for _ in range(4):
        await limiter.acquire()
    limiter.decrease(0.5)  # limit 2 with 4 in flight
    waiter = asyncio.create_task(limiter.acquire())
    await _settle()
    limiter.release()
    limiter.release()  # 2 in flight: still not below the limit
    await _settle()
    assert not waiter.done()
    limiter.release()  # 1 in flight: room for one
    await _settle()
    assert waiter.done()
    assert limiter.in_flight == 2


async def test_limiter_wakes_waiters_in_arrival_order() -> None:
    """Waiters get freed slots first come, first served."""
    limiter = AdaptiveLimiter(1)
    await limiter.acquire()
    order: list[int] = []

    async def take(n: int) -> None:
        await limiter.acquire()
        order.append(n)

    tasks = []
    for n in range(5):
        tasks.append(asyncio.create_task(take(n)))
        await _settle()  # each enqueues before the next starts
    for _ in range(5):
        limiter.release()
        await _settle()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert limiter.in_flight == 1


async def test_limiter_increase_wakes_a_waiter() -> None:
    """Regrowing the limit hands the new slot to a waiting request without a release."""
    limiter = AdaptiveLimiter(2)
    limiter.decrease(0.5)  # limit 1
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await _settle()
    assert not waiter.done()
    limiter.increase()  # 1 -> 2
    await _settle()
    assert waiter.done()
    assert limiter.in_flight == 2


async def test_limiter_cancelled_waiter_does_not_take_a_slot() -> None:
    """A waiter cancelled while queued is skipped on release and leaves no slot counted."""
    limiter = AdaptiveLimiter(1)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await _settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.release()
    assert limiter.in_flight == 0
    await asyncio.wait_for(limiter.acquire(), timeout=1)  # immediate: nothing leaked
    assert limiter.in_flight == 1


async def test_limiter_slot_handed_over_just_before_cancellation_is_given_back() -> None:
    """A waiter cancelled after release() handed it a slot but before it resumed returns it."""
    limiter = AdaptiveLimiter(1)
    await limiter.acquire()
    second = asyncio.create_task(limiter.acquire())
    third = asyncio.create_task(limiter.acquire())
    await _settle()
    limiter.release()  # hands the slot to `second`, whose task has not resumed yet
    assert limiter.in_flight == 1
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    await _settle()
    # The slot `second` gave back went on to `third` instead of being lost.
    assert third.done()
    assert not third.cancelled()
    assert limiter.in_flight == 1
    limiter.release()
    assert limiter.in_flight == 0
