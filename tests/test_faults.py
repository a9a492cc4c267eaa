"""The fault matrix: the SDK against a hostile server on a real loopback socket.

Each test asserts the outcome, the typed error and the exact number of attempts the server
saw; the ``guard`` fixture then checks the invariants every case must keep (no connection,
task, warning or loop error left behind, attempts bounded, the API key nowhere).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import pytest

import dialnexa_async as dnx
from dialnexa_async._constants import BACKOFF_INITIAL, MAX_SERVER_DELAY
from dialnexa_async._rate_control import MIN_SERVER_WAIT
from dialnexa_async._transport import RECV_SIZE, _task_marker
from tests.hostile import (
    LEAD,
    LEAD_BODY,
    SECRET,
    Guard,
    closed_port,
    guarding,
    gzip_bomb,
    head,
    huge,
    raw,
    reply,
    reset,
    silence,
    status,
    trickle,
    until,
)

pytestmark = pytest.mark.integration

PATH = "/v1/campaigns-leads/lead_abc123"
DEADLINE = 0.3  # a real per-attempt timeout: the virtual clock does not fake socket waits
MARGIN = 0.5  # seconds of scheduling slack on a busy two-core machine
MEMORY_CEILING = 20 * 1024 * 1024


@pytest.fixture
async def guard(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Guard]:
    """Check the invariants of every case once it ends."""
    async with guarding(caplog) as checker:
        yield checker


def lead_body(**changes: Any) -> bytes:
    """The sample lead with some fields changed (``None`` removes one)."""
    body = {**LEAD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def http_date(clock: dnx.VirtualClock, offset: float) -> str:
    """An IMF-fixdate ``offset`` seconds from the clock's wall time."""
    return format_datetime(
        datetime.fromtimestamp(clock.time() + offset, tz=timezone.utc), usegmt=True
    )


# --- 429 and Retry-After --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("1", 1.0),
        ("1.5", 1.5),
        (lambda clock: http_date(clock, 30), 30.0),
        (lambda clock: http_date(clock, -3600), 0.0),
        ("soon", None),
        ("-1", None),
    ],
    ids=["0", "1", "1.5", "date-future", "date-past", "garbage", "negative"],
)
async def test_429_then_success_waits_what_retry_after_says(
    guard: Guard, value: Any, expected: float | None
) -> None:
    """A 429 is retried after exactly its Retry-After (seconds or HTTP date; a wait of 0 still
    waits the client's minimum), or after a short backoff when the header is garbage or
    negative; the second attempt succeeds."""
    header = value(guard.clock) if callable(value) else value
    async with (
        guard.server(status(429, retry_after=header), reply()) as server,
        guard.client(server) as client,
    ):
        lead = await client.get_lead("lead_abc123")
    assert lead.id == "lead_abc123"
    assert server.requests == {PATH: 2}
    waited = sum(guard.clock.sleeps)
    if expected is None:
        assert 0.0 < waited < BACKOFF_INITIAL  # ignored: a short backoff instead
    else:
        assert waited == pytest.approx(max(expected, MIN_SERVER_WAIT))


async def test_429_with_huge_retry_after_fails_at_once(guard: Guard) -> None:
    """A Retry-After of 10^9 s is not slept: RateLimitError after one attempt, with the (capped)
    wait attached, and the next call fails without sending while the client is paused."""
    async with (
        guard.server(status(429, retry_after=str(10**9))) as server,
        guard.client(server) as client,
    ):
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.RateLimitError)
        assert error.attempts == 1
        assert error.retry_after == MAX_SERVER_DELAY
        assert guard.clock.sleeps == []
        paused = await guard.fails(client.get_lead("lead_abc123"), dnx.RateLimitError)
        assert paused.retry_after is not None
        assert paused.retry_after > 60
    assert server.requests == {PATH: 1}


async def test_429_with_a_13_digit_retry_after_fails_at_once(guard: Guard) -> None:
    """A Retry-After of 10^13 s, longer still than 10^9, also fails at once with the capped
    wait attached rather than being retried."""
    async with (
        guard.server(status(429, retry_after=str(10**13))) as server,
        guard.client(server) as client,
    ):
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.RateLimitError)
    assert error.retry_after == MAX_SERVER_DELAY
    assert server.requests == {PATH: 1}


