"""A seeded soak: 10,000 ids through every transient fault, with bulk calls cancelled at random.

The simulator injects 5xx envelopes, TCP resets, HTML 502 pages, slow bodies, latency jitter
and a rate limit; the client retries on a virtual clock that also drives the simulator's rate
window, so waits cost no real time. Bulk calls (``iter_leads`` or ``get_leads``) are cancelled
after random delays and the ids without an outcome are run again. Every id must end with
exactly one outcome, and since retries absorb every transient fault, the outcome counts are a
function of the ids alone: the same seed gives the same counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest

import dialnexa_async as dnx
from dialnexa_async.testing import Simulator
from tests.hostile import API_KEY, Guard, guarding

pytestmark = pytest.mark.integration

SEED = 20260731
IDS = 10_000
MISSING_SHARE = 0.1
MAX_RETRIES = 12
CANCELLATIONS = 4
RATE_LIMIT = 5  # requests per (virtual) second the simulator admits


@pytest.fixture
async def guard(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Guard]:
    """Check the invariants of the soak once it ends."""
    async with guarding(caplog) as checker:
        yield checker


def make_ids(rng: random.Random) -> list[str]:
    """Existing ids and ``missing_*`` ids (which the simulator answers 404), shuffled."""
    ids = [f"missing_{i}" if rng.random() < MISSING_SHARE else f"lead_{i:05d}" for i in range(IDS)]
    rng.shuffle(ids)
    return ids


async def one_round(
    client: dnx.AsyncDialNexa, ids: list[str], bulk: str, cancel_after: float | None
) -> tuple[dict[str, dnx.LeadResult], bool]:
    """Run one bulk call over ``ids``, cancelled after ``cancel_after`` s; the outcomes it gave
    and whether it was cut short."""
    outcomes: dict[str, dnx.LeadResult] = {}

    async def consume() -> None:
        if bulk == "get_leads":
            results = await client.get_leads(ids)
            assert [r.lead_id for r in results] == ids
            outcomes.update((r.lead_id, r) for r in results)
            return
        async with contextlib.aclosing(client.iter_leads(ids)) as stream:
            async for result in stream:
                assert result.lead_id not in outcomes, f"two outcomes for {result.lead_id}"
                outcomes[result.lead_id] = result

    task = asyncio.ensure_future(consume())
    done, _ = await asyncio.wait({task}, timeout=cancel_after)
    if not done:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return outcomes, not done


async def soak(guard: Guard, seed: int) -> tuple[Counter[str], int]:
    """Run every id to exactly one outcome; the outcome counts and the number of rounds."""
    rng = random.Random(seed)
    ids = make_ids(rng)
    clock = dnx.VirtualClock()
    async with (
        Simulator(
            api_key=API_KEY,
            seed=seed,
            clock=clock,
            track_ids=True,
            error_rate=0.06,
            reset_rate=0.02,
            html_rate=0.02,
            slow_body_rate=0.02,
            slow_body_delay=0.002,
            latency_jitter=0.001,
            rate_limit=RATE_LIMIT,
            rate_window=1.0,
            retry_after=0.5,
            fractional_reset=True,
        ) as sim,
        guard.client(
            sim.base_url,
            clock=clock,
            max_retries=MAX_RETRIES,
            max_concurrency=32,
            timeout=10.0,
        ) as client,
    ):
        outcomes: dict[str, dnx.LeadResult] = {}
        remaining = ids
        rounds = cancelled = 0
        while remaining:
            rounds += 1
            cancel_after = rng.uniform(0.05, 0.6) if rounds <= CANCELLATIONS else None
            bulk = rng.choice(["iter_leads", "iter_leads", "get_leads"])
            got, cut = await one_round(client, remaining, bulk, cancel_after)
            cancelled += cut
            assert not got.keys() & outcomes.keys(), "an id got a second outcome"
            outcomes.update(got)
            remaining = [i for i in remaining if i not in got]
        assert sim.stats.requests >= IDS
        worst = max(sim.stats.attempts_by_id.values())
        assert worst <= (MAX_RETRIES + 1) * (CANCELLATIONS + 1)
        assert sum(sim.stats.faults.values()) > 0
        assert sim.stats.rate_limited > 0
    assert outcomes.keys() == set(ids)
    kinds: Counter[str] = Counter()
    for lead_id, result in outcomes.items():
        if result.ok:
            assert result.lead is not None
            assert result.lead.id == lead_id
            kinds["ok"] += 1
        else:
            kinds[type(result.error).__name__] += 1
            guard.check_error(result.error)  # type: ignore[arg-type]
    assert cancelled == CANCELLATIONS
    return kinds, rounds


async def test_soak_every_id_has_one_outcome_and_counts_repeat(guard: Guard) -> None:
    """Through every transient fault and four random cancellations, 10,000 ids end with exactly
    one outcome each (a lead, or NotFoundError for a missing_ id), and a second run with the
    same seed gives the same counts."""
    expected_missing = sum(i.startswith("missing_") for i in make_ids(random.Random(SEED)))
    first, rounds = await soak(guard, SEED)
    assert rounds == CANCELLATIONS + 1
    assert first == {"ok": IDS - expected_missing, "NotFoundError": expected_missing}
    second, _ = await soak(guard, SEED)
    assert second == first
