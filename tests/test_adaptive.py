"""The adaptive pieces in isolation: concurrency limiter, CUBIC rate, send-rate meter, retry budget.

Everything here is pure or runs on the event loop without sockets or real waiting: the rate
objects take ``now`` as an argument, and the retry policy runs with a no-op sleep.
"""

from __future__ import annotations

import asyncio
import math

import pytest

import dialnexa_async as dnx
from dialnexa_async._adaptive import BETA, MIN_RATE, PLATEAU, SCALE, CubicRate, SendRateMeter
from dialnexa_async._errors import make_status_error
from dialnexa_async._limiter import AdaptiveLimiter
from dialnexa_async._retry import RetryPolicy
from dialnexa_async._retry_budget import (
    CAPACITY,
    RETRY_COST,
    SUCCESS_REFILL,
    TIMEOUT_RETRY_COST,
    RetryBudget,
)

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


# --- CubicRate ---------------------------------------------------------------------------------


def _k(base: float) -> float:
    """Seconds CUBIC takes to climb from ``BETA * base`` back to ``PLATEAU * base``."""
    return float(((base * PLATEAU - base * BETA) / SCALE) ** (1.0 / 3.0))


def test_cubic_is_off_until_the_first_throttle() -> None:
    """Before any 429 there is no adaptive cap and successes leave it off."""
    cubic = CubicRate()
    assert cubic.rate is None
    assert cubic.on_success(10.0) is None
    assert cubic.rate is None


def test_cubic_cuts_to_beta_of_the_measured_rate() -> None:
    """A throttle at 100/s sets the cap to BETA * 100/s."""
    cubic = CubicRate()
    cubic.on_throttle(0.0, measured=100.0)
    assert cubic.rate == pytest.approx(BETA * 100.0)


def test_cubic_climbs_concavely_to_the_plateau_in_k_seconds_then_probes_above() -> None:
    """The cap regains PLATEAU * the throttled rate after K seconds and grows past it later."""
    cubic = CubicRate()
    cubic.on_throttle(0.0, measured=100.0)
    k = _k(100.0)
    early = cubic.on_success(k / 4)
    half = cubic.on_success(k / 2)
    assert early is not None
    assert half is not None
    assert BETA * 100.0 < early < half < PLATEAU * 100.0
    # Concave: the first half of the climb gains more than the second.
    assert half - BETA * 100.0 > PLATEAU * 100.0 - half
    assert cubic.on_success(k) == pytest.approx(PLATEAU * 100.0)
    assert cubic.on_success(k + 1.0) == pytest.approx(PLATEAU * 100.0 + SCALE)
    later = cubic.on_success(k + 5.0)
    assert later is not None
    assert later > 100.0


def test_cubic_second_throttle_cuts_from_the_current_cap() -> None:
    """A throttle while capped cuts from the lower of the cap and the measured rate."""
    cubic = CubicRate()
    cubic.on_throttle(0.0, measured=100.0)  # cap 70
    cubic.on_throttle(1.0, measured=500.0)  # a burst measured high: the cap (70) is the base
    assert cubic.rate == pytest.approx(BETA * BETA * 100.0)
    cubic.on_throttle(2.0, measured=10.0)  # sending slower than the cap: the measure is the base
    assert cubic.rate == pytest.approx(BETA * 10.0)


@pytest.mark.parametrize("measured", [0.0, 0.1, MIN_RATE])
def test_cubic_never_goes_below_min_rate(measured: float) -> None:
    """However low the measured rate and however many throttles, the cap stays >= MIN_RATE."""
    cubic = CubicRate()
    for n in range(10):
        cubic.on_throttle(float(n), measured=measured)
        assert cubic.rate is not None
        assert cubic.rate >= MIN_RATE
        rate = cubic.on_success(n + 0.01)
        assert rate is not None
        assert rate >= MIN_RATE


# --- SendRateMeter ----------------------------------------------------------------------------


def test_meter_rate_since_the_first_send_when_younger_than_a_second() -> None:
    """50 sends over half a second read as 100/s, not 50/s."""
    meter = SendRateMeter()
    for i in range(50):
        meter.record(i / 100)
    assert meter.count(0.5) == 50
    assert meter.rate(0.5) == pytest.approx(100.0)


def test_meter_steady_rate_over_the_last_second() -> None:
    """A steady 200/s for three seconds reads as about 200/s."""
    meter = SendRateMeter()
    for i in range(600):
        meter.record(i / 200)
    assert meter.rate(3.0) == pytest.approx(200.0, rel=0.1)


def test_meter_forgets_sends_older_than_a_second() -> None:
    """After a gap only sends of the last second count; after a long idle spell, none."""
    meter = SendRateMeter()
    for i in range(50):
        meter.record(i / 100)  # 0.00 .. 0.49
    meter.record(1.25)
    # The last second is (0.25, 1.25]: about 25 of the early sends plus the new one, not 51.
    assert 25 <= meter.count(1.25) <= 31
    assert meter.count(5.0) == 0
    assert meter.rate(5.0) == 0.0
    meter.record(5.0)
    assert meter.count(5.0) == 1


