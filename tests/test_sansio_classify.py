"""Classifying answers: which error, which message, retry or not, and how long to wait."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict

import dialnexa_async as dnx
from dialnexa_async._sansio.backoff import full_jitter, retry_wait
from dialnexa_async._sansio.classify import (
    envelope_message,
    exceeds_max_wait,
    is_retryable,
    status_error,
)

NOW = 1_700_000_000.0


def _envelope(status: int, message: object, error: str = "Error") -> bytes:
    return json.dumps({"statusCode": status, "message": message, "error": error}).encode()


@pytest.mark.parametrize(
    ("status", "error_type", "retry"),
    [
        (301, dnx.APIStatusError, False),
        (302, dnx.APIStatusError, False),
        (400, dnx.BadRequestError, False),
        (401, dnx.AuthenticationError, False),
        (403, dnx.PermissionDeniedError, False),
        (404, dnx.NotFoundError, False),
        (405, dnx.APIStatusError, False),
        (408, dnx.APIStatusError, True),
        (409, dnx.APIStatusError, False),
        (422, dnx.APIStatusError, False),
        (429, dnx.RateLimitError, True),
        (500, dnx.InternalServerError, True),
        (501, dnx.InternalServerError, False),
        (502, dnx.InternalServerError, True),
        (503, dnx.InternalServerError, True),
        (504, dnx.InternalServerError, True),
        (505, dnx.InternalServerError, False),
    ],
)
def test_status_maps_to_error_type_and_retry_decision(
    status: int, error_type: type[dnx.APIStatusError], retry: bool
) -> None:
    """Each status becomes its typed error; only 408, 429, 500, 502, 503, 504 are retried."""
    error = status_error(status, CIMultiDict(), _envelope(status, "boom"), now=NOW, attempts=2)
    assert type(error) is error_type
    assert error.status_code == status
    assert error.attempts == 2
    assert is_retryable(error) is retry


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_envelope(404, "Lead not found", "Not Found"), "Lead not found"),
        (
            _envelope(400, ["id must be a string", "id too long"]),
            "id must be a string; id too long",
        ),
        (_envelope(400, [], "Bad Request"), "Bad Request"),
        (b"<html><body>502 Bad Gateway</body></html>", "Bad Gateway"),
        (b"", "Bad Gateway"),
        (b'{"unexpected": true}', "Bad Gateway"),
        (b"[1, 2", "Bad Gateway"),
    ],
)
def test_message_comes_from_envelope_else_status_line(body: bytes, message: str) -> None:
    """The envelope's message (lists joined) wins; HTML, empty or foreign bodies fall back."""
    error = status_error(502, CIMultiDict(), body, now=NOW)
    assert error.message == message


def test_error_keeps_body_request_id_and_redirect_target() -> None:
    """A redirect is an error naming where it pointed, with the request id and decoded body."""
    headers = CIMultiDict({"Location": "https://evil.example/steal", "x-request-id": "req_9"})
    error = status_error(302, headers, b"", now=NOW)
    assert "redirect not followed" in error.message
    assert "https://evil.example/steal" in error.message
    assert error.request_id == "req_9"
    assert error.body is None
    not_found = status_error(404, CIMultiDict(), _envelope(404, "gone"), now=NOW)
    assert not_found.body == {"statusCode": 404, "message": "gone", "error": "Error"}


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        (429, {"Retry-After": "3"}, 3.0),
        (429, {"Retry-After": "garbage", "x-ratelimit-reset": "7"}, 7.0),
        (429, {"x-ratelimit-reset": "12", "x-ratelimit-remaining": "0"}, 12.0),
        (429, {}, None),
        (503, {"Retry-After": "2"}, 2.0),
        (503, {"x-ratelimit-reset": "12"}, None),
        (500, {}, None),
    ],
)
def test_server_given_wait(status: int, headers: dict[str, str], retry_after: float | None) -> None:
    """Retry-After is honoured on any status; x-ratelimit-reset only stands in on a 429."""
    error = status_error(status, CIMultiDict(headers), b"", now=NOW)
    assert error.retry_after == retry_after


def test_connection_errors_are_retryable_unless_marked_otherwise() -> None:
    """Connection faults and timeouts are retried; a TLS trust failure is not."""
    assert is_retryable(dnx.APIConnectionError("reset"))
    assert is_retryable(dnx.APITimeoutError("slow"))
    assert not is_retryable(dnx.APIConnectionError("bad certificate", retryable=False))


