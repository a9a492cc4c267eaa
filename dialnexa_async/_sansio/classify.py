"""Turning an HTTP answer into a typed error, and deciding which errors are worth retrying."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from http import HTTPStatus

from .._constants import ERROR_BODY_PREVIEW, RETRYABLE_STATUSES
from .._errors import (
    APIConnectionError,
    APIStatusError,
    DialNexaError,
    RouteNotFoundError,
    make_status_error,
)
from .headers import RateLimitInfo, parse_retry_after


def decode_error_body(body: bytes) -> object:
    """The JSON value of an error body, else its text (cut to a preview), else ``None``."""
    if not body:
        return None
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text[:ERROR_BODY_PREVIEW]


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status``, or ``"HTTP <status>"`` for unknown codes."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def envelope_message(payload: object) -> str | None:
    """The ``message`` of the API's ``{statusCode, message, error}`` envelope, lists joined."""
    if not isinstance(payload, Mapping):
        return None
    message = payload.get("message")
    if isinstance(message, str) and message:
        return message
    if isinstance(message, list) and message:
        return "; ".join(str(item) for item in message)
    error = payload.get("error")
    return error if isinstance(error, str) and error else None


_UNKNOWN_ROUTE = re.compile(r"\bCannot (?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) /")
"""How NestJS (in its JSON envelope) and Express (in an HTML page) word a path they do not
route: ``Cannot GET /campaigns-leads/x``. A missing lead says ``Lead not found``."""


def names_unknown_route(payload: object) -> bool:
    """Whether a 404's decoded body is a server's answer to a path it does not route.

    Args:
        payload: the decoded error body: the JSON envelope, or text.
    """
    if isinstance(payload, Mapping):
        message = envelope_message(payload)
        return message is not None and _UNKNOWN_ROUTE.match(message) is not None
    return isinstance(payload, str) and _UNKNOWN_ROUTE.search(payload) is not None


def server_delay(status: int, headers: Mapping[str, str], now: float) -> float | None:
    """The wait the server asked for: ``Retry-After``, else on a 429 the quota's reset.

    The reset is read in any dialect ``RateLimitInfo.from_headers`` knows (``RateLimit``'s
    ``t``, ``RateLimit-Reset``, ``X-RateLimit-Reset`` as seconds, epoch or date).

    Args:
        status: the HTTP status of the answer.
        headers: its headers (case-insensitive mapping).
        now: the wall-clock time as a POSIX timestamp, for HTTP dates and epoch resets.
    """
    return _server_wait(status, headers, now)[0]


def _server_wait(status: int, headers: Mapping[str, str], now: float) -> tuple[float | None, bool]:
    """``server_delay``, and whether it is the quota's reset (no ``Retry-After`` was read)."""
    delay = parse_retry_after(headers.get("retry-after"), now)
    if delay is not None or status != 429:
        return delay, False
    info = RateLimitInfo.from_headers(headers, now)
    if info is None or info.reset is None:
        return None, False
    return info.reset, True


def status_error(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float, attempts: int = 0
) -> APIStatusError:
    """The typed error for a non-2xx answer.

    Args:
        status: the HTTP status (3xx included: redirects are never followed).
        headers: the answer's headers (case-insensitive mapping).
        body: the raw body, already capped in size by the transport.
        now: the wall-clock time as a POSIX timestamp.
        attempts: how many attempts had been made when this answer arrived.
    """
    payload = decode_error_body(body)
    message = envelope_message(payload) or reason_phrase(status)
    if 300 <= status < 400:
        location = headers.get("location")
        message = f"{message}: redirect not followed" + (f" (to {location})" if location else "")
    if status == 404 and names_unknown_route(payload):
        return RouteNotFoundError(
            message,
            status_code=status,
            body=payload,
            request_id=headers.get("x-request-id"),
            attempts=attempts,
        )
    retry_after, is_reset = _server_wait(status, headers, now)
    error = make_status_error(
        status,
        message,
        body=payload,
        request_id=headers.get("x-request-id"),
        attempts=attempts,
        retry_after=retry_after,
    )
    error._retry_after_is_reset = is_reset
    return error


def is_retryable(error: BaseException) -> bool:
    """Whether another attempt could succeed: connection faults, timeouts, 408/429/5xx.

    Cancellation, validation errors, other 4xx and anything that is not a ``DialNexaError``
    are never retried.
    """
    if isinstance(error, APIConnectionError):
        return error.retryable
    if isinstance(error, APIStatusError):
        return error.status_code in RETRYABLE_STATUSES
    return False


def exceeds_max_wait(error: DialNexaError, max_retry_wait: float) -> bool:
    """Whether the server asked for a longer wait than the client is willing to sleep."""
    return (
        isinstance(error, APIStatusError)
        and error.retry_after is not None
        and error.retry_after > max_retry_wait
    )
