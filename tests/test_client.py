"""AsyncDialNexa against aioresponses: configuration, error mapping, retries, refusals, secrecy."""

from __future__ import annotations

import asyncio
import logging
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import attrs
import pytest
from multidict import CIMultiDict

import dialnexa_async as dnx
from dialnexa_async._rate_control import BARE_HOLD_INITIAL
from dialnexa_async._sansio.answer import Answer
from dialnexa_async.testing import aioresponses

from .conftest import API_KEY, BASE_URL, LEAD_BODY, LEAD_URL, envelope, request_count


async def test_get_lead_parses_the_schema_form(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """A 200 becomes a Lead with the documented fields."""
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    lead = await client.get_lead("lead_abc123")
    assert lead.id == "lead_abc123"
    assert lead.status == dnx.LeadStatus.COMPLETED
    assert lead.notes == {"loan_amount": "250000", "product": "home_loan"}
    assert request_count(mock_api) == 1


async def test_request_carries_auth_accept_and_user_agent(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """The request is a GET of the quoted id with bearer auth, JSON accept and our agent."""
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    await client.get_lead("a/b?c")
    (((method, url), calls),) = mock_api.requests.items()
    assert method == "GET"
    assert str(url) == f"{BASE_URL}/campaigns-leads/a%2Fb%3Fc"
    headers = calls[0].kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("dialnexa-async/")
    assert calls[0].kwargs["allow_redirects"] is False


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, dnx.BadRequestError),
        (401, dnx.AuthenticationError),
        (403, dnx.PermissionDeniedError),
        (404, dnx.NotFoundError),
        (422, dnx.APIStatusError),
    ],
)
async def test_client_errors_are_typed_and_not_retried(
    client: dnx.AsyncDialNexa,
    mock_api: aioresponses,
    status: int,
    error_type: type[dnx.APIStatusError],
) -> None:
    """Each 4xx maps to its error after exactly one attempt, with envelope message and id."""
    mock_api.get(
        LEAD_URL,
        status=status,
        body=envelope(status, ["first problem", "second problem"]),
        headers={"x-request-id": "req_42"},
        repeat=True,
    )
    with pytest.raises(error_type) as caught:
        await client.get_lead("lead_1")
    error = caught.value
    assert type(error) is error_type
    assert error.status_code == status
    assert error.message == "first problem; second problem"
    assert error.request_id == "req_42"
    assert error.attempts == 1
    assert request_count(mock_api) == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried_then_succeed(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, clock: dnx.VirtualClock, status: int
) -> None:
    """A retryable status twice, then a 200: three attempts and a lead."""
    mock_api.get(LEAD_URL, status=status, body=envelope(status, "try later"))
    mock_api.get(LEAD_URL, status=status, body="<html>gateway</html>", content_type="text/html")
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    lead = await client.get_lead("lead_abc123")
    assert lead.id == "lead_abc123"
    assert request_count(mock_api) == 3
    assert client.stats.retries == 2
    # A wait before each retry (a hintless 429's retry sleeps its backoff, then what is left
    # of the client's hold).
    assert len([s for s in clock.sleeps if s > 0]) in ((2,) if status != 429 else (2, 3, 4))


async def test_retries_stop_at_max_retries(clock: dnx.VirtualClock, mock_api: aioresponses) -> None:
    """5xx forever ends with InternalServerError after max_retries + 1 attempts."""
    mock_api.get(LEAD_URL, status=503, body=envelope(503, "down"), repeat=True)
    async with dnx.AsyncDialNexa(
        api_key=API_KEY, base_url=BASE_URL, max_retries=2, clock=clock
    ) as client:
        with pytest.raises(dnx.InternalServerError) as caught:
            await client.get_lead("lead_1")
    assert caught.value.attempts == 3
    assert request_count(mock_api) == 3


