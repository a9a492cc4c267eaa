"""Tests of the local DialNexa simulator, driven over loopback with a plain aiohttp client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from dialnexa_async.testing import (
    STATS_KEY,
    STATUSES,
    UNDOCUMENTED_STATUSES,
    Simulator,
    SimulatorConfig,
    SimulatorStats,
    build_parser,
    config_from_args,
    lead_payload,
    make_app,
)

AUTH = {"Authorization": "Bearer sk_test"}
SCHEMA_KEYS = {
    "id",
    "name",
    "phone_number",
    "campaign_id",
    "status",
    "notes",
    "call_log_id",
    "created_at",
}
EXAMPLE_KEYS = {"id", "campaign_id", "phone_number", "metadata", "status", "created_at"}
CREATED_AT = re.compile(r"20(23|24|25)-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
E164_IN = re.compile(r"\+91[6-9]\d{9}")


class FakeClock:
    """A settable clock for driving the rate-limit window without sleeping."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def lead_url(sim: Simulator, lead_id: str) -> str:
    return f"{sim.base_url}/campaigns-leads/{lead_id}"


async def get_status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url, headers=AUTH) as resp:
        await resp.read()
        return resp.status


def assert_envelope(body: object, status: int, message: object, error: str) -> None:
    assert body == {"statusCode": status, "message": message, "error": error}


# --- leads -----------------------------------------------------------------------------


async def test_both_shapes_are_served_and_match_lead_payload(
    session: aiohttp.ClientSession,
) -> None:
    """Served leads come in both documented shapes and equal ``lead_payload`` exactly."""
    shapes = set()
    async with Simulator() as sim:
        for n in range(40):
            lead_id = f"lead_{n:04d}"
            async with session.get(lead_url(sim, lead_id), headers=AUTH) as resp:
                assert resp.status == 200
                assert resp.content_type == "application/json"
                body = await resp.json()
            assert body == lead_payload(lead_id)
            assert body["id"] == lead_id
            assert body["status"] in STATUSES
            assert E164_IN.fullmatch(body["phone_number"])
            assert CREATED_AT.fullmatch(body["created_at"])
            if "name" in body:
                shapes.add("schema")
                assert set(body) == SCHEMA_KEYS
                assert all(isinstance(v, str) for v in body["notes"].values())
                assert (body["call_log_id"] is None) == (body["status"] == "pending")
            else:
                shapes.add("example")
                assert set(body) == EXAMPLE_KEYS
                assert all(isinstance(v, str) for v in body["metadata"].values())
    assert shapes == {"schema", "example"}


def test_lead_payload_is_stable_across_processes() -> None:
    """The same id yields the same lead in a process with a different hash seed."""
    ids = ["lead_abc123", "lead_m4b7zx9nq2pw", "cmp_5tw8vz2rnx1q"]
    code = (
        "import json, sys; from dialnexa_async.testing import lead_payload; "
        "print(json.dumps([lead_payload(i) for i in sys.argv[1:]]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, *ids], env=env, capture_output=True, check=True, timeout=30
    ).stdout
    assert json.loads(out) == [lead_payload(i) for i in ids]
    assert lead_payload("lead_a") != lead_payload("lead_b")


async def test_unknown_status_rate_changes_only_the_status(
    session: aiohttp.ClientSession,
) -> None:
    """With ``unknown_status_rate=1`` every status is undocumented; other fields stay put."""
    async with Simulator(unknown_status_rate=1.0) as sim:
        for n in range(10):
            lead_id = f"lead_odd{n}"
            async with session.get(lead_url(sim, lead_id), headers=AUTH) as resp:
                body = await resp.json()
            assert body["status"] in UNDOCUMENTED_STATUSES
            assert body == lead_payload(lead_id, unknown_status_rate=1.0)
            plain = lead_payload(lead_id)
            assert {k: v for k, v in body.items() if k not in ("status", "call_log_id")} == {
                k: v for k, v in plain.items() if k not in ("status", "call_log_id")
            }


# --- errors ----------------------------------------------------------------------------


async def test_auth_errors_use_the_envelope(session: aiohttp.ClientSession) -> None:
    """Missing, wrong and non-bearer keys get 401; forbidden keys get 403; all as envelopes."""
    async with Simulator(forbidden_keys=frozenset({"sk_readonly"})) as sim:
        url = lead_url(sim, "lead_abc123")
        for headers in ({}, {"Authorization": "Bearer sk_wrong"}, {"Authorization": "sk_test"}):
            async with session.get(url, headers=headers) as resp:
                assert resp.status == 401
                assert resp.content_type == "application/json"
                assert_envelope(await resp.json(), 401, "Invalid API key", "Unauthorized")
        async with session.get(url, headers={"Authorization": "Bearer sk_readonly"}) as resp:
            assert resp.status == 403
            body = await resp.json()
            assert body["statusCode"] == 403
            assert body["error"] == "Forbidden"
            assert isinstance(body["message"], str)


