"""A client's lifetime: closing while calls are in flight, and use from a second event loop.

Closing is tested on real loopback sockets (the simulator, or a hostile server that keeps a
request open), with the ``guard`` checking that nothing is left open or pending; the orders
of close, cancel and loop exit also run in a ``python -X dev -W error::ResourceWarning``
subprocess, where aiohttp's own ``Unclosed client session`` would show.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import dialnexa_async as dnx
from dialnexa_async._lifecycle import CLOSED, OTHER_LOOP
from dialnexa_async.testing import Simulator
from tests.hostile import Guard, closed_port, guarding, head, reply, silence, status, until

pytestmark = pytest.mark.integration

KEY = "sk_test"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def guard(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Guard]:
    """Check that nothing is left open, pending or warned about once the test ends."""
    async with guarding(caplog) as checker:
        yield checker


def closed_or_ok(result: dnx.LeadResult) -> bool:
    """Whether a bulk result is a lead or the closed client's error, and nothing else."""
    if result.ok:
        return True
    return type(result.error) is dnx.DialNexaError and str(result.error) == CLOSED


async def test_close_during_a_bulk_run_ends_every_id_and_reopens_nothing() -> None:
    """Closing in the middle of get_leads: every id still gets exactly one result (a lead, or
    "the client is closed" for the requests torn down and those never sent), the run ends at
    once although some calls were waiting out a retry backoff, and the server sees no request
    after the close."""
    async with Simulator(latency=0.02, error_rate=0.3, error_statuses=(503,), seed=3) as sim:
        client = dnx.AsyncDialNexa(api_key=KEY, base_url=sim.base_url, max_concurrency=16)
        ids = [f"lead_{i}" for i in range(400)]
        run = asyncio.ensure_future(client.get_leads(ids))
        await until(lambda: client.stats.retries >= 5 and client.stats.requests >= 60, 10.0)
        await client.close()
        closed_at = time.monotonic()
        requests_at_close = sim.stats.requests
        results = await run
        ended_in = time.monotonic() - closed_at
        await asyncio.sleep(0.3)  # time for a reopened pool to show itself
        assert [r.lead_id for r in results] == ids
        assert all(closed_or_ok(r) for r in results)
        closed = [r.error for r in results if not r.ok]
        assert 0 < sum(r.ok for r in results) < len(ids)
        assert any(e is not None and e.attempts >= 1 for e in closed)  # torn down in flight
        assert ended_in < 2.0  # not held by backoffs of up to 8 s (slack for a busy machine)
        assert sim.stats.requests == requests_at_close
        assert client.closed
        assert client._transport._session is None


async def test_a_call_in_flight_ends_with_the_closed_error(guard: Guard) -> None:
    """A request whose body is still coming when the client closes fails at once (not at its
    30 s deadline) with "the client is closed" after that one request: no retry opens a new
    connection."""
    async with guard.server(silence(head(200, {"Content-Length": "10"}))) as server:
        client = guard.client(server, timeout=30)
        call = asyncio.ensure_future(client.get_lead("lead_1"))
        await until(lambda: server.total == 1)
        await asyncio.sleep(0.05)  # the head has arrived: the body is being read
        started = time.monotonic()
        await client.close()
        error = await guard.fails(call, dnx.DialNexaError)
        assert time.monotonic() - started < 5.0  # far from the 30 s deadline
        assert str(error) == CLOSED
        assert error.attempts == 1
        await until(lambda: server.open_connections == 0)
    assert server.total == server.connections == 1


async def test_close_wakes_a_call_waiting_out_a_server_pause(guard: Guard) -> None:
    """A call sleeping through a 503's Retry-After of 30 s ends as soon as the client closes,
    with the closed error and the one attempt it made."""
    async with guard.server(status(503, retry_after="30")) as server:
        client = guard.client(server, clock=dnx.SystemClock())
        call = asyncio.ensure_future(client.get_lead("lead_1"))
        await until(lambda: server.total == 1)
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await client.close()
        error = await guard.fails(call, dnx.DialNexaError)
        assert time.monotonic() - started < 5.0  # far from the 30 s wait
        assert str(error) == CLOSED
        assert error.attempts == 1
    assert server.total == 1


async def test_a_closed_client_refuses_every_entry_point(guard: Guard) -> None:
    """After close: get_lead, get_leads, iter_leads and async with raise the closed error, and
    nothing reaches the server; close stays harmless."""
    async with guard.server(reply()) as server:
        client = guard.client(server)
        assert (await client.get_lead("lead_1")).id == "lead_abc123"
        await client.close()
        await client.close()
        for call in (client.get_lead("lead_2"), client.get_leads(["lead_2"])):
            assert str(await guard.fails(call, dnx.DialNexaError)) == CLOSED
        with pytest.raises(dnx.DialNexaError, match=CLOSED):
            async for _ in client.iter_leads(["lead_2"]):
                pass
        with pytest.raises(dnx.DialNexaError, match=CLOSED):
            async with client:
                pass
    assert server.total == 1