async def test_max_retries_zero_turns_retrying_off(
    clock: dnx.VirtualClock, mock_api: aioresponses
) -> None:
    """With max_retries=0 a 503 is final after one attempt and nothing is slept."""
    mock_api.get(LEAD_URL, status=503, repeat=True)
    async with dnx.AsyncDialNexa(
        api_key=API_KEY, base_url=BASE_URL, max_retries=0, clock=clock
    ) as client:
        with pytest.raises(dnx.InternalServerError):
            await client.get_lead("lead_1")
    assert request_count(mock_api) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "exception",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientConnectionResetError("reset"),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientPayloadError("truncated"),
        aiohttp.ServerTimeoutError("read timeout"),
        asyncio.TimeoutError(),
    ],
)
async def test_connection_faults_are_retried(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, exception: Exception
) -> None:
    """Disconnects, resets, truncated payloads and timeouts are retried until a 200."""
    mock_api.get(LEAD_URL, exception=exception)
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    lead = await client.get_lead("lead_abc123")
    assert lead.id == "lead_abc123"
    assert request_count(mock_api) == 2
    assert client.stats.connection_errors == 1


async def test_connection_fault_forever_is_a_typed_error(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """A fault that never clears ends as APIConnectionError with the attempts counted."""
    mock_api.get(LEAD_URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)
    with pytest.raises(dnx.APIConnectionError) as caught:
        await client.get_lead("lead_1")
    assert caught.value.attempts == 4
    assert request_count(mock_api) == 4


async def test_timeout_forever_is_an_api_timeout_error(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """Timeouts map to APITimeoutError, which is also an asyncio.TimeoutError."""
    mock_api.get(LEAD_URL, exception=asyncio.TimeoutError(), repeat=True)
    with pytest.raises(dnx.APITimeoutError) as caught:
        await client.get_lead("lead_1")
    assert isinstance(caught.value, asyncio.TimeoutError)
    assert isinstance(caught.value, dnx.APIConnectionError)


async def test_retry_after_is_slept(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, clock: dnx.VirtualClock
) -> None:
    """A 429 with Retry-After: 7 waits exactly seven seconds before the next attempt."""
    mock_api.get(LEAD_URL, status=429, headers={"Retry-After": "7"})
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    await client.get_lead("lead_abc123")
    assert clock.sleeps == [7.0]
    assert client.stats.rate_limited == 1


EPOCH_IN_3S = int(dnx.VirtualClock().time()) + 3
"""Three seconds after a fresh VirtualClock's start, as a POSIX timestamp."""


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "3"}, id="x-delta"),
        pytest.param(
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(EPOCH_IN_3S)}, id="x-epoch"
        ),
        pytest.param(
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": f"{EPOCH_IN_3S}000"},
            id="x-epoch-ms",
        ),
        pytest.param(
            {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(EPOCH_IN_3S)},
            id="twitter-epoch",
        ),
        pytest.param(
            {"ratelimit-limit": "5", "ratelimit-remaining": "0", "ratelimit-reset": "3"},
            id="draft-6",
        ),
        pytest.param({"ratelimit": "limit=5, remaining=0, reset=3"}, id="draft-7"),
        pytest.param(
            {"ratelimit": '"default";r=0;t=3', "ratelimit-policy": '"default";q=5;w=3'},
            id="draft-8",
        ),
    ],
)
async def test_ratelimit_reset_stands_in_for_retry_after_on_429(
    client: dnx.AsyncDialNexa,
    mock_api: aioresponses,
    clock: dnx.VirtualClock,
    headers: dict[str, str],
) -> None:
    """Without Retry-After, a 429's reset in any dialect is the wait; an epoch is never slept
    as a number of seconds."""
    mock_api.get(LEAD_URL, status=429, headers=headers)
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    await client.get_lead("lead_abc123")
    assert sum(clock.sleeps) == pytest.approx(3.0)
    assert clock.monotonic() == pytest.approx(3.0)