async def test_any_key_mode_accepts_any_non_empty_bearer(session: aiohttp.ClientSession) -> None:
    """With ``api_key=None`` any non-empty bearer works but an empty one is still 401."""
    async with Simulator(api_key=None) as sim:
        url = lead_url(sim, "lead_abc123")
        async with session.get(url, headers={"Authorization": "Bearer key_1:s3cret"}) as resp:
            assert resp.status == 200
        async with session.get(url, headers={"Authorization": "Bearer "}) as resp:
            assert resp.status == 401


async def test_malformed_id_is_400_with_a_list_message(session: aiohttp.ClientSession) -> None:
    """An id outside the allowed pattern gets a 400 whose message is a list of strings."""
    async with Simulator() as sim:
        for bad in ("lead.1", "x" * 129, "l%C3%A9ad"):
            async with session.get(URL(lead_url(sim, bad), encoded=True), headers=AUTH) as resp:
                assert resp.status == 400
                assert_envelope(
                    await resp.json(),
                    400,
                    ["id must match ^[A-Za-z0-9_-]{1,128}$"],
                    "Bad Request",
                )


async def test_not_found_cases_use_the_envelope(session: aiohttp.ClientSession) -> None:
    """Missing leads, unknown ids, the retired route and unknown paths are 404 envelopes."""
    async with Simulator(known_ids=frozenset({"lead_known"})) as sim:
        for lead_id in ("missing_42", "lead_other"):
            async with session.get(lead_url(sim, lead_id), headers=AUTH) as resp:
                assert resp.status == 404
                assert_envelope(await resp.json(), 404, "Lead not found", "Not Found")
        async with session.get(lead_url(sim, "lead_known"), headers=AUTH) as resp:
            assert resp.status == 200
        for url in (
            f"{sim.origin}/campaigns-leads/lead_known",
            f"{sim.base_url}/campaigns",
            f"{sim.base_url}/campaigns-leads/",
            f"{sim.base_url}/campaigns-leads/lead_known/extra",
        ):
            async with session.get(url, headers=AUTH) as resp:
                assert resp.status == 404, url
                body = await resp.json()
                assert body["statusCode"] == 404
                assert body["error"] == "Not Found"
                assert body["message"].startswith("Cannot GET /")


async def test_non_get_on_the_route_is_405(session: aiohttp.ClientSession) -> None:
    """A POST or DELETE on the lead route gets a 405 envelope."""
    async with Simulator() as sim:
        for method in ("POST", "DELETE"):
            async with session.request(method, lead_url(sim, "lead_1"), headers=AUTH) as resp:
                assert resp.status == 405
                assert resp.headers["Allow"] == "GET"
                assert_envelope(await resp.json(), 405, "Method Not Allowed", "Method Not Allowed")


async def test_encoded_slash_stays_inside_the_id(session: aiohttp.ClientSession) -> None:
    """``%2F`` is decoded once into the id instead of splitting the path."""
    async with Simulator() as sim:
        url = URL(f"{sim.base_url}/campaigns-leads/a%2Fb", encoded=True)
        async with session.get(url, headers=AUTH) as resp:
            assert resp.status == 400
        url = URL(f"{sim.base_url}/campaigns-leads/a%252Fb", encoded=True)
        async with session.get(url, headers=AUTH) as resp:
            assert resp.status == 400
        url = URL(f"{sim.base_url}/campaigns-leads/lead%5Fx?expand=1", encoded=True)
        async with session.get(url, headers=AUTH) as resp:
            assert resp.status == 200
            assert (await resp.json())["id"] == "lead_x"
        assert sim.stats.attempts_by_id == {"a/b": 1, "a%2Fb": 1, "lead_x": 1}


async def test_every_response_has_a_distinct_request_id(session: aiohttp.ClientSession) -> None:
    """Success and error answers alike carry a unique ``x-request-id`` starting ``req_``."""
    seen = []
    async with Simulator() as sim:
        for url, headers in (
            (lead_url(sim, "lead_1"), AUTH),
            (lead_url(sim, "lead_1"), {}),
            (f"{sim.origin}/nope", AUTH),
        ):
            async with session.get(url, headers=headers) as resp:
                seen.append(resp.headers["x-request-id"])
    assert all(re.fullmatch(r"req_[0-9a-f]+", r) for r in seen)
    assert len(set(seen)) == 3


