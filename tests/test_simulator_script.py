"""Scripted replies: what the simulator answers to given ids, request by request."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

import dialnexa_async as dnx
from dialnexa_async.testing import Reply, Simulator
from dialnexa_async.testing._script import Scripts


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def fetch(
    session: aiohttp.ClientSession, sim: Simulator, lead_id: str, key: str = "sk_test"
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one GET of ``lead_id``."""
    url = f"{sim.base_url}/campaigns-leads/{lead_id}"
    async with session.get(url, headers={"Authorization": f"Bearer {key}"}) as resp:
        return resp.status, dict(resp.headers), await resp.read()


# --- the queue, without HTTP -------------------------------------------------------------------


def test_replies_are_taken_in_order_each_for_its_times() -> None:
    """A reply answers ``times`` requests, then the next one does, then nothing is scripted."""
    scripts = Scripts()
    first, second = Reply(status=503, times=2), Reply(status=429)
    scripts.set("lead_1", [first, second])
    assert scripts.remaining("lead_1") == 3
    assert [scripts.take("lead_1") for _ in range(4)] == [first, first, second, None]
    assert scripts.remaining("lead_1") == 0
    assert scripts.take("lead_2") is None


def test_a_reply_for_every_request_never_runs_out() -> None:
    """``times=None`` answers every later request, after the replies before it."""
    scripts = Scripts()
    once, always = Reply(status=500), Reply(status=404, times=None)
    scripts.set("lead_1", [once, always])
    assert scripts.remaining("lead_1") is None
    assert [scripts.take("lead_1") for _ in range(5)] == [once] + [always] * 4