async def test_bare_429_holds_the_client_and_its_retry_waits_the_whole_hold(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, clock: dnx.VirtualClock
) -> None:
    """A hintless 429 holds the client BARE_HOLD_INITIAL, doubling while refusals go on; a
    retry never goes out as the hold's probe (a refused probe would cost its call an attempt),
    so each retry waits for the whole hold, and for its own jittered backoff at least."""
    client._policy = attrs.evolve(client._policy, rand=lambda: 0.1)  # backoffs 0.05, then 0.1
    for _ in range(2):
        mock_api.get(LEAD_URL, status=429, body="<html>slow down</html>", content_type="text/html")
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    await client.get_lead("lead_abc123")
    assert request_count(mock_api) == 3
    hold = client._rate.bare_hold
    assert hold.count == 2
    assert hold.shortened == 0  # no probe went out
    # Each retry: tenacity's backoff, then the rest of the hold, the second twice the first.
    assert clock.sleeps == pytest.approx(
        [0.05, BARE_HOLD_INITIAL - 0.05, 0.1, 2 * BARE_HOLD_INITIAL - 0.1]
    )
    assert clock.monotonic() == pytest.approx(3 * BARE_HOLD_INITIAL)


async def test_a_bare_429_retry_backs_off_even_when_nothing_holds_the_client(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, clock: dnx.VirtualClock
) -> None:
    """With no hold in force (here: holds distrusted), a refused call still backs off
    exponentially instead of resending at once until its attempts are gone."""
    client._rate.bare_hold.trusted = False
    client._policy = attrs.evolve(client._policy, rand=lambda: 0.5)
    for _ in range(3):
        mock_api.get(LEAD_URL, status=429, body="", content_type="text/plain")
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    await client.get_lead("lead_abc123")
    assert request_count(mock_api) == 4
    assert clock.sleeps == pytest.approx([0.25, 0.5, 1.0])


async def test_5xx_backoff_is_jittered_and_doubles(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, clock: dnx.VirtualClock
) -> None:
    """Without a server-given wait, a 5xx waits a full-jitter draw under 0.5, 1, 2 s ceilings."""
    for _ in range(3):
        mock_api.get(LEAD_URL, status=500)
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    await client.get_lead("lead_abc123")
    assert len(clock.sleeps) == 3
    for sleep, ceiling in zip(clock.sleeps, [0.5, 1.0, 2.0], strict=True):
        assert 0.0 <= sleep <= ceiling


async def test_server_wait_over_max_retry_wait_fails_at_once(
    clock: dnx.VirtualClock, mock_api: aioresponses
) -> None:
    """A Retry-After longer than max_retry_wait is not slept: RateLimitError carries it."""
    mock_api.get(LEAD_URL, status=429, headers={"Retry-After": "3600"}, repeat=True)
    async with dnx.AsyncDialNexa(
        api_key=API_KEY, base_url=BASE_URL, max_retry_wait=60, clock=clock
    ) as client:
        with pytest.raises(dnx.RateLimitError) as caught:
            await client.get_lead("lead_1")
        assert caught.value.retry_after == 3600.0
        assert caught.value.attempts == 1
        assert request_count(mock_api) == 1
        assert not caught.value.refused_by_client
        # The client as a whole is paused now: the next call fails without a request.
        with pytest.raises(dnx.RateLimitError) as again:
            await client.get_lead("lead_2")
        assert again.value.refused_by_client
        assert again.value.attempts == 0
        assert again.value.retry_after is not None
        assert again.value.retry_after > 3500
        assert request_count(mock_api) == 1
        stats = client.stats
        assert (stats.requests, stats.rate_limited, stats.refused) == (1, 1, 1)
    assert clock.sleeps == []