# --- rate limiting -----------------------------------------------------------------------


async def test_rate_limit_headers_429_and_window_reset(session: aiohttp.ClientSession) -> None:
    """A fixed window admits ``rate_limit`` requests, then 429s with Retry-After until it resets."""
    clock = FakeClock()
    async with Simulator(rate_limit=3, rate_window=10.0, clock=clock) as sim:
        url = lead_url(sim, "lead_1")
        for remaining in ("2", "1", "0"):
            async with session.get(url, headers=AUTH) as resp:
                assert resp.status == 200
                assert resp.headers["x-ratelimit-limit"] == "3"
                assert resp.headers["x-ratelimit-remaining"] == remaining
                assert resp.headers["x-ratelimit-reset"] == "10"
                assert "Retry-After" not in resp.headers
        clock.now += 2.5
        for _ in range(2):
            async with session.get(url, headers=AUTH) as resp:
                assert resp.status == 429
                assert resp.headers["Retry-After"] == "8"
                assert resp.headers["x-ratelimit-reset"] == "8"
                assert resp.headers["x-ratelimit-remaining"] == "0"
                assert_envelope(await resp.json(), 429, "Too Many Requests", "Too Many Requests")
        clock.now += 7.5
        async with session.get(url, headers=AUTH) as resp:
            assert resp.status == 200
            assert resp.headers["x-ratelimit-remaining"] == "2"
        assert sim.stats.rate_limited == 2
        assert sim.stats.by_status == {200: 4, 429: 2}


async def test_unauthorized_requests_count_against_the_window(
    session: aiohttp.ClientSession,
) -> None:
    """The limiter runs before auth, so a 401 uses up the window and a 429 wins over auth."""
    clock = FakeClock()
    async with Simulator(rate_limit=1, clock=clock) as sim:
        async with session.get(lead_url(sim, "lead_1")) as resp:
            assert resp.status == 401
            assert resp.headers["x-ratelimit-remaining"] == "0"
        async with session.get(lead_url(sim, "lead_1")) as resp:
            assert resp.status == 429


async def test_fractional_reset_and_no_retry_after(session: aiohttp.ClientSession) -> None:
    """``fractional_reset`` sends millisecond decimals; ``retry_after=False`` omits the header."""
    clock = FakeClock()
    async with Simulator(
        rate_limit=1, rate_window=1.0, clock=clock, fractional_reset=True, retry_after=False
    ) as sim:
        assert await get_status(session, lead_url(sim, "lead_1")) == 200
        clock.now += 0.25
        async with session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp:
            assert resp.status == 429
            assert resp.headers["x-ratelimit-reset"] == "0.75"
            assert "Retry-After" not in resp.headers
        sim.config.retry_after = True
        async with session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp:
            assert resp.headers["Retry-After"] == "0.75"


async def test_retry_after_probability_is_seeded(session: aiohttp.ClientSession) -> None:
    """A fractional ``retry_after`` sends the header on some 429s, identically for one seed."""

    async def pattern() -> list[bool]:
        async with Simulator(rate_limit=1, clock=FakeClock(), retry_after=0.5, seed=3) as sim:
            await get_status(session, lead_url(sim, "lead_1"))
            out = []
            for _ in range(30):
                async with session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp:
                    assert resp.status == 429
                    out.append("Retry-After" in resp.headers)
            return out

    first = await pattern()
    assert any(first)
    assert not all(first)
    assert await pattern() == first


async def test_rate_limit_html_and_empty_bodies(session: aiohttp.ClientSession) -> None:
    """The 429 body can be an nginx-style HTML page or empty, as a gateway sends."""
    clock = FakeClock()
    async with Simulator(rate_limit=1, clock=clock, rate_limit_body="html") as sim:
        await get_status(session, lead_url(sim, "lead_1"))
        async with session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp:
            assert resp.status == 429
            assert resp.content_type == "text/html"
            assert "<title>429 Too Many Requests</title>" in await resp.text()
        sim.config.rate_limit_body = "empty"
        async with session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp:
            assert resp.status == 429
            assert await resp.read() == b""
            assert resp.headers["Content-Length"] == "0"