@pytest.mark.parametrize(
    "error",
    [
        dnx.ResponseValidationError("not a lead"),
        dnx.DialNexaError("closed"),
        ValueError("bad id"),
        KeyboardInterrupt(),
    ],
)
def test_everything_else_is_never_retried(error: BaseException) -> None:
    """Validation errors, plain SDK errors and foreign exceptions are final."""
    assert not is_retryable(error)


def test_cancellation_is_never_retried() -> None:
    """CancelledError is final even though tenacity would catch it."""
    import asyncio

    assert not is_retryable(asyncio.CancelledError())


def test_long_server_wait_is_not_slept() -> None:
    """A server-given wait over the maximum is flagged so the call fails at once."""
    error = dnx.RateLimitError("slow down", status_code=429, retry_after=3600.0)
    assert exceeds_max_wait(error, 60.0)
    assert not exceeds_max_wait(error, 7200.0)
    assert not exceeds_max_wait(dnx.RateLimitError("x", status_code=429), 60.0)


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (10_000, 8.0)],
)
def test_full_jitter_ceiling_doubles_then_caps(attempt: int, ceiling: float) -> None:
    """The jitter range doubles per attempt and never exceeds the maximum."""
    assert full_jitter(attempt, 0.5, 8.0, lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)
    assert full_jitter(attempt, 0.5, 8.0, lambda: 0.0) == 0.0


def test_retry_wait_prefers_the_server_word() -> None:
    """A server-given wait replaces the backoff; without one, backoff applies."""
    told = dnx.InternalServerError("busy", status_code=503, retry_after=4.0)
    untold = dnx.InternalServerError("busy", status_code=503)
    assert retry_wait(told, 1, initial=0.5, maximum=8.0, rand=lambda: 0.5) == 4.0
    assert retry_wait(untold, 3, initial=0.5, maximum=8.0, rand=lambda: 0.5) == 1.0


def test_envelope_message_ignores_non_envelopes() -> None:
    """Only a mapping with a message or error string gives a message."""
    assert envelope_message(["not", "a", "mapping"]) is None
    assert envelope_message({"message": 5}) is None
    assert envelope_message({"message": None, "error": "Forbidden"}) == "Forbidden"


@pytest.mark.parametrize(
    ("body", "route_missing"),
    [
        (_envelope(404, "Cannot GET /campaigns-leads/lead_1", "Not Found"), True),
        (_envelope(404, "Cannot HEAD /v2/campaigns-leads/x", "Not Found"), True),
        (
            b"<!DOCTYPE html><html><body><pre>Cannot GET /campaigns-leads/x</pre></body></html>",
            True,
        ),
        (_envelope(404, "Lead not found", "Not Found"), False),
        (_envelope(404, "Cannot find lead lead_1", "Not Found"), False),
        (_envelope(404, ["Cannot GET /x", "and more"], "Not Found"), True),
        (b"<html><body><h1>404 Not Found</h1><hr>nginx</body></html>", False),
        (b"", False),
    ],
    ids=[
        "nestjs",
        "nestjs-head",
        "express-html",
        "missing-lead",
        "lead-message-saying-cannot",
        "list-message",
        "nginx-page",
        "empty",
    ],
)
def test_a_404_for_an_unknown_route_is_told_from_a_missing_lead(
    body: bytes, route_missing: bool
) -> None:
    """A 404 whose body is a server's unknown-route answer ("Cannot GET /path") is a
    RouteNotFoundError, still a NotFoundError; any other 404, whose body says nothing of the
    route (a missing lead, a bare proxy page), stays a plain NotFoundError."""
    error = status_error(404, CIMultiDict({"x-request-id": "req_9"}), body, now=NOW, attempts=1)
    assert isinstance(error, dnx.NotFoundError)
    assert (type(error) is dnx.RouteNotFoundError) is route_missing
    assert error.status_code == 404
    assert error.request_id == "req_9"
    assert error.attempts == 1
    assert not is_retryable(error)
    if route_missing:
        assert "check base_url" in str(error)


@pytest.mark.parametrize(
    ("headers", "is_reset"),
    [
        ({"x-ratelimit-reset": "7", "x-ratelimit-remaining": "0"}, True),
        ({"Retry-After": "garbage", "x-ratelimit-reset": "7"}, True),
        ({"Retry-After": "3", "x-ratelimit-reset": "7"}, False),
        ({"Retry-After": "3"}, False),
        ({}, False),
    ],
)
def test_a_429s_wait_says_whether_it_is_only_the_quotas_reset(
    headers: dict[str, str], is_reset: bool
) -> None:
    """The retry policy may cut a reset short once resets proved loose, never a Retry-After."""
    error = status_error(429, CIMultiDict(headers), b"", now=0.0)
    assert error._retry_after_is_reset is is_reset
