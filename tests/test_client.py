"""AsyncDialNexa against aioresponses: configuration, error mapping, retries, secrecy."""

from __future__ import annotations

import asyncio
import logging
import re

import aiohttp
import pytest
from aioresponses import aioresponses
from multidict import CIMultiDict

import dialnexa_async as dnx

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
    assert len(clock.sleeps) == 2


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


async def test_ratelimit_reset_stands_in_for_retry_after_on_429(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, clock: dnx.VirtualClock
) -> None:
    """Without Retry-After, a 429's x-ratelimit-reset is the wait."""
    mock_api.get(
        LEAD_URL, status=429, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "3"}
    )
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    await client.get_lead("lead_abc123")
    assert sum(clock.sleeps) == pytest.approx(3.0)
    assert clock.monotonic() == pytest.approx(3.0)


async def test_bare_429_waits_out_the_client_wide_pause(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, clock: dnx.VirtualClock
) -> None:
    """Hintless 429s back off as one client: 0.1 s, then 0.2 s, doubling while they continue."""
    for _ in range(2):
        mock_api.get(LEAD_URL, status=429, body="<html>slow down</html>", content_type="text/html")
    mock_api.get(LEAD_URL, payload=LEAD_BODY)
    await client.get_lead("lead_abc123")
    assert clock.sleeps == [pytest.approx(0.1), pytest.approx(0.2)]
    assert request_count(mock_api) == 3


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
        # The client as a whole is paused now: the next call fails without a request.
        with pytest.raises(dnx.RateLimitError) as again:
            await client.get_lead("lead_2")
        assert again.value.retry_after is not None
        assert again.value.retry_after > 3500
        assert request_count(mock_api) == 1
    assert clock.sleeps == []


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