def test_setting_a_script_replaces_it_and_no_replies_clear_it() -> None:
    """``set`` is the id's whole script; an empty one leaves the id unscripted."""
    scripts = Scripts()
    scripts.set("lead_1", [Reply(status=500, times=5)])
    scripts.set("lead_1", [Reply(status=502)])
    assert scripts.remaining("lead_1") == 1
    scripts.set("lead_1", [])
    assert scripts.take("lead_1") is None


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"status": 99}, ValueError),
        ({"status": 600}, ValueError),
        ({"delay": -1.0}, ValueError),
        ({"delay": float("inf")}, ValueError),
        ({"times": 0}, ValueError),
        ({"reset": True, "status": 503}, ValueError),
        ({"reset": True, "headers": {"x": "y"}}, ValueError),
        ({"body": b"x"}, ValueError),
        ({"status": 200, "body": {"when": object()}}, TypeError),
        ({"status": 200, "body": 3}, TypeError),
        ({"status": 200, "headers": {"x": 1}}, TypeError),
    ],
)
def test_a_reply_that_cannot_be_sent_is_refused_at_once(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    """A reply's mistakes surface where it is written, not as a 500 in the middle of a test."""
    with pytest.raises(error):
        Reply(**kwargs)  # type: ignore[arg-type]


def test_a_scripted_id_must_be_one_the_api_would_look_up() -> None:
    """An id the API answers 400 for could never reach its script."""
    with pytest.raises(ValueError, match="must match"):
        Scripts().set("has space", [Reply(status=500)])
    with pytest.raises(TypeError, match="Reply"):
        Scripts().set("lead_1", [503])  # type: ignore[list-item]


# --- over HTTP ---------------------------------------------------------------------------------


async def test_fail_twice_then_succeed_through_the_client(
    dialnexa_simulator: Simulator, dialnexa_client: dnx.AsyncDialNexa
) -> None:
    """Two scripted 503s are retried and the third request gets the lead, only for that id."""
    dialnexa_simulator.script("lead_1", Reply(status=503, times=2))
    lead = await dialnexa_client.get_lead("lead_1")
    other = await dialnexa_client.get_lead("lead_2")
    assert (lead.id, other.id) == ("lead_1", "lead_2")
    stats = dialnexa_simulator.stats
    assert stats.attempts_by_id == {"lead_1": 3, "lead_2": 1}
    assert stats.by_status == {503: 2, 200: 2}
    assert stats.scripted == 2
    assert dialnexa_simulator.script_remaining("lead_1") == 0


async def test_a_scripted_status_sends_the_apis_own_body_and_extra_headers(
    dialnexa_simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    """Without a body a 404 gets the API's envelope, a 200 the lead; headers are added."""
    dialnexa_simulator.script(
        "lead_1",
        Reply(status=404, headers={"x-trace": "abc"}),
        Reply(status=200),
    )
    status, headers, body = await fetch(session, dialnexa_simulator, "lead_1")
    assert status == 404
    assert headers["x-trace"] == "abc"
    assert headers["Content-Type"].startswith("application/json")
    assert body == b'{"statusCode":404,"message":"Lead not found","error":"Not Found"}'
    status, _, body = await fetch(session, dialnexa_simulator, "lead_1")
    assert status == 200
    assert json.loads(body) == dialnexa_simulator.lead_payload("lead_1")


async def test_a_scripted_body_is_sent_as_given(
    dialnexa_simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    """bytes and str go out verbatim with the given type; a dict goes out as JSON."""
    dialnexa_simulator.script(
        "lead_1",
        Reply(status=502, body="<html>bad gateway</html>", content_type="text/html"),
        Reply(status=200, body=b'{"id": "lead_1", "campaign'),
        Reply(status=200, body={"id": "lead_1", "odd": [1, 2]}),
        Reply(status=503, body=b"down", headers={"Content-Type": "text/plain"}),
    )
    answers = [await fetch(session, dialnexa_simulator, "lead_1") for _ in range(4)]
    assert [(s, h["Content-Type"].split(";")[0], b) for s, h, b in answers] == [
        (502, "text/html", b"<html>bad gateway</html>"),
        (200, "application/json", b'{"id": "lead_1", "campaign'),
        (200, "application/json", b'{"id":"lead_1","odd":[1,2]}'),
        (503, "text/plain", b"down"),
    ]


async def test_a_scripted_429_is_honoured_by_the_client(
    dialnexa_simulator: Simulator,
    dialnexa_client: dnx.AsyncDialNexa,
    dialnexa_clock: dnx.VirtualClock,
) -> None:
    """A scripted 429 with ``Retry-After: 7`` makes the client wait 7 virtual seconds, once."""
    dialnexa_simulator.script("lead_1", Reply(status=429, headers={"Retry-After": "7"}))
    lead = await dialnexa_client.get_lead("lead_1")
    assert lead.id == "lead_1"
    assert dialnexa_clock.sleeps == [7.0]
    assert dialnexa_simulator.stats.by_status == {429: 1, 200: 1}
    assert dialnexa_simulator.stats.rate_limited == 0, "the script, not the limiter, said 429"


async def test_a_scripted_reset_is_a_connection_error_for_the_client(
    dialnexa_simulator: Simulator, dialnexa_client: dnx.AsyncDialNexa
) -> None:
    """``reset=True`` aborts the connection; an id reset on every request fails after retries."""
    dialnexa_simulator.script("lead_1", Reply(reset=True, times=None))
    with pytest.raises(dnx.APIConnectionError) as caught:
        await dialnexa_client.get_lead("lead_1")
    assert caught.value.attempts == 4
    assert dialnexa_simulator.stats.resets == dialnexa_simulator.stats.attempts_by_id["lead_1"]
    assert dialnexa_simulator.stats.resets >= 4


async def test_a_scripted_delay_holds_the_apis_own_answer(
    dialnexa_simulator: Simulator, session: aiohttp.ClientSession
) -> None:
    """``Reply(delay=...)`` without a status delays the normal answer, auth check included."""
    dialnexa_simulator.script("lead_1", Reply(delay=0.2, times=2))
    start = time.monotonic()
    status, _, body = await fetch(session, dialnexa_simulator, "lead_1")
    assert time.monotonic() - start >= 0.2
    assert status == 200
    assert b'"id":"lead_1"' in body
    status, _, _ = await fetch(session, dialnexa_simulator, "lead_1", key="wrong")
    assert status == 401


async def test_a_delay_past_the_clients_timeout_is_a_timeout(dialnexa_simulator: Simulator) -> None:
    """A scripted delay longer than the attempt deadline ends as ``APITimeoutError``."""
    dialnexa_simulator.script("lead_1", Reply(delay=0.5, times=None))
    async with dnx.AsyncDialNexa(
        api_key="sk_test", base_url=dialnexa_simulator.base_url, timeout=0.1, max_retries=0
    ) as client:
        with pytest.raises(dnx.APITimeoutError):
            await client.get_lead("lead_1")


async def test_a_script_waits_behind_the_rate_gate(
    session: aiohttp.ClientSession, dialnexa_clock: dnx.VirtualClock
) -> None:
    """A request the gate refuses does not use up a scripted reply."""
    async with Simulator(rate_limit=1, rate_window=10.0, clock=dialnexa_clock) as sim:
        sim.script("lead_1", Reply(status=500))
        assert (await fetch(session, sim, "lead_2"))[0] == 200
        assert (await fetch(session, sim, "lead_1"))[0] == 429
        assert sim.script_remaining("lead_1") == 1
        dialnexa_clock.advance(10.0)
        assert (await fetch(session, sim, "lead_1"))[0] == 500
        assert sim.script_remaining("lead_1") == 0
