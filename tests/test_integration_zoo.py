"""One loopback run per limiter family: the real client and the real simulator on a socket.

The short CI version of benchmark scenario ``z``: four seconds of a 200 req/s limit per
family (the concurrency limit: 16 in flight at 20 ms), every id must come back, and goodput
must clear a floor well under the benchmark's figures (this machine is shared and noisy;
``python -m benchmarks --scenarios z`` measures the real thing over 20 s per row).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import dialnexa_async as dnx
from dialnexa_async.testing import Simulator

pytestmark = pytest.mark.integration

SECONDS = 4.0
"""Seconds of the limit each run fetches: the short version of the benchmark's 20."""

BARE: dict[str, Any] = {"rate_limit_headers": False, "retry_after": False}
RETRY_AFTER: dict[str, Any] = {"rate_limit_headers": False, "retry_after": True}


@pytest.mark.parametrize(
    ("options", "rate", "allowance", "floor"),
    [
        pytest.param({"limiter": "fixed-window", **BARE}, 200.0, 200, 0.6, id="fixed-bare"),
        pytest.param(
            {"limiter": "sliding-log", "rate_limit_dialect": "draft7"},
            200.0,
            200,
            0.6,
            id="sliding-log-draft7",
        ),
        pytest.param(
            {"limiter": "sliding-counter", "rate_limit_dialect": "x-ratelimit-epoch"},
            200.0,
            200,
            0.5,
            id="sliding-counter-epoch",
        ),
        pytest.param(
            {"limiter": "token-bucket", "burst": 20, **BARE}, 200.0, 20, 0.6, id="bucket-bare"
        ),
        pytest.param(
            {"limiter": "leaky-bucket", "burst": 50, **RETRY_AFTER},
            200.0,
            0,
            0.6,
            id="leaky-retry-after",
        ),
        pytest.param(
            {"limiter": "concurrency", "latency": 0.02, **RETRY_AFTER},
            800.0,
            0,
            0.5,
            id="concurrency-retry-after",
        ),
        pytest.param(
            {"limiter": "block", "block_period": 2.0, "rate_limit_dialect": "draft8"},
            200.0,
            200,
            0.2,
            id="block-draft8",
        ),
    ],
)
async def test_every_id_comes_back_behind_each_limiter_family(
    options: dict[str, Any], rate: float, allowance: int, floor: float
) -> None:
    """Every id comes back exactly once, at goodput over the family's floor."""
    limit = 16 if options["limiter"] == "concurrency" else 200
    n = allowance + round(rate * SECONDS)
    ids = [f"lead_{i:06d}" for i in range(n)]
    async with (
        Simulator(rate_limit=limit, track_ids=False, **options) as sim,
        dnx.AsyncDialNexa(api_key="sk_test", base_url=sim.base_url, max_retries=10) as client,
    ):
        start = time.monotonic()
        results = await client.get_leads(ids)
        elapsed = time.monotonic() - start
    assert [r.lead_id for r in results] == ids
    assert all(r.ok and r.lead is not None and r.lead.id == r.lead_id for r in results)
    goodput = (n - allowance) / (elapsed * rate)
    assert goodput >= floor, f"goodput {goodput:.1%}, 429s {client.stats.rate_limited}"
