"""Interpreting an answer: status x headers x body -> lead or typed error, and what rate control
learns, with plain function calls."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from multidict import CIMultiDict

import dialnexa_async as dnx
from dialnexa_async._sansio.answer import Answer
from dialnexa_async._sansio.headers import RateLimitInfo
from dialnexa_async._sansio.interpret import Interpretation, interpret

from .conftest import LEAD_BODY, envelope

NOW = 1_700_000_000.0
LEAD = json.dumps(LEAD_BODY).encode()
LEGACY = {"x-ratelimit-limit": "150", "x-ratelimit-remaining": "149", "x-ratelimit-reset": "60"}
DRAFT8 = {"ratelimit": '"default";r=0;t=12', "ratelimit-policy": '"default";q=20;w=30'}


def _http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, tz=timezone.utc), usegmt=True)


@pytest.mark.parametrize(
    ("status", "headers", "body", "outcome_type", "answer"),
    [
        pytest.param(200, {}, LEAD, dnx.Lead, None, id="200-plain"),
        pytest.param(
            200,
            LEGACY,
            LEAD,
            dnx.Lead,
            Answer(200, RateLimitInfo(150, 149, 60.0), None),
            id="200-x-ratelimit",
        ),
        pytest.param(
            203,
            DRAFT8,
            LEAD,
            dnx.Lead,
            Answer(203, RateLimitInfo(20, 0, 12.0, 30.0), None),
            id="2xx-draft-8",
        ),
        pytest.param(
            200, {"x-ratelimit-reset": "5"}, LEAD, dnx.Lead, None, id="200-reset-only-is-plain"
        ),
        pytest.param(200, {}, b"{not json", dnx.ResponseValidationError, None, id="200-bad-json"),
        pytest.param(
            204,
            {"ratelimit-remaining": "4", "ratelimit-reset": "2"},
            b"",
            dnx.ResponseValidationError,
            Answer(204, RateLimitInfo(None, 4, 2.0), None),
            id="204-empty-draft-6",
        ),
        pytest.param(
            302,
            {"location": "https://elsewhere.example/x"},
            b"",
            dnx.APIStatusError,
            Answer(302, None, None),
            id="302-not-followed",
        ),
        pytest.param(
            404,
            {},
            envelope(404, "Lead not found").encode(),
            dnx.NotFoundError,
            Answer(404, None, None),
            id="404-envelope",
        ),
        pytest.param(
            429,
            {"retry-after": "7"},
            b"",
            dnx.RateLimitError,
            Answer(429, None, 7.0),
            id="429-retry-after-seconds",
        ),
        pytest.param(
            429,
            {"retry-after": _http_date(20)},
            b"",
            dnx.RateLimitError,
            Answer(429, None, 20.0),
            id="429-retry-after-date",
        ),
        pytest.param(
            429,
            {**LEGACY, "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)},
            b"",
            dnx.RateLimitError,
            Answer(429, RateLimitInfo(150, 0, 30.0), 30.0),
            id="429-epoch-reset-is-the-wait",
        ),
        pytest.param(
            429,
            {**LEGACY, "x-ratelimit-remaining": "0", "x-ratelimit-reset": f"{int(NOW) + 30}000"},
            b"",
            dnx.RateLimitError,
            Answer(429, RateLimitInfo(150, 0, 30.0), 30.0),
            id="429-epoch-ms-reset-is-the-wait",
        ),
        pytest.param(
            429,
            {"ratelimit": "limit=10, remaining=0, reset=4", "ratelimit-policy": "10;w=5"},
            b"",
            dnx.RateLimitError,
            Answer(429, RateLimitInfo(10, 0, 4.0, 5.0), 4.0),
            id="429-draft-7-reset-is-the-wait",
        ),
        pytest.param(
            429,
            DRAFT8,
            b"",
            dnx.RateLimitError,
            Answer(429, RateLimitInfo(20, 0, 12.0, 30.0), 12.0),
            id="429-draft-8-t-is-the-wait",
        ),
        pytest.param(
            429,
            {**DRAFT8, "retry-after": "3"},
            b"",
            dnx.RateLimitError,
            Answer(429, RateLimitInfo(20, 0, 12.0, 30.0), 3.0),
            id="429-retry-after-beats-reset",
        ),
        pytest.param(
            429,
            {"x-ratelimit-reset": "5"},
            b"",
            dnx.RateLimitError,
            Answer(429, None, 5.0),
            id="429-reset-only-still-the-wait",
        ),
        pytest.param(
            429,
            {"content-type": "text/html"},
            b"<html>slow down</html>",
            dnx.RateLimitError,
            Answer(429, None, None),
            id="429-bare-html",
        ),
        pytest.param(
            503,
            {"retry-after": "2", **LEGACY},
            envelope(503, "down").encode(),
            dnx.InternalServerError,
            Answer(503, RateLimitInfo(150, 149, 60.0), 2.0),
            id="503-retry-after-and-headers",
        ),
        pytest.param(
            503,
            LEGACY,
            b"",
            dnx.InternalServerError,
            Answer(503, RateLimitInfo(150, 149, 60.0), None),
            id="503-reset-is-no-wait",
        ),
    ],
)
def test_interpret_table(
    status: int,
    headers: dict[str, str],
    body: bytes,
    outcome_type: type[object],
    answer: Answer | None,
) -> None:
    """Each answer gives the outcome of its kind and exactly what rate control must observe."""
    result = interpret(status, CIMultiDict(headers), body, now=NOW, attempts=1)
    assert isinstance(result, Interpretation)
    assert type(result.outcome) is outcome_type
    assert result.answer == answer
    if isinstance(result.outcome, dnx.APIStatusError):
        assert result.outcome.retry_after == (None if answer is None else answer.retry_after)


def test_a_lead_is_parsed_from_the_body() -> None:
    """A 2xx with a lead body gives that lead."""
    outcome, _ = interpret(200, {}, LEAD, now=NOW, attempts=1)
    assert isinstance(outcome, dnx.Lead)
    assert outcome.id == LEAD_BODY["id"]


@pytest.mark.parametrize("status", [200, 404, 429, 503])
def test_errors_carry_status_request_id_and_attempts(status: int) -> None:
    """Every error names its status, the answer's x-request-id and the attempts so far."""
    headers = CIMultiDict({"X-Request-Id": "req_9"})
    outcome, _ = interpret(status, headers, b"[", now=NOW, attempts=3)
    assert isinstance(outcome, (dnx.APIStatusError, dnx.ResponseValidationError))
    assert outcome.status_code == status
    assert outcome.request_id == "req_9"
    assert outcome.attempts == 3


def test_the_envelope_message_and_body_are_kept() -> None:
    """A non-2xx keeps the envelope's message and decoded body."""
    body = envelope(400, ["id is bad", "id is short"]).encode()
    outcome, _ = interpret(400, {}, body, now=NOW, attempts=1)
    assert isinstance(outcome, dnx.BadRequestError)
    assert outcome.message == "id is bad; id is short"
    assert isinstance(outcome.body, dict)


def test_interpret_reads_only_its_arguments() -> None:
    """The same answer at the same moment is interpreted the same way every time."""
    headers = CIMultiDict({**DRAFT8, "x-request-id": "r"})
    first = interpret(429, headers, b"", now=NOW, attempts=2)
    second = interpret(429, headers, b"", now=NOW, attempts=2)
    assert first.answer == second.answer
    assert repr(first.outcome) == repr(second.outcome)
    later = interpret(
        429,
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)},
        b"",
        now=NOW + 10,
        attempts=2,
    )
    assert later.answer is not None
    assert later.answer.retry_after == 20.0
