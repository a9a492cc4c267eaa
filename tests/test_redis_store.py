"""``RedisRateStore`` against a real redis-server on loopback (no fake Redis anywhere).

The Lua script is checked against ``SharedLimit`` step for step; the bucket under eight
concurrent clients; key names; a crash, a stall and a restart of Redis mid-run; and a pause
one process met holding another process's requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import dialnexa_async as dnx
from dialnexa_async._pause import PROBES
from dialnexa_async._rate_model import CATCH_UP
from dialnexa_async._rate_store import Observation, RateStoreUnavailable, Report, SharedLimit, View
from dialnexa_async.testing import Simulator
from tests.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]

KEY_ID = "key_live42"
SECRET = "t0p-s3cret-never-in-redis"
API_KEY = f"{KEY_ID}:{SECRET}"
ROOT = Path(__file__).resolve().parent.parent


def _store(server: RedisServer, **options: Any) -> dnx.RedisRateStore:
    store = dnx.RedisRateStore(server.url, **options)
    store.attach()
    return store


def _same(lua: View, python: View, lua_base: int, python_base: int) -> None:
    """The two views agree (sequence numbers counted from each side's first)."""
    assert lua._replace(seq=0) == python._replace(seq=0)
    assert (lua.seq - lua_base if lua.seq else 0) == (python.seq - python_base if python.seq else 0)


async def test_the_lua_script_is_shared_limit_step_for_step(redis_server: RedisServer) -> None:
    """200 random reports give the same answers from Redis as from ``SharedLimit`` at its time."""
    store = _store(redis_server)
    reference = SharedLimit()
    rng = random.Random(7)
    seqs: list[tuple[int, int]] = []  # (lua, python) numbers of admitted requests
    bases: tuple[int, int] | None = None
    try:
        for _ in range(200):
            observations = []
            for lua_seq, python_seq in rng.sample(seqs, min(len(seqs), rng.randrange(3))):
                observations.append(
                    (
                        lua_seq,
                        python_seq,
                        rng.randrange(0, 5),
                        rng.choice((0.05, 0.2, 1.0)),
                        rng.choice((None, 5)),
                        rng.uniform(0, 0.05),
                        rng.random() < 0.2,  # a probe that recounts the budget
                    )
                )
            fields = {
                "client": rng.choice("abc"),
                "rate": rng.choice((None, 50.0, 120.0)),
                "cap": rng.choice((None, None, 80.0)),
                "admit": rng.choice((0, 0, 1, 1, 1, 3)),
                "probe": rng.random() < 0.1,
                "probe_gap": rng.choice((0.0, 0.05)),
                "paced": rng.random() < 0.8,
                "honour_pause": rng.random() < 0.9,
                "pause": rng.choice((0.0, 0.0, 0.0, 0.03, 0.2)),
                "pause_ended": rng.choice((0, 0, 0, reference.pause_id)),
                "untrust": rng.random() < 0.01,
            }

            def report(
                side: int, fields: dict[str, Any] = fields, seen: list[Any] = observations
            ) -> Report:
                return Report(
                    **fields,
                    observations=tuple(
                        Observation(o[side], o[2], o[3], o[4], o[5], o[5] / 2, o[6]) for o in seen
                    ),
                )

            lua = await store.sync(KEY_ID, report(0))
            python = reference.step(report(1), lua.now)
            if bases is None:
                bases = (lua.seq or 0, python.seq or 0)
            _same(lua, python, *bases)
            if lua.admitted:
                seqs.append((lua.seq, python.seq))
            await asyncio.sleep(rng.choice((0.0, 0.0, 0.005)))
    finally:
        await store.release()
    assert len(seqs) > 30  # enough admissions to have exercised the budget and the pacing


async def test_the_bucket_never_over_admits_under_eight_concurrent_clients(
    redis_server: RedisServer,
) -> None:
    """Eight clients on their own connections, each asking as fast as it may, share 100/s."""
    rate = 100.0
    stores = [_store(redis_server) for _ in range(8)]
    sends: list[float] = []
    seqs: list[int] = []
    deadline = time.monotonic() + 1.5

    async def client(number: int, store: dnx.RedisRateStore) -> None:
        while time.monotonic() < deadline:
            view = await store.sync(KEY_ID, Report(f"c{number}", None, rate, admit=1))
            assert view.admitted
            seqs.append(view.seq)
            sends.append(view.now + view.wait)  # the earliest it may go, on Redis's clock
            await asyncio.sleep(view.wait)

    try:
        await asyncio.gather(*(client(i, s) for i, s in enumerate(stores)))
    finally:
        for store in stores:
            await store.release()
    assert len(set(seqs)) == len(seqs)
    assert max(seqs) - min(seqs) == len(seqs) - 1  # one number each, none skipped
    sends.sort()
    # In any second: the rate, one slot more, and what catching up on late slots allows.
    most = rate * (1.0 + CATCH_UP) + 1
    for i, start in enumerate(sends):
        in_window = sum(1 for t in sends[i:] if t < start + 1.0)
        assert in_window <= most
    span = sends[-1] - sends[0]
    assert len(sends) >= 0.8 * rate * span  # and it does not starve them either


async def test_every_key_names_the_key_id_and_never_the_secret(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """After a paced run with a pause, every key in Redis holds the key id, none the secret."""
    caplog.set_level(logging.DEBUG)
    store = dnx.RedisRateStore(redis_server.url, namespace="crm-sync")
    async with (
        Simulator(api_key=API_KEY, rate_limit=30, rate_window=1.0) as sim,
        dnx.AsyncDialNexa(
            api_key=API_KEY, base_url=sim.base_url, rate_limit=100, rate_store=store
        ) as client,
    ):
        started = time.monotonic()
        results = await client.get_leads([f"lead_{i}" for i in range(60)])
        elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    # The window was met: a shared budget (or a pause) held the client into the next window.
    assert elapsed >= 0.9
    keys = redis_server.key_names()
    assert keys == [f"crm-sync:{{{KEY_ID}}}:clients", f"crm-sync:{{{KEY_ID}}}:state"]
    assert all(KEY_ID in key and SECRET not in key for key in keys)
    assert SECRET not in repr(store)
    assert all(SECRET not in record.getMessage() for record in caplog.records)


async def test_a_stalled_redis_is_given_up_on_within_the_timeout(
    redis_server: RedisServer,
) -> None:
    """A Redis that stops answering (SIGSTOP) fails a sync after ``timeout``, not later."""
    store = _store(redis_server, timeout=0.05)
    try:
        await store.sync(KEY_ID, Report("a", None, None))
        assert redis_server.process is not None
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(RateStoreUnavailable):
                await store.sync(KEY_ID, Report("a", None, None, admit=1))
            assert time.monotonic() - started < 0.5
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        assert (await store.sync(KEY_ID, Report("a", None, None, admit=1))).admitted
    finally:
        await store.release()


async def test_redis_killed_mid_run_costs_no_id_and_is_rejoined_after_a_restart(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis dies mid-run: one warning, pacing goes on alone, every id ends ok; it comes back:
    the client shares again, and never sends faster than its cap meanwhile."""
    caplog.set_level(logging.INFO, logger="dialnexa_async")
    ids = [f"lead_{i}" for i in range(500)]
    store = dnx.RedisRateStore(redis_server.url)
    async with (
        Simulator(api_key=API_KEY) as sim,
        dnx.AsyncDialNexa(
            api_key=API_KEY, base_url=sim.base_url, rate_limit=200, rate_store=store
        ) as client,
    ):
        shared = client._rate.shared
        assert shared is not None

        async def outage() -> None:
            await asyncio.sleep(0.5)
            redis_server.kill()
            await asyncio.sleep(0.8)
            assert not shared.joined  # pacing alone while Redis is gone
            redis_server.start()

        started = time.monotonic()
        results, _ = await asyncio.gather(client.get_leads(ids), outage())
        elapsed = time.monotonic() - started
        assert shared.joined
    assert [r.lead_id for r in results if r.ok] == ids
    assert elapsed >= (len(ids) - 1) / 200 * 0.95  # the cap held through the outage
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "unavailable" in warnings[0].getMessage()
    assert any("answers again" in r.getMessage() for r in caplog.records)
    assert shared.failures >= 1
    assert redis_server.key_names()  # syncing again after the restart


async def test_a_pause_met_in_one_process_holds_another_process(
    redis_server: RedisServer,
) -> None:
    """Process A meets a 429 with Retry-After; process B, started after, sends only probes
    until the server's moment, where alone it would send its whole concurrency at once."""
    pause = 2.0
    arrivals: list[tuple[float, str]] = []
    state: dict[str, float] = {"until": 0.0}

    async def lead(request: web.Request) -> web.Response:
        now = time.monotonic()
        lead_id = request.match_info["lead_id"]
        arrivals.append((now, lead_id))
        if lead_id == "trigger" and not state["until"]:
            state["until"] = now + pause
        if now < state["until"]:
            return web.json_response(
                {"statusCode": 429, "message": "slow down", "error": "Too Many Requests"},
                status=429,
                headers={"Retry-After": str(max(1, round(state["until"] - now)))},
            )
        return web.json_response(
            {
                "id": lead_id,
                "campaign_id": "cmp_1",
                "phone_number": "+15550100",
                "status": "pending",
                "created_at": "2024-05-01T09:05:00.000Z",
            }
        )

    app = web.Application()
    app.router.add_get("/v1/campaigns-leads/{lead_id}", lead)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base_url = f"http://127.0.0.1:{port}/v1"
    env = {**os.environ, "DIALNEXA_API_KEY": API_KEY, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.shared_worker", "--redis", redis_server.url]
    command += ["--base-url", base_url]
    try:
        b = await asyncio.create_subprocess_exec(
            *command, "--wait", *(f"lead_{i}" for i in range(100)),
            env=env, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert b.stdout is not None
        assert (await b.stdout.readline()).strip() == b"ready"
        a = await asyncio.create_subprocess_exec(
            *command, "--max-retries", "0", "trigger", env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        a_out, _ = await a.communicate()
        assert json.loads(a_out)["errors"] == {"RateLimitError": 1}
        b_out, _ = await b.communicate(b"go\n")
    finally:
        await runner.cleanup()
    b_result = json.loads(b_out)
    assert b_result["ok"] == 100
    during = [lead_id for t, lead_id in arrivals if t < state["until"] and lead_id != "trigger"]
    assert during  # B did start inside the pause, and probed it
    assert len(during) <= 2 * PROBES  # alone, B would have sent 64 at once


def test_without_redis_py_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constructing the store without redis-py says which extra to install."""
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"dialnexa-async\[redis\]"):
        dnx.RedisRateStore("redis://127.0.0.1:1/0")