@pytest.mark.parametrize(
    "script",
    [
        (status(429, retry_after="1\x1f"), reply()),
        (reply(headers={"x-ratelimit-remaining": "9", "x-ratelimit-reset": "1\x1c"}),),
    ],
    ids=["retry-after-on-429", "ratelimit-reset-on-200"],
)
async def test_control_character_in_rate_limit_header_is_ignored(
    guard: Guard, script: tuple[Any, ...]
) -> None:
    """A garbage rate-limit header is ignored like any other garbage: the lead still arrives."""
    async with guard.server(*script) as server, guard.client(server) as client:
        lead = await client.get_lead("lead_abc123")
    assert lead.id == "lead_abc123"
    assert server.requests == {PATH: len(script)}


async def test_429_forever_ends_as_rate_limit_error(guard: Guard) -> None:
    """A server that answers 429 to everything gets exactly max_retries + 1 attempts."""
    async with (
        guard.server(status(429, retry_after="1")) as server,
        guard.client(server, max_retries=2) as client,
    ):
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.RateLimitError)
    assert error.status_code == 429
    assert error.retry_after == 1.0
    assert error.attempts == 3
    assert server.requests == {PATH: 3}
    assert sum(guard.clock.sleeps) == 2.0


# --- status codes ---------------------------------------------------------------------------


async def test_503_burst_then_success(guard: Guard) -> None:
    """Two 503s then a lead: the caller gets the lead after exactly three attempts."""
    async with (
        guard.server(status(503), status(503), reply()) as server,
        guard.client(server, max_retries=2) as client,
    ):
        lead = await client.get_lead("lead_abc123")
    assert lead == dnx.Lead(
        id="lead_abc123",
        campaign_id="cmp_xyz789",
        phone_number="+919876543210",
        status=dnx.LeadStatus.COMPLETED,
        created_at=datetime(2024, 3, 1, 10, tzinfo=timezone.utc),
    )
    assert server.requests == {PATH: 3}


@pytest.mark.parametrize("code", [500, 502, 503, 504])
async def test_5xx_forever_is_internal_server_error(guard: Guard, code: int) -> None:
    """A 5xx on every attempt ends as InternalServerError after max_retries + 1 attempts."""
    async with guard.server(status(code)) as server, guard.client(server) as client:
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.InternalServerError)
    assert error.status_code == code
    assert error.message == f"injected {code}"
    assert error.attempts == 3
    assert server.requests == {PATH: 3}


async def test_503_retry_after_is_honoured(guard: Guard) -> None:
    """A 503's Retry-After is slept before the retry, like a 429's."""
    async with (
        guard.server(status(503, retry_after="2"), reply()) as server,
        guard.client(server) as client,
    ):
        await client.get_lead("lead_abc123")
    assert sum(guard.clock.sleeps) == 2.0
    assert server.requests == {PATH: 2}


async def test_5xx_with_a_huge_body_is_still_a_server_error(guard: Guard) -> None:
    """A 503 whose (proxy) page is larger than max_response_bytes is still a retried
    InternalServerError keeping the start of the page, not a validation error."""
    page = b"<html>" + b"x" * 2_000_000 + b"</html>"
    async with (
        guard.server(reply(503, page, content_type="text/html")) as server,
        guard.client(server) as client,
    ):
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.InternalServerError)
    assert error.attempts == 3
    assert server.requests == {PATH: 3}


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (400, dnx.BadRequestError),
        (401, dnx.AuthenticationError),
        (403, dnx.PermissionDeniedError),
        (404, dnx.NotFoundError),
        (422, dnx.APIStatusError),
    ],
)
async def test_client_errors_are_not_retried(
    guard: Guard, code: int, kind: type[dnx.APIStatusError]
) -> None:
    """A 4xx other than 408/429 becomes its typed error after exactly one attempt."""
    async with (
        guard.server(status(code, x_request_id="req_1")) as server,
        guard.client(server) as client,
    ):
        error = await guard.fails(client.get_lead("lead_abc123"), kind)
    assert (error.status_code, error.request_id, error.attempts) == (code, "req_1", 1)
    assert error.message == f"injected {code}"
    assert server.requests == {PATH: 1}


# --- the connection -------------------------------------------------------------------------


async def test_connection_refused(guard: Guard) -> None:
    """A closed port is a retried APIConnectionError, max_retries + 1 attempts in all."""
    async with guard.client(f"http://127.0.0.1:{closed_port()}/v1") as client:
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.APIConnectionError)
        assert error.attempts == 3
        assert client.stats.requests == 3


