"""The client-wide retry budget, alone and inside the retry policy."""

from __future__ import annotations

import math

import pytest

import dialnexa_async as dnx
from dialnexa_async._errors import make_status_error
from dialnexa_async._retry import RetryPolicy
from dialnexa_async._retry_budget import (
    CAPACITY,
    RETRY_COST,
    SUCCESS_REFILL,
    TIMEOUT_RETRY_COST,
    RetryBudget,
)

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
