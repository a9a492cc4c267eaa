"""The SDK against the local simulator on a real loopback socket (the plugin's fixtures)."""

from __future__ import annotations

import asyncio
import logging

import pytest

import dialnexa_async as dnx
from dialnexa_async.testing import Simulator, lead_payload

pytestmark = pytest.mark.integration

KEY = "sk_test"


async def test_get_lead_matches_what_the_server_sent(dialnexa_client: dnx.AsyncDialNexa) -> None:
    """Both response shapes arrive intact: to_dict() reproduces the server's payload fields."""
    shapes = set()
    for i in range(40):
        lead_id = f"lead_{i}"
        lead = await dialnexa_client.get_lead(lead_id)
        payload = lead_payload(lead_id)
        shapes.add("metadata" in payload)
        as_dict = lead.to_dict()
        for key, value in payload.items():
            assert as_dict[key] == value
    assert shapes == {True, False}


async def test_unknown_id_forbidden_key_and_bad_id() -> None:
    """404, 401, 403 and 400 from the simulator become their typed errors after one attempt."""
    async with Simulator(forbidden_keys=frozenset({"sk_blocked"})) as sim:
        async with dnx.AsyncDialNexa(api_key=KEY, base_url=sim.base_url) as c:
            with pytest.raises(dnx.NotFoundError, match="Lead not found") as not_found:
                await c.get_lead("missing_1")
            assert not_found.value.request_id
            with pytest.raises(dnx.BadRequestError) as bad:
                await c.get_lead("has space")
            assert bad.value.attempts == 1
        async with dnx.AsyncDialNexa(api_key="wrong", base_url=sim.base_url) as c:
            with pytest.raises(dnx.AuthenticationError):
                await c.get_lead("lead_1")
        async with dnx.AsyncDialNexa(api_key="sk_blocked", base_url=sim.base_url) as c:
            with pytest.raises(dnx.PermissionDeniedError):
                await c.get_lead("lead_1")
        assert sim.stats.requests == 4


async def test_a_base_url_without_the_version_is_told_from_missing_leads() -> None:
    """Pointed at the server's root (no /v1), the client warns at construction; the server's
    route 404 is a RouteNotFoundError after one attempt, and get_leads stops at it like at a
    401: the ids not yet sent get that same error without a request. With /v1, a missing lead
    is a plain NotFoundError."""
    async with Simulator() as sim:
        with pytest.warns(UserWarning, match="no API version segment"):
            client = dnx.AsyncDialNexa(api_key=KEY, base_url=sim.origin, max_concurrency=4)
        async with client:
            with pytest.raises(dnx.RouteNotFoundError, match="Cannot GET /campaigns-leads/l") as e:
                await client.get_lead("lead_1")
            assert e.value.attempts == 1
            assert isinstance(e.value, dnx.NotFoundError)
            sim.stats.reset()
            results = await client.get_leads([f"lead_{i}" for i in range(200)])
        errors = [r.error for r in results]
        assert all(type(error) is dnx.RouteNotFoundError for error in errors)
        assert 1 <= sim.stats.requests <= 4
        assert sum(error.attempts for error in errors if error is not None) == sim.stats.requests
        async with dnx.AsyncDialNexa(api_key=KEY, base_url=sim.base_url) as client:
            with pytest.raises(dnx.NotFoundError, match="Lead not found") as missing:
                await client.get_lead("missing_1")
            assert type(missing.value) is dnx.NotFoundError


async def test_slash_in_id_stays_one_segment(
    dialnexa_simulator: Simulator, dialnexa_client: dnx.AsyncDialNexa
) -> None:
    """An id with '/' reaches the server as one encoded segment, not a different path."""
    with pytest.raises(dnx.BadRequestError):
        await dialnexa_client.get_lead("../../v1/campaigns-leads/lead_1")
    assert dialnexa_simulator.stats.attempts_by_id["../../v1/campaigns-leads/lead_1"] == 1


async def test_2000_calls_through_faults_and_a_300_per_second_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """64 tasks fetch 2,000 leads through 10% 503s, 2% resets and a 300 req/s window: all succeed.

    The 429s the simulator sends stay a small share of all requests because the client paces
    itself from the x-ratelimit-* headers rather than each task discovering the limit alone.
    """
    caplog.set_level(logging.WARNING, logger="dialnexa_async")
    ids = [f"lead_{i}" for i in range(2000)]
    async with Simulator(
        rate_limit=300,
        rate_window=1.0,
        error_rate=0.10,
        error_statuses=(503,),
        reset_rate=0.02,
        seed=7,
    ) as sim:
        async with dnx.AsyncDialNexa(
            api_key=KEY, base_url=sim.base_url, max_retries=10, max_concurrency=64
        ) as client:
            queue: asyncio.Queue[str] = asyncio.Queue()
            for lead_id in ids:
                queue.put_nowait(lead_id)
            leads: dict[str, dnx.Lead] = {}

            async def worker() -> None:
                while not queue.empty():
                    lead_id = queue.get_nowait()
                    leads[lead_id] = await client.get_lead(lead_id)

            await asyncio.gather(*(worker() for _ in range(64)))
        stats = sim.stats
        assert sorted(leads) == sorted(ids)
        assert all(leads[i].id == i for i in ids)
        share_429 = stats.rate_limited / stats.requests
        print(
            f"\n2000 leads: {stats.requests} requests, {stats.rate_limited} 429s "
            f"({share_429:.1%}), {stats.resets} resets, client stats {client.stats}"
        )
        assert stats.by_status[503] > 100
        assert stats.resets > 10
        # Measured: 0 429s in about 2,300 requests; the window budget keeps the client under.
        assert share_429 <= 0.02