async def test_rate_limit_headers_can_be_disabled(session: aiohttp.ClientSession) -> None:
    """With ``rate_limit_headers=False`` neither 200s nor 429s carry ``x-ratelimit-*``."""
    async with Simulator(rate_limit=1, clock=FakeClock(), rate_limit_headers=False) as sim:
        for expected in (200, 429):
            async with session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp:
                assert resp.status == expected
                assert not any(h.lower().startswith("x-ratelimit") for h in resp.headers)
                assert ("Retry-After" in resp.headers) == (expected == 429)


# --- fault injection -------------------------------------------------------------------


async def test_reset_fault_aborts_the_connection_quietly(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """``reset_rate=1`` makes the client see a connection error and the server log nothing."""
    caplog.set_level(logging.WARNING)
    async with Simulator(reset_rate=1.0) as sim:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp:
                await resp.read()
        # aiohttp's client itself retries a GET once after a dropped connection.
        assert sim.stats.resets >= 1
        assert sim.stats.resets == sim.stats.requests
        assert sum(sim.stats.by_status.values()) == 0
        sim.config.reset_rate = 0.0
        assert await get_status(session, lead_url(sim, "lead_1")) == 200
        await asyncio.sleep(0.05)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_reset_fault_is_a_tcp_rst_not_a_clean_close() -> None:
    """The aborted connection reaches a raw socket as a reset, with no response bytes first."""
    async with Simulator(reset_rate=1.0) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        try:
            writer.write(
                b"GET /v1/campaigns-leads/lead_1 HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer sk_test\r\n\r\n"
            )
            await writer.drain()
            # A FIN would make read() return b"" instead of raising.
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(1024), timeout=5)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        assert sim.stats.resets == 1


async def test_error_fault_sends_a_5xx_envelope(session: aiohttp.ClientSession) -> None:
    """``error_rate=1`` answers each request with a JSON envelope from ``error_statuses``."""
    async with (
        Simulator(error_rate=1.0, error_statuses=(503,)) as sim,
        session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp,
    ):
        assert resp.status == 503
        assert_envelope(await resp.json(), 503, "Service Unavailable", "Service Unavailable")


async def test_html_fault_sends_a_gateway_502_page(session: aiohttp.ClientSession) -> None:
    """``html_rate=1`` answers with a text/html 502 page even without credentials."""
    async with Simulator(html_rate=1.0) as sim, session.get(lead_url(sim, "lead_1")) as resp:
        assert resp.status == 502
        assert resp.content_type == "text/html"
        assert "502 Bad Gateway" in await resp.text()


