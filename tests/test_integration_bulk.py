"""Bulk runs at scale: 20,000 ids through a faulty, rate-limited simulator, and flat memory.

The three loopback scenarios are the issue's acceptance runs (about 50 s each: 20,000 ids at a
500 req/s limit take 40 s at best). Their goodput and 429 share are printed (``pytest -s``)
and written to the test report as properties.
"""

from __future__ import annotations

import gc
import json
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

import dialnexa_async as dnx
from dialnexa_async._transport import RawResponse
from dialnexa_async.testing import Simulator, lead_payload

pytestmark = pytest.mark.integration

KEY = "sk_test"
IDS = 20_000
UNKNOWN_EVERY = 20  # 5% of the ids do not exist
LIMIT = 500  # requests admitted per 1 s window

RecordProperty = Callable[[str, object], None]


@pytest.fixture
def record_property(request: pytest.FixtureRequest) -> RecordProperty:
    """pytest's ``record_property``, minus its warning under ``--junitxml`` with xunit2.

    That warning is an error in this suite; the properties still reach the report hooks.
    """

    def record(name: str, value: object) -> None:
        request.node.user_properties.append((name, value))

    return record


class BelowFloor(AssertionError):
    """Goodput under its floor, told apart from a wrong result."""


def scenario_ids() -> list[str]:
    """20,000 ids, every twentieth of them unknown to the simulator."""
    return [f"missing_{n}" if n % UNKNOWN_EVERY == 0 else f"lead_{n}" for n in range(1, IDS + 1)]


@pytest.mark.parametrize(
    ("server", "min_goodput", "max_429_share"),
    [
        pytest.param(
            {},
            0.85,
            0.02,
            id="headers-and-retry-after",
        ),
        pytest.param(
            {"rate_limit_headers": False, "retry_after": True}, 0.70, 0.05, id="retry-after-only"
        ),
        pytest.param(
            # The client infers the window from bare 429s; with 10% 503s and 2% resets in the
            # mix, its probes and budget growth cost more 429s than headers do (the issue's
            # bound for bare 429s is 5%).
            {"rate_limit_headers": False, "retry_after": False, "rate_limit_body": "html"},
            0.85,
            0.05,
            id="bare-429-html",
        ),
    ],
)
async def test_20000_ids_through_faults_and_a_500_per_second_window(
    server: Mapping[str, Any],
    min_goodput: float,
    max_429_share: float,
    record_property: RecordProperty,
) -> None:
    """Every known id is fetched and every unknown one is NotFoundError, near the server's limit.

    10% 503s, 2% connection resets and a 500 req/s window; goodput is the share of the limit
    spent on requests the server admitted, the 429 share the part of all requests it refused.
    """
    ids = scenario_ids()
    async with (
        Simulator(
            rate_limit=LIMIT,
            rate_window=1.0,
            error_rate=0.10,
            error_statuses=(503,),
            reset_rate=0.02,
            seed=2024,
            **server,
        ) as sim,
        dnx.AsyncDialNexa(api_key=KEY, base_url=sim.base_url, max_retries=10) as client,
    ):
        started = time.perf_counter()
        results = await client.get_leads(ids)
        elapsed = time.perf_counter() - started

        requests = sim.stats.requests
        throttled = sim.stats.by_status[429]
        goodput = (requests - throttled) / (elapsed * LIMIT)
        share = throttled / requests
        for name, value in [
            ("goodput", round(goodput, 4)),
            ("share_429", round(share, 4)),
            ("elapsed_s", round(elapsed, 1)),
            ("requests", requests),
            ("responses_429", throttled),
            ("client_stats", repr(client.stats)),
        ]:
            record_property(name, value)
        print(
            f"\n[bulk {'/'.join(f'{k}={v}' for k, v in server.items()) or 'headers'}] "
            f"goodput {goodput:.1%} of {LIMIT}/s, 429s {share:.2%} of {requests} requests, "
            f"{elapsed:.1f}s; {client.stats}"
        )

        assert len(results) == IDS
        assert [r.lead_id for r in results] == ids
        wrong = [
            r
            for r in results
            if (r.lead_id.startswith("missing_") and not isinstance(r.error, dnx.NotFoundError))
            or (r.lead_id.startswith("lead_") and not r.ok)
        ]
        assert wrong == [], wrong[:5]
        assert sum(r.ok for r in results) == IDS - IDS // UNKNOWN_EVERY
        assert share <= max_429_share
        if goodput < min_goodput:
            raise BelowFloor(f"goodput {goodput:.1%} is under the floor of {min_goodput:.0%}")


# --- memory -----------------------------------------------------------------------------------

_STUB_HEADERS = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
_STUB_BODY = json.dumps(lead_payload("lead_abc123")).encode()


def _generated(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"lead_{i}"


async def _drain(client: dnx.AsyncDialNexa, n: int) -> int:
    """Run iter_leads over ``n`` generated ids, keeping nothing; return how many were ok."""
    ok = 0
    async for result in client.iter_leads(_generated(n)):
        ok += result.ok
    return ok


async def test_iter_leads_memory_stays_flat_from_100k_to_1m_ids(
    record_property: RecordProperty,
) -> None:
    """Peak traced memory of iter_leads over 1,000,000 ids is about that over 100,000.

    The endpoint is a canned answer at the transport seam: ``client._transport.get`` returns a
    fixed ``RawResponse`` with a small lead, so the whole bulk engine and client pipeline
    (id check, URL, rate control, limiter, retry policy, decoding, result queue) runs without
    sockets. Measured on this 2-core machine, a minimal ``aiohttp.web`` app on loopback serves
    about 4,000 req/s untraced (over 4 min for 1M, several times that under tracemalloc), while
    the stub runs about 7,500 ids/s under tracemalloc, so 1M takes about 2 minutes.
    """

    async def canned(url: str) -> RawResponse:
        return RawResponse(200, _STUB_HEADERS, _STUB_BODY)

    async with dnx.AsyncDialNexa(api_key=KEY, base_url="http://127.0.0.1:9/v1") as client:
        client._transport.get = canned  # type: ignore[method-assign]
        assert await _drain(client, 2_000) == 2_000  # warm every lazily built cache first

        peaks: dict[int, int] = {}
        tracemalloc.start()
        try:
            for n in (100_000, 1_000_000):
                gc.collect()
                tracemalloc.reset_peak()
                started = time.perf_counter()
                assert await _drain(client, n) == n
                peaks[n] = tracemalloc.get_traced_memory()[1]
                record_property(f"peak_bytes_{n}", peaks[n])
                print(
                    f"\n[memory] iter_leads over {n:,} ids: peak traced "
                    f"{peaks[n] / 1e6:.2f} MB, {time.perf_counter() - started:.0f}s"
                )
        finally:
            tracemalloc.stop()
        assert client.stats.requests == 2_000 + 100_000 + 1_000_000

    assert peaks[1_000_000] < 1.5 * peaks[100_000]
    assert peaks[1_000_000] < 20 * 1024 * 1024