_HEAD = head(200, {"Content-Type": "application/json", "Content-Length": str(len(LEAD_BODY))})
_SHORT = head(200, {"Content-Type": "application/json", "Content-Length": "1000"})
CONNECTION_FAULTS = {
    "reset-before-answer": reset(),
    "reset-mid-body": reset(after=_HEAD + LEAD_BODY[:20]),
    "close-without-answer": raw(b""),
    "close-after-headers": raw(_HEAD),
    "short-content-length": raw(_SHORT + LEAD_BODY),
    "garbage-status-line": raw(b"HTTP/1.1 banana\r\n\r\n"),
    "not-http": raw(b"\x16\x03\x01\x00\x05hello"),
    "bad-chunk-size": raw(head(200, {"Transfer-Encoding": "chunked"}) + b"zz\r\n{}\r\n0\r\n\r\n"),
    "conflicting-lengths": raw(
        head(200, {"Content-Length": str(len(LEAD_BODY))}).replace(b"\r\n\r\n", b"\r\n")
        + b"Content-Length: 3\r\n\r\n"
        + LEAD_BODY
    ),
    "negative-content-length": raw(head(200, {"Content-Length": "-1"}) + LEAD_BODY),
    "huge-header": raw(head(200, {"X-Padding": "a" * 100_000}) + LEAD_BODY),
    "bad-gzip": raw(
        head(200, {"Content-Encoding": "gzip", "Content-Length": "12"}) + b"not gzip!!!!"
    ),
}


@pytest.mark.parametrize("fault", CONNECTION_FAULTS.values(), ids=CONNECTION_FAULTS.keys())
async def test_connection_fault_forever(guard: Guard, fault: Any) -> None:
    """A fault on every attempt ends as APIConnectionError after max_retries + 1 attempts."""
    async with guard.server(fault) as server, guard.client(server) as client:
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.APIConnectionError)
    assert error.attempts == 3
    assert error.retryable
    assert server.requests == {PATH: 3}


@pytest.mark.parametrize("fault", CONNECTION_FAULTS.values(), ids=CONNECTION_FAULTS.keys())
async def test_connection_fault_once_is_retried(guard: Guard, fault: Any) -> None:
    """A single fault is invisible to the caller: the retry on a new connection succeeds."""
    async with guard.server(fault, reply()) as server, guard.client(server) as client:
        lead = await client.get_lead("lead_abc123")
    assert lead.id == "lead_abc123"
    assert server.requests == {PATH: 2}


def _chunked(body: bytes, size: int = 16) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


_GZIPPED = gzip.compress(LEAD_BODY)
QUIRKY_ANSWERS = {
    "http-1.0-close-delimited": b"HTTP/1.0 200 OK\r\n\r\n" + LEAD_BODY,
    "chunked": head(200, {"Transfer-Encoding": "chunked"}) + _chunked(LEAD_BODY),
    "gzip": head(200, {"Content-Encoding": "gzip", "Content-Length": str(len(_GZIPPED))})
    + _GZIPPED,
    "100-continue-first": b"HTTP/1.1 100 Continue\r\n\r\n" + _HEAD + LEAD_BODY,
}


@pytest.mark.parametrize("answer", QUIRKY_ANSWERS.values(), ids=QUIRKY_ANSWERS.keys())
async def test_unusual_but_valid_answers_parse(guard: Guard, answer: bytes) -> None:
    """Valid HTTP that a proxy may produce (HTTP/1.0, chunked, gzip, a 100 first) gives the
    lead after one attempt."""
    async with guard.server(raw(answer)) as server, guard.client(server) as client:
        lead = await client.get_lead("lead_abc123")
    assert lead.id == "lead_abc123"
    assert server.requests == {PATH: 1}


async def timed(call: Awaitable[Any]) -> tuple[Any, float]:
    """Await ``call`` and return its outcome (result or exception) and the wall time it took."""
    start = time.perf_counter()
    try:
        outcome = await call
    except Exception as error:
        outcome = error
    return outcome, time.perf_counter() - start


@pytest.mark.parametrize(
    "fault",
    [silence(), silence(_HEAD), trickle()],
    ids=["no-answer", "headers-then-silence", "slowloris-body"],
)
async def test_stall_ends_at_the_deadline(guard: Guard, fault: Any) -> None:
    """A server that stalls, even one trickling a byte at a time, costs each attempt exactly its
    deadline: APITimeoutError after max_retries + 1 attempts, wall time within the sum."""
    async with (
        guard.server(fault) as server,
        guard.client(server, max_retries=1, timeout=DEADLINE) as client,
    ):
        error, elapsed = await timed(client.get_lead("lead_abc123"))
    assert type(error) is dnx.APITimeoutError
    guard.check_error(error)
    assert error.attempts == 2
    assert server.requests == {PATH: 2}
    assert 2 * DEADLINE * 0.9 <= elapsed <= 2 * DEADLINE + MARGIN