_ORDERS = textwrap.dedent(
    """
    import asyncio, gc
    import dialnexa_async as dnx
    from dialnexa_async.testing import Simulator

    IDS = [f"lead_{i}" for i in range(300)]

    def client(sim):
        return dnx.AsyncDialNexa(api_key="sk_test", base_url=sim.base_url, max_concurrency=8)

    async def started(sim, n=20):
        while sim.stats.requests < n:
            await asyncio.sleep(0.005)

    async def close_then_await():
        async with Simulator(latency=0.02, error_rate=0.3, seed=1) as sim:
            c = client(sim)
            run = asyncio.ensure_future(c.get_leads(IDS))
            await started(sim)
            await c.close()
            results = await run
            assert len(results) == len(IDS), len(results)
            print("close-then-await", sum(r.ok for r in results) < len(IDS))

    async def cancel_then_close():
        async with Simulator(latency=0.02, seed=2) as sim:
            c = client(sim)
            calls = [asyncio.ensure_future(c.get_lead(f"lead_{i}")) for i in range(40)]
            await started(sim, 8)
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
            await c.close()
            print("cancel-then-close", all(call.cancelled() for call in calls))

    async def exit_with_calls_running():
        async with Simulator(latency=0.02, seed=3) as sim:
            async with client(sim) as c:
                run = asyncio.ensure_future(c.get_leads(IDS))
                await started(sim)
            results = await run
            print("exit-with-calls-running", len(results) == len(IDS))

    async def close_and_leave_calls_to_the_loop():
        sim = Simulator(latency=0.02, seed=4)
        await sim.start()
        c = client(sim)
        asyncio.ensure_future(c.get_leads(IDS))
        stream = c.iter_leads(IDS)
        asyncio.ensure_future(stream.__anext__())
        await started(sim)
        await c.close()
        await sim.stop()
        print("close-and-leave", True)  # asyncio.run cancels what is still pending

    for order in (close_then_await, cancel_then_close, exit_with_calls_running,
                  close_and_leave_calls_to_the_loop):
        asyncio.run(order())
        gc.collect()
    print("done")
    """
)


def test_no_resource_warning_in_any_order_of_close_cancel_and_exit() -> None:
    """Under ``python -X dev -W error::ResourceWarning``: closing during a bulk run, cancelling
    calls then closing, leaving ``async with`` while a run goes on, and closing then leaving
    calls to ``asyncio.run``'s cleanup all finish without an unclosed session, connector,
    transport or socket."""
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", _ORDERS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "close-then-await",
        "True",
        "cancel-then-close",
        "True",
        "exit-with-calls-running",
        "True",
        "close-and-leave",
        "True",
        "done",
    ], done.stdout
    for sign in ("ResourceWarning", "Unclosed", "unclosed", "Traceback", "Task was destroyed"):
        assert sign not in done.stderr, done.stderr


# --- a second event loop ----------------------------------------------------------------------


def test_a_client_from_a_finished_loop_says_to_make_one_per_loop() -> None:
    """A client created outside any loop and used under one ``asyncio.run`` stays bound to
    that loop: under a second ``asyncio.run``, get_lead, get_leads and iter_leads raise a
    DialNexaError saying to create one client per loop, never aiohttp's raw "Event loop is
    closed", and close() there is still harmless."""
    port = closed_port()
    client = dnx.AsyncDialNexa(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1")

    async def first() -> None:
        async with Simulator(port=port):
            assert (await client.get_lead("lead_1")).id == "lead_1"

    async def second() -> list[BaseException]:
        errors: list[BaseException] = []
        for call in (client.get_lead("lead_2"), client.get_leads(["lead_2", "lead_3"])):
            try:
                await call
            except BaseException as error:
                errors.append(error)
        try:
            async for _ in client.iter_leads(["lead_2"]):
                pass
        except BaseException as error:
            errors.append(error)
        await client.close()
        await client.close()
        return errors

    asyncio.run(first())
    errors = asyncio.run(second())
    assert len(errors) == 3
    for error in errors:
        assert type(error) is dnx.DialNexaError, repr(error)
        assert str(error) == OTHER_LOOP
        assert "one AsyncDialNexa per event loop" in str(error)
    assert client.closed


async def test_closing_from_another_running_loop_is_refused() -> None:
    """close() from a loop other than the client's own, while that one still runs (another
    thread), raises instead of closing aiohttp's pool across threads; the client stays open
    for its own loop."""
    client = dnx.AsyncDialNexa(api_key=KEY, base_url="http://127.0.0.1:9/v1")
    await client.get_leads([])  # binds the client to this loop without any request

    def elsewhere() -> BaseException | None:
        try:
            asyncio.run(client.close())
        except BaseException as error:
            return error
        return None

    error = await asyncio.to_thread(elsewhere)
    assert type(error) is dnx.DialNexaError
    assert str(error) == OTHER_LOOP
    assert not client.closed
    await client.close()
    assert client.closed
