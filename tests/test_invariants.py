"""The invariant guard catches what it claims to, and the bulk calls keep the same invariants.

The first half proves each check of ``tests.hostile.Guard`` fails when its invariant is
broken, so a green fault matrix means something. The second half holds the bulk calls to the
contract on a hostile server: one result per input, cancellation that leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

import dialnexa_async as dnx
from tests.hostile import API_KEY, Guard, by_path, guarding, reply, silence, until

pytestmark = pytest.mark.integration


@pytest.fixture
async def guard(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Guard]:
    """Check the invariants of every case once it ends."""
    async with guarding(caplog) as checker:
        yield checker


# --- the guard's own checks -----------------------------------------------------------------


async def test_guard_catches_a_client_never_closed(caplog: pytest.LogCaptureFixture) -> None:
    """A client left open fails the guard."""
    with pytest.raises(AssertionError, match="never closed"):
        async with guarding(caplog) as checker:
            client = checker.client("http://127.0.0.1:9/v1")
    await client.close()


async def test_guard_catches_a_connection_left_open(caplog: pytest.LogCaptureFixture) -> None:
    """A connection still open when the server stops fails the guard."""
    writers = []

    async def leave_one_open() -> None:
        async with guarding(caplog) as checker, checker.server(grace=0.05) as server:
            writers.append((await asyncio.open_connection("127.0.0.1", server.port))[1])
            await until(lambda: server.open_connections == 1)

    with pytest.raises(AssertionError, match="left open"):
        await leave_one_open()
    writers[0].close()
    with contextlib.suppress(ConnectionError):
        await writers[0].wait_closed()


async def test_guard_catches_a_pending_task(caplog: pytest.LogCaptureFixture) -> None:
    """A task still pending after the test fails the guard."""
    with pytest.raises(AssertionError, match="pending"):
        async with guarding(caplog):
            straggler = asyncio.ensure_future(asyncio.sleep(10))
    straggler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await straggler


async def test_guard_catches_the_key_in_a_log_record(caplog: pytest.LogCaptureFixture) -> None:
    """The API key in any DEBUG record of any logger fails the guard."""
    with pytest.raises(AssertionError, match="key in log record"):
        async with guarding(caplog):
            logging.getLogger("some.library").debug("sending %s", {"Authorization": API_KEY})


async def test_guard_catches_the_key_in_an_error(caplog: pytest.LogCaptureFixture) -> None:
    """The API key in an error's str, repr or traceback fails the guard."""
    async with guarding(caplog) as checker:
        with pytest.raises(AssertionError, match="leaked"):
            checker.check_error(RuntimeError(f"Bearer {API_KEY}"))


async def test_guard_catches_too_many_attempts(caplog: pytest.LogCaptureFixture) -> None:
    """A path tried more than max_retries + 1 times fails the guard."""

    async def fetch_twice() -> None:
        async with (
            guarding(caplog) as checker,
            checker.server(reply()) as server,
            checker.client(server, max_retries=0) as client,
        ):
            await client.get_lead("lead_1")
            await client.get_lead("lead_1")

    with pytest.raises(AssertionError, match="attempts at"):
        await fetch_twice()


async def test_guard_catches_a_resource_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A session garbage-collected unclosed (ResourceWarning, loop error) fails the guard."""

    async def drop_a_session() -> None:
        async with guarding(caplog):
            cycle: list[object] = [aiohttp.ClientSession()]
            cycle.append(cycle)  # only the guard's gc.collect() can free it
            del cycle

    with pytest.raises(AssertionError, match="Unclosed client session"):
        await drop_a_session()
    gc.collect()


async def test_a_crashing_step_is_not_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    """A bug in a scripted step surfaces when the server stops instead of passing silently."""

    async def crash(ex: object) -> None:
        raise RuntimeError("bug in a step")

    async def serve_a_crash() -> None:
        async with (
            guarding(caplog) as checker,
            checker.server(crash) as server,
            checker.client(server, max_retries=0) as client,
        ):
            with contextlib.suppress(dnx.APIConnectionError):
                await client.get_lead("lead_1")

    with pytest.raises(RuntimeError, match="bug in a step"):
        await serve_a_crash()


# --- bulk calls on a hostile server ---------------------------------------------------------


async def test_get_leads_gives_one_result_per_input_and_fetches_duplicates_once(
    guard: Guard,
) -> None:
    """get_leads answers every position in input order, a duplicate from a single request,
    and a bad id as its own error without a request."""
    ids = ["lead_a", "", "lead_b", "lead_a", "."]
    async with guard.server(reply()) as server, guard.client(server) as client:
        results = await client.get_leads(ids)
    assert [r.lead_id for r in results] == ids
    assert [r.ok for r in results] == [True, False, True, True, False]
    assert isinstance(results[1].error, ValueError)
    assert results[0] == results[3]
    assert server.requests == {
        "/v1/campaigns-leads/lead_a": 1,
        "/v1/campaigns-leads/lead_b": 1,
    }


async def test_an_unencodable_id_is_its_own_result_in_bulk(guard: Guard) -> None:
    """An id UTF-8 cannot encode is that id's InvalidLeadIdError; the other ids still succeed."""
    ids = ["lead_a", "bad_\ud800", "lead_b"]
    async with guard.server(reply()) as server, guard.client(server) as client:
        results = await client.get_leads(ids)
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, dnx.DialNexaError)
    assert isinstance(results[1].error, ValueError)
    assert server.total == 2


async def test_leaving_iter_leads_early_cancels_requests_in_flight(guard: Guard) -> None:
    """Breaking out of iter_leads while requests stall cancels them: their connections close
    at once, every stalled request was sent exactly once, and the client still works."""
    fast = {f"/campaigns-leads/lead_{i}": reply() for i in range(3)}
    async with (
        guard.server(by_path(fast, silence())) as server,
        guard.client(server, max_concurrency=8, timeout=30) as client,
    ):
        ids = [f"lead_{i}" for i in range(20)]
        seen = []
        async with contextlib.aclosing(client.iter_leads(ids)) as results:
            async for result in results:
                seen.append(result.lead_id)
                if len(seen) == 3:
                    break
        assert sorted(seen) == ["lead_0", "lead_1", "lead_2"]
        await until(lambda: server.active == 0)
        assert all(count == 1 for count in server.requests.values())
        stalled = server.total - 3
        assert 1 <= stalled <= 8
        assert (await client.get_lead("lead_0")).id == "lead_abc123"