async def test_server_announcing_close_after_every_answer_is_transparent(guard: Guard) -> None:
    """A server that sends ``Connection: close`` on every answer costs nothing: 30 sequential
    calls with retrying off all succeed, one request and one connection each."""
    step = reply(headers={"Connection": "close"}, close=True)
    async with guard.server(step) as server, guard.client(server, max_retries=0) as client:
        for i in range(30):
            assert (await client.get_lead(f"lead_{i}")).id == "lead_abc123"
    assert server.total == server.connections == 30
    assert all(count == 1 for count in server.requests.values())


async def test_server_silently_closing_after_every_answer_is_survived(guard: Guard) -> None:
    """A server that drops every keep-alive connection without saying so still answers each of
    30 sequential calls, and sees exactly one request per call."""
    async with guard.server(reply(close=True)) as server, guard.client(server) as client:
        for i in range(30):
            assert (await client.get_lead(f"lead_{i}")).id == "lead_abc123"
    assert server.total == server.connections == 30
    assert all(count == 1 for count in server.requests.values())


async def test_server_silently_closing_after_every_answer_is_transparent(guard: Guard) -> None:
    """A server that drops every keep-alive connection without saying so costs nothing: 30
    sequential calls with retrying off all succeed and no attempt is spent on a dead socket."""
    async with (
        guard.server(reply(close=True)) as server,
        guard.client(server, max_retries=0) as client,
    ):
        for i in range(30):
            assert (await client.get_lead(f"lead_{i}")).id == "lead_abc123"
        assert client.stats.requests == 30
    assert server.total == server.connections == 30


@pytest.mark.parametrize("max_retries", [0, 3])
async def test_a_server_resetting_every_pooled_request_sees_at_most_one_resend(
    guard: Guard, max_retries: int
) -> None:
    """Once the pool is full of keep-alive connections and the server resets every request it
    reads: one call reaches the server max_retries + 1 times plus exactly one resend, never a
    resend per pooled connection (it was 64 resends + 4 attempts), and its error counts the
    attempts alone."""
    pool = 8
    async with guard.server(*[reply()] * pool, reset()) as server:
        client = guard.client(server, max_retries=max_retries, max_concurrency=pool)
        async with client:
            warm = await asyncio.gather(*(client.get_lead(f"warm_{i}") for i in range(pool)))
            assert len(warm) == pool
            assert server.connections == pool  # every connection now waits in the pool
            error = await guard.fails(client.get_lead("lead_abc123"), dnx.APIConnectionError)
        assert server.requests[PATH] == max_retries + 2
        assert error.attempts == max_retries + 1
        assert client.stats.resends == 1
        assert client.stats.requests == pool + max_retries + 1


async def test_keep_alive_is_reused(guard: Guard) -> None:
    """A well-behaved server sees one connection for many sequential calls."""
    async with guard.server(reply()) as server, guard.client(server) as client:
        for i in range(10):
            await client.get_lead(f"lead_{i}")
    assert server.total == 10
    assert server.connections == 1


async def test_cancelling_a_call_closes_its_connection_and_keeps_the_client(guard: Guard) -> None:
    """Cancelling a call mid-request propagates CancelledError, drops its connection at once,
    and the same client serves the next call."""
    async with (
        guard.server(silence(_HEAD), reply()) as server,
        guard.client(server, timeout=30) as client,
    ):
        task = asyncio.ensure_future(client.get_lead("lead_1"))
        await until(lambda: server.total == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: server.open_connections == 0)
        assert (await client.get_lead("lead_2")).id == "lead_abc123"
    assert server.targets == ["/v1/campaigns-leads/lead_1", "/v1/campaigns-leads/lead_2"]