async def test_a_call_the_client_withholds_sends_nothing(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """A call made while the client is paused past max_retry_wait is refused by the client
    itself: no request, attempts 0, counted as refused and not as a server 429."""
    rate = client._rate
    earlier = rate.try_acquire()
    assert earlier is not None
    rate.observe(Answer(429, None, 3600.0), earlier)  # an hour's pause, from another process
    mock_api.get(LEAD_URL, payload=LEAD_BODY, repeat=True)
    with pytest.raises(dnx.RateLimitError) as caught:
        await client.get_lead("lead_1")
    error = caught.value
    assert error.refused_by_client
    assert error.attempts == 0
    assert error.status_code == 429
    assert error.retry_after is not None
    assert error.retry_after > 60
    assert str(error).startswith("the client withheld the request")
    assert "refused_by_client=True" in repr(error)
    assert pickle.loads(pickle.dumps(error)).refused_by_client
    assert request_count(mock_api) == 0
    counts = client.stats.as_dict()
    assert (counts["requests"], counts["refused"], counts["rate_limited"]) == (0, 1, 0)
    assert "refused=1" in repr(client.stats)


async def test_a_429_then_a_withheld_retry_counts_each_once(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, clock: dnx.VirtualClock
) -> None:
    """A 429 whose window ends past max_retry_wait, retried after its short Retry-After, ends
    in the client's own refusal: one attempt sent, one server 429, one refusal."""
    window_end = str(int(clock.time()) + 3600)  # GitHub's epoch form
    mock_api.get(
        LEAD_URL,
        status=429,
        headers={"Retry-After": "1", "x-ratelimit-remaining": "0", "x-ratelimit-reset": window_end},
    )
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    with pytest.raises(dnx.RateLimitError) as caught:
        await client.get_lead("lead_1")
    error = caught.value
    assert error.refused_by_client
    assert error.attempts == 1
    assert error.retry_after is not None
    assert 3500 < error.retry_after <= 3600
    assert request_count(mock_api) == 1
    stats = client.stats
    assert (stats.requests, stats.rate_limited, stats.refused) == (1, 1, 1)
    assert clock.sleeps == [1.0]


SPENT_QUOTA = {"x-ratelimit-limit": "5", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "30"}
"""The API's documented headers saying the quota is spent for 30 s."""


async def _sleeps_after_a_200_with(headers: dict[str, str]) -> list[float]:
    """What a second call sleeps after a first call's 200 carried ``headers``."""
    clock = dnx.VirtualClock()
    with aioresponses() as mocked:
        mocked.get(LEAD_URL, payload=LEAD_BODY, headers=headers)
        mocked.get(LEAD_URL, payload=LEAD_BODY)
        async with dnx.AsyncDialNexa(api_key=API_KEY, base_url=BASE_URL, clock=clock) as client:
            await client.get_lead("lead_1")
            assert clock.sleeps == []
            await client.get_lead("lead_2")
    return clock.sleeps


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            {**SPENT_QUOTA, "x-ratelimit-reset": str(int(dnx.VirtualClock().time()) + 30)},
            id="github-epoch",
        ),
        pytest.param(
            {"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "30"},
            id="draft-6",
        ),
        pytest.param({"RateLimit": "limit=5, remaining=0, reset=30"}, id="draft-7"),
        pytest.param(
            {"RateLimit": '"default";r=0;t=30', "RateLimit-Policy": '"default";q=5;w=30'},
            id="draft-8",
        ),
    ],
)
async def test_every_dialect_on_a_200_reaches_rate_control(headers: dict[str, str]) -> None:
    """A 200 saying in any dialect that the quota is spent for 30 s holds the next call
    exactly as the API's own x-ratelimit-* headers do."""
    expected = await _sleeps_after_a_200_with(SPENT_QUOTA)
    assert expected
    assert await _sleeps_after_a_200_with(headers) == pytest.approx(expected)


async def test_429_forever_ends_as_rate_limit_error(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """Rate limiting that never lifts ends as RateLimitError after every attempt."""
    mock_api.get(LEAD_URL, status=429, headers={"Retry-After": "1"}, repeat=True)
    with pytest.raises(dnx.RateLimitError) as caught:
        await client.get_lead("lead_1")
    assert caught.value.retry_after == 1.0
    assert caught.value.attempts == 4
    assert request_count(mock_api) == 4


async def test_redirect_is_not_followed(client: dnx.AsyncDialNexa, mock_api: aioresponses) -> None:
    """A 302 is an APIStatusError after one attempt; the other host is never asked."""
    mock_api.get(LEAD_URL, status=302, headers={"Location": "https://evil.example/x"})
    mock_api.get("https://evil.example/x", payload=LEAD_BODY)
    with pytest.raises(dnx.APIStatusError) as caught:
        await client.get_lead("lead_1")
    assert caught.value.status_code == 302
    assert "evil.example" in caught.value.message
    assert request_count(mock_api) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "JSON"),
        ("[1, 2, 3]", "list"),
        ('{"id": "lead_1"}', "campaign_id"),
        ("", "JSON"),
    ],
)
async def test_a_200_that_is_not_a_lead_is_a_validation_error(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, body: str, fragment: str
) -> None:
    """Bad JSON or a wrong shape in a 200 fails that call only, once, naming the problem."""
    mock_api.get(LEAD_URL, body=body, headers={"x-request-id": "req_7"}, repeat=True)
    with pytest.raises(dnx.ResponseValidationError) as caught:
        await client.get_lead("lead_1")
    assert fragment in str(caught.value)
    assert caught.value.request_id == "req_7"
    assert caught.value.attempts == 1
    assert request_count(mock_api) == 1


