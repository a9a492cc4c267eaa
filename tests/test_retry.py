"""The retry policy: its waits, what it withholds and says so, and the bounds a call keeps.

The decisions are tested with plain calls on ``RetryPolicy``; what a user sees of them (a
worker loop during an outage, a server answering ``Retry-After: 0`` or bare 429s forever) on
a hostile loopback server, counting requests and their times where they arrive.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

import dialnexa_async as dnx
from dialnexa_async._errors import make_status_error
from dialnexa_async._rate_control import MIN_SERVER_WAIT
from dialnexa_async._retry import RetryPolicy
from dialnexa_async._retry_budget import RetryBudget
from tests.hostile import Exchange, Guard, Step, guarding, reply, reset, status

PATH = "/v1/campaigns-leads/lead_abc123"


@pytest.fixture
async def guard(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Guard]:
    """Check the invariants of every case once it ends."""
    async with guarding(caplog) as checker:
        yield checker


def rate_limited(retry_after: float | None) -> dnx.RateLimitError:
    error = make_status_error(429, "slow down", retry_after=retry_after)
    assert isinstance(error, dnx.RateLimitError)
    return error


# --- waits --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "wait"),
    [
        (rate_limited(0.0), MIN_SERVER_WAIT),
        (rate_limited(MIN_SERVER_WAIT / 10), MIN_SERVER_WAIT),
        (rate_limited(2.5), 2.5),
        (make_status_error(503, "down", retry_after=0.0), MIN_SERVER_WAIT),
        (make_status_error(503, "down", retry_after=4.0), 4.0),
        (rate_limited(None), 0.3),  # no word from the server: the client-wide pause
        (dnx.APIConnectionError("reset"), 0.25),  # full jitter: half of 0.5 s
    ],
    ids=["429-0", "429-tiny", "429-2.5", "503-0", "503-4", "429-bare", "connection"],
)
def test_a_server_wait_of_zero_still_waits_the_minimum(
    error: dnx.DialNexaError, wait: float
) -> None:
    """A wait the server gave (Retry-After, or a 429's reset) is slept, but never less than
    MIN_SERVER_WAIT; a bare 429 waits the client-wide pause, other faults their backoff."""
    policy = RetryPolicy(rand=lambda: 0.5, shared_pause=lambda: 0.3)
    assert policy.delay(error, 1) == pytest.approx(wait)


def _reset_only(seconds: float) -> dnx.APIStatusError:
    """A 429 whose wait is its quota's reset: no Retry-After was sent."""
    error = make_status_error(429, "slow down", retry_after=seconds)
    error._retry_after_is_reset = True
    return error


@pytest.mark.parametrize(
    ("error", "overstate", "wait"),
    [
        (_reset_only(2.0), False, 2.0),  # resets that held: the reset is the wait
        (_reset_only(2.0), True, 0.3),  # resets proved loose: the client-wide backoff
        (_reset_only(0.1), True, 0.1),  # ...never past the reset
        (rate_limited(2.0), True, 2.0),  # a Retry-After is always honoured
    ],
    ids=["reset-trusted", "reset-loose", "reset-bounds", "retry-after"],
)
def test_a_reset_that_proved_loose_bounds_the_wait_instead_of_being_it(
    error: dnx.APIStatusError, overstate: bool, wait: float
) -> None:
    """A 429 that gave only its quota's reset, from a server seen admitting well before its
    resets, backs off like a 429 with no hint; a Retry-After stays the server's word."""
    policy = RetryPolicy(
        rand=lambda: 0.5, shared_pause=lambda: 0.3, resets_overstate=lambda: overstate
    )
    assert policy.delay(error, 1) == pytest.approx(wait)


# --- what is withheld, and said -----------------------------------------------------------------


def test_a_retry_the_spent_budget_refuses_says_so_and_still_waits() -> None:
    """With the bucket empty, a retryable failure is not retried: the reason names the retry
    budget, and the call is to wait the backoff it would have waited before raising it."""
    policy = RetryPolicy(max_retries=3, budget=RetryBudget(capacity=0.0), rand=lambda: 0.5)
    error = dnx.APIConnectionError("connection failed", attempts=1)
    assert policy.budget.withdraw(error) is False  # what tenacity's stop hook found
    reason, wait = policy.withheld(error)
    assert reason is not None
    assert "retry budget is spent" in reason
    assert wait == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (rate_limited(120.0), "the server asked to wait 120s, longer than max_retry_wait=60s"),
        (make_status_error(503, "down", retry_after=3600.0), "asked to wait 3600s"),
        (dnx.APIConnectionError("reset", attempts=4), None),  # retries used up: nothing withheld
        (make_status_error(404, "Lead not found", attempts=1), None),  # never retried anyway
        (dnx.RateLimitError("withheld", status_code=429, refused_by_client=True), None),
    ],
    ids=["long-429", "long-503", "used-up", "final", "already-said"],
)
def test_what_was_withheld_is_named(error: dnx.DialNexaError, said: str | None) -> None:
    """A server wait past max_retry_wait is named with both numbers; a failure whose retries
    ran out, one never retried, and a request the client already said it withheld are not."""
    reason, wait = RetryPolicy(max_retries=3).withheld(error)
    if said is None:
        assert reason is None
    else:
        assert reason is not None
        assert said in reason
    assert wait == 0.0