async def test_max_concurrency_bounds_open_connections(guard: Guard) -> None:
    """Twelve concurrent calls to a stalled server never hold more than max_concurrency
    connections, and each makes exactly one attempt."""
    async with (
        guard.server(silence()) as server,
        guard.client(server, max_retries=0, max_concurrency=4, timeout=DEADLINE) as client,
    ):
        calls = [client.get_lead(f"lead_{i}") for i in range(12)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for error in outcomes:
        assert type(error) is dnx.APITimeoutError
        guard.check_error(error)
    assert server.total == 12
    assert 2 <= server.peak_open <= 4


def _chain(error: BaseException) -> list[BaseException]:
    """Every exception reachable from ``error`` through __cause__ and __context__."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return seen


async def test_no_exception_reachable_from_an_error_holds_the_key(guard: Guard) -> None:
    """No exception chained to an SDK error, suppressed context included, shows the API key."""
    async with (
        guard.server(raw(b"HTTP/1.1 banana\r\n\r\n")) as server,
        guard.client(server, max_retries=0) as client,
    ):
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.APIConnectionError)
    assert server.total == 1
    for linked in _chain(error):
        assert SECRET not in repr(linked)
        assert SECRET not in str(linked)


# --- bodies ---------------------------------------------------------------------------------


async def test_html_502_from_a_proxy_is_retried_then_typed(guard: Guard) -> None:
    """A proxy's HTML 502 page is an InternalServerError keeping the page text, retried."""
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    async with (
        guard.server(reply(502, page, content_type="text/html")) as server,
        guard.client(server) as client,
    ):
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.InternalServerError)
    assert error.status_code == 502
    assert error.message == "Bad Gateway"
    assert error.body == page.decode()
    assert error.attempts == 3
    assert server.requests == {PATH: 3}


async def test_json_under_text_plain_is_accepted(guard: Guard) -> None:
    """Pinned: a 200 body is parsed as JSON whatever its Content-Type, so text/plain works."""
    async with (
        guard.server(reply(content_type="text/plain")) as server,
        guard.client(server) as client,
    ):
        lead = await client.get_lead("lead_abc123")
    assert lead.status == "completed"
    assert server.requests == {PATH: 1}