# --- RetryBudget -------------------------------------------------------------------------------


def _make(code: int) -> dnx.APIStatusError:
    """The typed error for an answer with status ``code``."""
    return make_status_error(code, "x")


@pytest.mark.parametrize(
    ("error", "cost"),
    [
        (_make(503), RETRY_COST),
        (_make(500), RETRY_COST),
        (_make(408), RETRY_COST),
        (dnx.APIConnectionError("reset"), RETRY_COST),
        (dnx.APITimeoutError("slow"), TIMEOUT_RETRY_COST),
        (_make(429), 0.0),
    ],
)
def test_budget_costs(error: dnx.DialNexaError, cost: float) -> None:
    """Each kind of failure takes its documented cost; a 429 takes nothing."""
    budget = RetryBudget()
    assert budget.tokens == CAPACITY
    assert budget.withdraw(error) is True
    assert budget.tokens == CAPACITY - cost
    assert budget.denied == 0


def test_budget_refills_on_success_up_to_capacity() -> None:
    """A success puts SUCCESS_REFILL back, and the bucket never holds more than its capacity."""
    budget = RetryBudget(capacity=20.0)
    budget.withdraw(_make(503))
    budget.withdraw(_make(503))
    assert budget.tokens == 10.0
    budget.deposit()
    assert budget.tokens == 10.0 + SUCCESS_REFILL
    for _ in range(100):
        budget.deposit()
    assert budget.tokens == 20.0


def test_budget_denies_when_empty_and_counts_denials() -> None:
    """Once the tokens cannot pay a retry it is refused, tokens are untouched, denials counted."""
    budget = RetryBudget(capacity=12.0)
    assert budget.withdraw(_make(503))  # 7 left
    assert budget.withdraw(_make(503))  # 2 left
    assert not budget.withdraw(_make(503))
    assert not budget.withdraw(dnx.APITimeoutError("slow"))
    assert budget.tokens == 2.0
    assert budget.denied == 2
    assert budget.withdraw(_make(429))  # rate limits are never refused
    assert budget.denied == 2


def test_budget_of_an_empty_bucket_still_lets_429s_retry() -> None:
    """A drained bucket refuses a 5xx retry but not a 429 retry, any number of times."""
    budget = RetryBudget(capacity=0.0)
    assert not budget.withdraw(_make(502))
    assert all(budget.withdraw(_make(429)) for _ in range(1000))
    assert budget.denied == 1


# --- RetryPolicy and the budget ------------------------------------------------------------------


async def _attempts(policy: RetryPolicy, error: dnx.DialNexaError) -> int:
    """How many attempts the policy makes at a call that always fails with ``error``."""
    calls = 0

    async def no_sleep(_: float) -> None:
        return None

    async def call() -> None:
        nonlocal calls
        async for attempt in policy.new_retrying(no_sleep, before_sleep=lambda _: None):
            with attempt:
                calls += 1
                raise error

    with pytest.raises(type(error)):
        await call()
    return calls


@pytest.mark.parametrize(
    ("capacity", "max_retries", "status", "attempts", "tokens_left", "denied"),
    [
        # Budget for two retries (10 / 5), ten allowed: the budget stops it after 3 attempts.
        (10.0, 10, 503, 3, 0.0, 1),
        # Budget for 100 retries, three allowed: max_retries stops it, no denial.
        (500.0, 3, 503, 4, 485.0, 0),
        # An empty budget: no retry at all.
        (0.0, 10, 503, 1, 0.0, 1),
        # 429s ignore the budget, even an empty one: max_retries stops it.
        (0.0, 5, 429, 6, 0.0, 0),
    ],
)
async def test_policy_stops_on_an_empty_budget(
    capacity: float,
    max_retries: int,
    status: int,
    attempts: int,
    tokens_left: float,
    denied: int,
) -> None:
    """The retry loop ends when the budget cannot pay a retry, but never for a 429."""
    budget = RetryBudget(capacity=capacity)
    policy = RetryPolicy(max_retries=max_retries, budget=budget, rand=lambda: 0.0)
    assert await _attempts(policy, _make(status)) == attempts
    assert budget.tokens == tokens_left
    assert budget.denied == denied


async def test_policy_budget_is_shared_across_calls() -> None:
    """Calls of one policy draw from one bucket: the second call finds it drained."""
    budget = RetryBudget(capacity=3 * RETRY_COST)
    policy = RetryPolicy(max_retries=10, budget=budget, rand=lambda: 0.0)
    assert await _attempts(policy, _make(503)) == 4
    assert await _attempts(policy, _make(503)) == 1
    assert math.isclose(budget.tokens, 0.0)