async def test_oversized_body_is_refused(clock: dnx.VirtualClock, mock_api: aioresponses) -> None:
    """A body over max_response_bytes fails with ResponseTooLargeError and is not retried."""
    mock_api.get(LEAD_URL, body=b"x" * 5000, repeat=True)
    async with dnx.AsyncDialNexa(
        api_key=API_KEY, base_url=BASE_URL, max_response_bytes=1000, clock=clock
    ) as client:
        with pytest.raises(dnx.ResponseTooLargeError):
            await client.get_lead("lead_1")
    assert request_count(mock_api) == 1


@pytest.mark.parametrize("bad", ["", ".", "..", None, 7])
async def test_bad_id_raises_before_any_request(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, bad: object
) -> None:
    """Invalid ids raise ValueError and send nothing."""
    with pytest.raises(ValueError, match="lead id"):
        await client.get_lead(bad)  # type: ignore[arg-type]
    assert request_count(mock_api) == 0


async def test_cancellation_propagates_and_is_not_retried(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """Cancelling a call mid-request cancels it; tenacity does not retry CancelledError."""
    started = asyncio.Event()

    async def slow(url: object, **kwargs: object) -> None:
        started.set()
        await asyncio.sleep(3600)

    mock_api.get(LEAD_URL, callback=slow, repeat=True)
    task = asyncio.create_task(client.get_lead("lead_1"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert request_count(mock_api) == 1
    assert client.stats.retries == 0


async def test_api_key_from_environment(
    monkeypatch: pytest.MonkeyPatch, mock_api: aioresponses
) -> None:
    """DIALNEXA_API_KEY and DIALNEXA_BASE_URL configure a client given no arguments."""
    monkeypatch.setenv("DIALNEXA_API_KEY", "env_key:secret")
    monkeypatch.setenv("DIALNEXA_BASE_URL", "https://env.dialnexa.test/v1/")
    mock_api.get(
        re.compile(r"^https://env\.dialnexa\.test/v1/campaigns-leads/x$"), payload=LEAD_BODY
    )
    async with dnx.AsyncDialNexa() as client:
        assert client.base_url == "https://env.dialnexa.test/v1"
        await client.get_lead("x")
    ((_, calls),) = mock_api.requests.items()
    assert calls[0].kwargs["headers"]["Authorization"] == "Bearer env_key:secret"


def test_missing_api_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an argument or environment variable, construction fails with DialNexaError."""
    monkeypatch.delenv("DIALNEXA_API_KEY", raising=False)
    with pytest.raises(dnx.DialNexaError, match="DIALNEXA_API_KEY"):
        dnx.AsyncDialNexa()


def test_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit arguments take precedence over the environment."""
    monkeypatch.setenv("DIALNEXA_BASE_URL", "https://env.example/v1")
    client = dnx.AsyncDialNexa(api_key="k", base_url="https://arg.example/v1")
    assert client.base_url == "https://arg.example/v1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"max_retries": -1},
        {"max_concurrency": 0},
        {"rate_limit": 0},
        {"max_response_bytes": 0},
        {"base_url": "ftp://x"},
    ],
)
def test_out_of_range_arguments_are_value_errors(kwargs: dict[str, object]) -> None:
    """Nonsense configuration fails at construction."""
    with pytest.raises(ValueError, match="must"):
        dnx.AsyncDialNexa(api_key="k", **kwargs)  # type: ignore[arg-type]


async def test_closed_client_refuses_work_and_close_is_idempotent(mock_api: aioresponses) -> None:
    """After close() a call raises DialNexaError; closing again is harmless."""
    client = dnx.AsyncDialNexa(api_key=API_KEY, base_url=BASE_URL)
    await client.close()
    await client.close()
    assert client.closed
    with pytest.raises(dnx.DialNexaError, match="closed"):
        await client.get_lead("lead_1")
    assert request_count(mock_api) == 0


async def test_external_session_is_used_and_never_closed(mock_api: aioresponses) -> None:
    """A caller's session carries the requests and stays open after the client closes."""
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    async with aiohttp.ClientSession() as session:
        async with dnx.AsyncDialNexa(api_key=API_KEY, base_url=BASE_URL, session=session) as c:
            await c.get_lead("lead_abc123")
        assert not session.closed
    assert request_count(mock_api) == 1
    ((_, calls),) = mock_api.requests.items()
    assert calls[0].kwargs["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert calls[0].kwargs["headers"]["User-Agent"].startswith("dialnexa-async/")


async def test_session_is_created_lazily_inside_the_loop() -> None:
    """Constructing a client opens nothing; closing an unused one is fine."""
    client = dnx.AsyncDialNexa(api_key=API_KEY, base_url=BASE_URL)
    assert client._transport._session is None
    await client.close()


async def test_api_key_never_leaks(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither repr, str of errors, nor any DEBUG log record contains the API key."""
    caplog.set_level(logging.DEBUG)
    mock_api.get(LEAD_URL, status=503, body=envelope(503, "down"))
    mock_api.get(LEAD_URL, exception=aiohttp.ServerDisconnectedError())
    mock_api.get(LEAD_URL, status=401, body=envelope(401, "Invalid API key"))
    with pytest.raises(dnx.AuthenticationError) as caught:
        await client.get_lead("lead_1")
    texts = [repr(client), str(caught.value), repr(caught.value), repr(client.stats)]
    texts += [record.getMessage() for record in caplog.records]
    assert any("retrying" in text for text in texts)
    for text in texts:
        assert "s3cr3t" not in text


async def test_retries_are_logged_with_status_attempt_and_wait(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry logs on 'dialnexa_async': 429 at INFO, 5xx at WARNING, with attempt and wait."""
    caplog.set_level(logging.INFO, logger="dialnexa_async")
    mock_api.get(LEAD_URL, status=429, headers={"Retry-After": "2"})
    mock_api.get(LEAD_URL, status=502)
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    await client.get_lead("lead_abc123")
    records = [r for r in caplog.records if r.name == "dialnexa_async"]
    assert [r.levelno for r in records] == [logging.INFO, logging.WARNING]
    assert "HTTP 429 (attempt 1) in 2.00s" in records[0].getMessage()
    assert "HTTP 502 (attempt 2)" in records[1].getMessage()


def test_error_headers_are_case_insensitive() -> None:
    """Status errors read x-request-id whatever its case (CIMultiDict)."""
    from dialnexa_async._sansio.classify import status_error

    error = status_error(404, CIMultiDict({"X-Request-Id": "r1"}), b"", now=0.0)
    assert error.request_id == "r1"


def test_type_checkers_flag_a_bare_string_given_to_the_bulk_calls(tmp_path: Path) -> None:
    """mypy (with PEP 702's deprecated check on) reports get_leads("x") and iter_leads("x"),
    and accepts a list of ids: the annotations say what the runtime TypeError says."""
    user_code = tmp_path / "user_code.py"
    user_code.write_text(
        textwrap.dedent(
            """
            import dialnexa_async as dnx

            async def good(client: dnx.AsyncDialNexa) -> None:
                results: list[dnx.LeadResult] = await client.get_leads(["lead_1"])
                async for result in client.iter_leads(("lead_1", "lead_2")):
                    print(result.ok, results)

            async def bare(client: dnx.AsyncDialNexa) -> None:
                await client.get_leads("lead_1")

            def bare_iter(client: dnx.AsyncDialNexa) -> None:
                client.iter_leads("lead_1")
            """
        )
    )
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--enable-error-code",
            "deprecated",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(user_code),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["10", "13"], checked.stdout
    for line in errors:
        assert line.endswith("[deprecated]")
        assert "a bare str is one id, not many" in line