async def test_a_long_retry_after_is_not_retried_and_the_error_says_why(guard: Guard) -> None:
    """A 429 asking for 120 s with max_retry_wait=60 ends after one request, and its message
    says it was not retried and why."""
    async with (
        guard.server(status(429, retry_after="120")) as server,
        guard.client(server, max_retries=3) as client,
    ):
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.RateLimitError)
    assert error.attempts == 1
    assert "not retried: the server asked to wait 120s, longer than max_retry_wait=60s" in str(
        error
    )
    assert server.total == 1


async def test_during_an_outage_a_spent_budget_slows_a_worker_loop(guard: Guard) -> None:
    """A worker calling get_lead in a loop against a server that resets every request, with
    the retry budget spent: each call sends one request, says its retry was withheld for the
    budget, and waits its backoff first, so the loop does not hammer (it sent ~250 requests a
    second before)."""
    async with guard.server(reset()) as server:
        client = guard.client(server, max_retries=3, clock=dnx.SystemClock())
        async with client:
            client._policy.budget.tokens = 0.0  # an outage long enough to have spent it
            errors = []
            started = time.monotonic()
            while time.monotonic() - started < 1.0:
                errors.append(
                    await guard.fails(client.get_lead("lead_abc123"), dnx.APIConnectionError)
                )
        guard.calls_per_path = len(errors)
    assert 1 <= len(errors) <= 20
    assert server.total == len(errors)
    for error in errors:
        assert error.attempts == 1
        assert "not retried: the client's retry budget is spent" in str(error)


def arrivals(step: Step, times: dict[str, list[float]]) -> Step:
    """``step``, noting when each request arrived, per path."""

    async def noted(ex: Exchange) -> None:
        times[ex.target].append(time.monotonic())
        await step(ex)

    return noted


async def test_retry_after_zero_forever_still_spaces_each_calls_attempts(guard: Guard) -> None:
    """A server answering every request with 429 and Retry-After: 0: each of 10 concurrent
    calls ends after max_retries + 1 attempts, and no two of a call's requests arrive less
    than MIN_SERVER_WAIT apart."""
    times: dict[str, list[float]] = defaultdict(list)
    async with guard.server(arrivals(status(429, retry_after="0"), times)) as server:
        client = guard.client(server, max_retries=3, clock=dnx.SystemClock())
        async with client:
            results = await client.get_leads([f"lead_{i}" for i in range(10)])
    assert all(isinstance(r.error, dnx.RateLimitError) for r in results)
    assert all(r.error is not None and r.error.attempts == 4 for r in results)
    assert server.total == 40
    gaps = [later - earlier for ts in times.values() for earlier, later in itertools.pairwise(ts)]
    assert len(gaps) == 30
    assert min(gaps) >= MIN_SERVER_WAIT * 0.9  # timer granularity


async def test_bare_429s_forever_end_each_call_within_its_bound(guard: Guard) -> None:
    """After some admissions, a server answers bare 429s (no hint at all) forever. Each of 40
    calls still ends, within the documented bound: a retry waits at most max_retry_wait for
    the client's holds, then fails as withheld, saying so (it waited past 400 s before)."""
    max_retry_wait = 0.5
    async with guard.server(*[reply()] * 10, status(429)) as server:
        client = guard.client(
            server, max_retries=3, max_retry_wait=max_retry_wait, clock=dnx.SystemClock()
        )
        async with client:
            started = time.monotonic()
            ids = [f"lead_{i}" for i in range(40)]
            results = await asyncio.wait_for(client.get_leads(ids), timeout=20)
            elapsed = time.monotonic() - started
    # Between two attempts: the server's word or the pause (none here), then the client's
    # holds for at most max_retry_wait.
    assert elapsed < 3 * (2 * max_retry_wait) + 1.0
    failed = [r.error for r in results if r.error is not None]
    assert len(failed) == 40 - 10
    assert all(isinstance(error, dnx.RateLimitError) for error in failed)
    withheld = [e for e in failed if isinstance(e, dnx.RateLimitError) and e.refused_by_client]
    assert withheld
    for error in withheld:
        assert str(error).startswith("the client withheld the request")
        assert f"max_retry_wait={max_retry_wait:g}s" in str(error)
        assert 1 <= error.attempts <= 3