async def test_malformed_fault_sends_undecodable_json(session: aiohttp.ClientSession) -> None:
    """``malformed_rate=1`` answers 200 application/json with a body that does not parse."""
    async with (
        Simulator(malformed_rate=1.0) as sim,
        session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "application/json"
        with pytest.raises(json.JSONDecodeError):
            await resp.json()


async def test_slow_body_fault_arrives_complete_in_pieces(session: aiohttp.ClientSession) -> None:
    """``slow_body_rate=1`` streams the correct body in several delayed chunks."""
    async with Simulator(slow_body_rate=1.0, slow_body_delay=0.05) as sim:
        started = time.monotonic()
        async with session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp:
            assert resp.status == 200
            chunks = [chunk async for chunk in resp.content.iter_any()]
        elapsed = time.monotonic() - started
    assert len(chunks) > 1
    assert json.loads(b"".join(chunks)) == lead_payload("lead_1")
    assert elapsed >= 0.14


async def test_faults_come_after_the_rate_limiter(session: aiohttp.ClientSession) -> None:
    """An exhausted window answers 429 before any fault is injected."""
    async with Simulator(rate_limit=1, clock=FakeClock(), error_rate=1.0) as sim:
        assert await get_status(session, lead_url(sim, "lead_1")) in (500, 502, 503, 504)
        assert await get_status(session, lead_url(sim, "lead_1")) == 429


async def test_same_seed_gives_the_same_fault_sequence(session: aiohttp.ClientSession) -> None:
    """With one seed and sequential requests the status sequence repeats exactly."""

    async def run(seed: int) -> list[int]:
        async with Simulator(seed=seed, error_rate=0.3, html_rate=0.2, malformed_rate=0.2) as sim:
            first = [await get_status(session, lead_url(sim, f"l{n}")) for n in range(40)]
            sim.reset()
            again = [await get_status(session, lead_url(sim, f"l{n}")) for n in range(40)]
            assert again == first
            return first

    one = await run(7)
    assert len(set(one)) >= 3
    assert await run(7) == one
    assert await run(8) != one


# --- stats and runtime config ------------------------------------------------------------


async def test_stats_count_requests_and_peak_concurrency(session: aiohttp.ClientSession) -> None:
    """Stats count requests, statuses and ids, and see every concurrent request at the peak."""
    async with Simulator(latency=0.25) as sim:
        started = time.monotonic()
        statuses = await asyncio.gather(
            *(get_status(session, lead_url(sim, f"lead_{n % 5}")) for n in range(20))
        )
        assert time.monotonic() - started < 1.5
        assert statuses == [200] * 20
        stats = sim.app[STATS_KEY]
        assert stats is sim.stats
        assert stats.requests == 20
        assert stats.by_status == {200: 20}
        assert stats.attempts_by_id == {f"lead_{n}": 4 for n in range(5)}
        assert stats.max_in_flight == 20
        assert stats.in_flight == 0
        stats.reset()
        assert (stats.requests, stats.max_in_flight, len(stats.attempts_by_id)) == (0, 0, 0)


async def test_track_ids_off_keeps_no_per_id_state(session: aiohttp.ClientSession) -> None:
    """With ``track_ids=False`` no per-id counter grows."""
    async with Simulator(track_ids=False) as sim:
        for n in range(5):
            await get_status(session, lead_url(sim, f"lead_{n}"))
        assert sim.stats.requests == 5
        assert len(sim.stats.attempts_by_id) == 0


async def test_config_changes_apply_to_the_next_request(session: aiohttp.ClientSession) -> None:
    """Setting a config field on a running simulator changes the very next answer."""
    config = SimulatorConfig()
    async with Simulator(config) as sim:
        assert sim.config is config
        assert await get_status(session, lead_url(sim, "lead_1")) == 200
        config.error_rate = 1.0
        assert await get_status(session, lead_url(sim, "lead_1")) >= 500
        config.error_rate = 0.0
        config.known_ids = frozenset()
        assert await get_status(session, lead_url(sim, "lead_1")) == 404


def test_config_validation_and_secret_free_repr() -> None:
    """Out-of-range rates are rejected and the repr never shows the API key."""
    with pytest.raises(ValueError, match="error_rate"):
        SimulatorConfig(error_rate=1.5)
    with pytest.raises(ValueError, match="rate_limit"):
        SimulatorConfig(rate_limit=0)
    assert "sk_secret" not in repr(SimulatorConfig(api_key="sk_secret"))
    assert isinstance(make_app()[STATS_KEY], SimulatorStats)


def test_flags_map_onto_config_fields() -> None:
    """``config_from_args(build_parser().parse_args(...))`` sets the matching fields."""
    ns = build_parser().parse_args(
        [
            "--rate-limit",
            "300",
            "--rate-window",
            "60",
            "--no-retry-after",
            "--no-rate-limit-headers",
            "--rate-limit-body",
            "html",
            "--latency",
            "0.02",
            "--error-rate",
            "0.1",
            "--reset-rate",
            "0.02",
            "--seed",
            "1",
            "--any-key",
            "--error-statuses",
            "502,503",
        ]
    )
    config = config_from_args(ns)
    assert (config.rate_limit, config.rate_window, config.retry_after) == (300, 60.0, False)
    assert (config.rate_limit_headers, config.rate_limit_body) == (False, "html")
    assert (config.latency, config.error_rate, config.reset_rate) == (0.02, 0.1, 0.02)
    assert (config.seed, config.api_key, config.error_statuses) == (1, None, (502, 503))
    assert config_from_args(build_parser().parse_args([])) == SimulatorConfig()


# --- command line ------------------------------------------------------------------------


async def test_module_entry_point_serves_and_exits_on_sigterm(
    session: aiohttp.ClientSession,
) -> None:
    """``python -m dialnexa_async.testing`` announces its URL, serves, and exits 0 on SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dialnexa_async.testing",
        "--port",
        "0",
        "--api-key",
        "sk_cli_secret",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=15)).decode()
        match = re.fullmatch(
            r"DialNexa simulator listening on (http://127\.0\.0\.1:\d+/v1)\n", line
        )
        assert match, line
        headers = {"Authorization": "Bearer sk_cli_secret"}
        async with session.get(f"{match[1]}/campaigns-leads/lead_cli", headers=headers) as resp:
            assert resp.status == 200
            assert await resp.json() == lead_payload("lead_cli")
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=10)
        assert proc.returncode == 0, stderr
        assert b"sk_cli_secret" not in stdout + stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
