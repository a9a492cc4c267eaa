"""The service and worker examples, run as programs against the simulator on loopback.

Each runs under ``python -X dev -W error::ResourceWarning``, so a session, connector or
transport left open shows on its stderr; each must exit 0 with a clean stderr, whether it
stopped by itself or on a signal.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from dialnexa_async.testing import Simulator, lead_payload

pytestmark = pytest.mark.integration

KEY = "sk_examples_0123456789_never_print_me"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIGNALS = [signal.SIGTERM, signal.SIGINT]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator accepting ``KEY``, answering each request after 50 ms."""
    async with Simulator(api_key=KEY, latency=0.05) as simulator:
        yield simulator


async def start(example: str, *args: str, base_url: str) -> asyncio.subprocess.Process:
    """Run ``examples/<example>`` in dev mode, ResourceWarnings as errors, keyed to the sim."""
    env = {**os.environ, "DIALNEXA_API_KEY": KEY, "DIALNEXA_BASE_URL": base_url}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "dev",
        "-W",
        "error::ResourceWarning",
        str(EXAMPLES / example),
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process, out: str = "") -> tuple[str, str]:
    """Wait for a clean exit: status 0, nothing left open, no traceback, no key."""
    rest, err = await asyncio.wait_for(process.communicate(), timeout=30)
    out += rest.decode()
    text = err.decode()
    assert process.returncode == 0, text
    for sign in ("ResourceWarning", "Unclosed", "unclosed", "Traceback"):
        assert sign not in text, text
    assert KEY not in out + text
    return out, text


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def get_when_up(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    """GET ``url`` once the server listens (it is still starting); the status and body."""
    for _ in range(400):
        try:
            async with session.get(url) as response:
                return response.status, await response.text()
        except aiohttp.ClientConnectorError:
            await asyncio.sleep(0.025)
    raise AssertionError(f"nothing listened at {url} within 10 s")


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
async def test_service_serves_leads_and_stops_cleanly_on_a_signal(
    sim: Simulator, signum: int
) -> None:
    """The service answers a lead, a 404 for a missing one, then closes everything and exits 0."""
    port = free_port()
    process = await start("service.py", str(port), base_url=sim.base_url)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            status, body = await get_when_up(session, "/leads/lead_1")
            assert status == 200, body
            assert json.loads(body)["phone_number"] == lead_payload("lead_1")["phone_number"]
            async with session.get("/leads/missing_1") as response:
                assert response.status == 404
        process.send_signal(signum)
        await finish(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # One shared client: both lookups reached the API (one connection, kept alive).
    assert sim.stats.requests == 2


async def test_worker_looks_up_every_id_and_exits_at_the_end(sim: Simulator) -> None:
    """Given a handful of ids, the worker prints each lead, reports the missing one, exits 0."""
    ids = [f"lead_{i}" for i in range(5)]
    process = await start("worker.py", *ids, "missing_5", base_url=sim.base_url)
    out, err = await finish(process)
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == ids
    assert "missing_5: NotFoundError" in err
    assert sim.stats.requests == 6


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
async def test_worker_stops_on_a_signal_after_finishing_what_it_holds(
    sim: Simulator, signum: int
) -> None:
    """On a signal the worker starts no new lookup, ends every one it began, and exits 0."""
    ids = [f"lead_{i}" for i in range(200)]
    process = await start("worker.py", *ids, base_url=sim.base_url)
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), timeout=10)
        process.send_signal(signum)
        out, _ = await finish(process, first.decode())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    done = [json.loads(line)["id"] for line in out.splitlines()]
    assert len(set(done)) == len(done)
    assert 1 <= len(done) < len(ids)
    # Every request the API saw ended in a printed lead: nothing was cut off mid-lookup.
    assert sim.stats.requests == len(done)