BAD_BODIES = {
    "truncated-json": LEAD_BODY[: len(LEAD_BODY) // 2],
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "5000-digit-integer": lead_body(metadata={"loan_amount": 0}).replace(b"0}", b"9" * 5000 + b"}"),
    "json-list": json.dumps([LEAD]).encode(),
    "missing-fields": lead_body(campaign_id=None, created_at=None),
    "bad-date": lead_body(created_at="2024-13-45T99:00:00.000Z"),
    "empty": b"",
    "html": b"<html><body>OK</body></html>",
    "not-utf8": lead_body(name="\udcff").replace(b"\\udcff", b"\xff"),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_a_200_that_is_not_a_lead(guard: Guard, body: bytes) -> None:
    """A 200 whose body is not a lead is a ResponseValidationError after one attempt."""
    async with guard.server(reply(200, body)) as server, guard.client(server) as client:
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.ResponseValidationError)
    assert error.status_code == 200
    assert error.attempts == 1
    assert server.requests == {PATH: 1}


async def test_unknown_status_parses(guard: Guard) -> None:
    """An undocumented status is kept as its string and compares equal to it."""
    async with (
        guard.server(reply(200, lead_body(status="voicemail"))) as server,
        guard.client(server) as client,
    ):
        lead = await client.get_lead("lead_abc123")
    assert lead.status == "voicemail"
    assert not isinstance(lead.status, dnx.LeadStatus)
    assert server.requests == {PATH: 1}


async def test_redirect_to_another_host_is_not_followed(guard: Guard) -> None:
    """A 302 to another host is an APIStatusError after one attempt; the other host sees nothing."""
    async with guard.server(reply()) as other:
        location = other.base_url + "/campaigns-leads/lead_abc123"
        async with (
            guard.server(reply(302, b"", headers={"Location": location})) as server,
            guard.client(server) as client,
        ):
            error = await guard.fails(client.get_lead("lead_abc123"), dnx.APIStatusError)
    assert error.status_code == 302
    assert location in error.message
    assert error.attempts == 1
    assert server.requests == {PATH: 1}
    assert other.total == 0
    assert other.connections == 0


async def peak_memory(call: Awaitable[Any]) -> tuple[Any, int]:
    """Await ``call`` under tracemalloc; its outcome (result or exception) and peak bytes."""
    tracemalloc.start()
    try:
        outcome = await call
    except Exception as error:
        outcome = error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return outcome, peak


@pytest.mark.parametrize(
    "step",
    [
        huge(100 * 1024 * 1024, declare_length=True),
        huge(100 * 1024 * 1024, declare_length=False),
        gzip_bomb(),
    ],
    ids=["100MB-declared", "100MB-undeclared", "gzip-bomb"],
)
async def test_oversized_body_is_refused_in_bounded_memory(guard: Guard, step: Any) -> None:
    """A 100 MB body or a gzip bomb ends as ResponseTooLargeError after one attempt, without
    the client holding more than a few megabytes at any moment."""
    async with guard.server(step) as server, guard.client(server) as client:
        error, peak = await peak_memory(client.get_lead("lead_abc123"))
    assert type(error) is dnx.ResponseTooLargeError
    guard.check_error(error)
    assert error.attempts == 1
    assert server.requests == {PATH: 1}
    assert peak < MEMORY_CEILING, f"peak {peak / 2**20:.1f} MiB"


# --- ids ------------------------------------------------------------------------------------

ID_CASES = {
    "dot-dot-slash": ("../admin", "..%2Fadmin"),
    "slash": ("a/b", "a%2Fb"),
    "question-mark": ("x?y", "x%3Fy"),
    "hash": ("x#y", "x%23y"),
    "percent": ("%2F", "%252F"),
    "space": ("a b", "a%20b"),
    "crlf-injection": ("x\r\nX-Injected: 1", "x%0D%0AX-Injected%3A%201"),
    "unreserved": ("lead-1_.~", "lead-1_.~"),
    "three-dots": ("...", "..."),
    "latin": ("lead_é", "lead_%C3%A9"),
    "cjk": ("リード", "%E3%83%AA%E3%83%BC%E3%83%89"),
    "emoji": ("📞", "%F0%9F%93%9E"),
}


@pytest.mark.parametrize(("lead_id", "segment"), ID_CASES.values(), ids=ID_CASES.keys())
async def test_id_is_sent_as_one_quoted_segment(guard: Guard, lead_id: str, segment: str) -> None:
    """Every id reaches the server as exactly one percent-encoded segment, byte for byte."""
    async with guard.server(reply()) as server, guard.client(server) as client:
        await client.get_lead(lead_id)
    assert server.targets == ["/v1/campaigns-leads/" + segment]
    assert "x-injected" not in server.headers[0]


@pytest.mark.parametrize(
    ("lead_id", "message"),
    [
        (".", "dot segment"),
        ("..", "dot segment"),
        ("", "must not be empty"),
        (None, "must be a str"),
        (42, "must be a str"),
        (b"lead_1", "must be a str"),
        ("lead_\ud800", "surrogate"),
    ],
    ids=["dot", "dot-dot", "empty", "none", "int", "bytes", "lone-surrogate"],
)
async def test_bad_id_raises_before_any_request(guard: Guard, lead_id: Any, message: str) -> None:
    """An id that cannot name a lead raises ValueError and the server sees nothing (a lone
    surrogate, which UTF-8 cannot encode, raises UnicodeEncodeError, a ValueError)."""
    async with guard.server(reply()) as server, guard.client(server) as client:
        with pytest.raises(ValueError, match=message):
            await client.get_lead(lead_id)
        assert client.stats.requests == 0
    assert server.total == 0
    assert server.connections == 0


async def test_connections_read_in_heap_sized_pieces_and_large_bodies_still_arrive(
    guard: Guard,
) -> None:
    """The client's own connections ask for ``RECV_SIZE`` bytes per read (not asyncio's
    256 KiB, which costs an mmap per read), and a body several reads long arrives whole."""
    padding = "x" * (3 * RECV_SIZE + 123)
    body = json.dumps({**LEAD, "notes": {"padding": padding}}).encode()
    async with (
        guard.server(reply(body=body)) as server,
        guard.client(server, max_response_bytes=len(body)) as client,
    ):
        lead = await client.get_lead("lead_1")
        assert lead.notes == {"padding": padding}
        connector = client._transport.session().connector
        assert connector is not None
        transports = [proto.transport for proto, _ in _pooled_protocols(connector)]
        assert transports
        assert all(transport.max_size == RECV_SIZE for transport in transports)


def _pooled_protocols(connector: Any) -> list[tuple[Any, float]]:
    """The (protocol, released-at) pairs the connector keeps for reuse."""
    return [item for queue in connector._conns.values() for item in queue]


async def test_each_task_has_its_own_pooled_connection_marker() -> None:
    """The marker that says whether a request got a pooled connection is one per task:
    reused (and cleared) by that task's next request, never shared with a child task that
    inherited its context."""
    first = _task_marker()
    first.reused = True
    again = _task_marker()
    assert again is first
    assert again.reused is False

    async def child() -> Any:
        return _task_marker()

    inherited = await asyncio.create_task(child())
    assert inherited is not first
    assert _task_marker() is first
