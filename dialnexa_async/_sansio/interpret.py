"""Turning one HTTP answer into its outcome (a lead or a typed error) and what rate control learns.

The middle of the request path: the client sends, ``interpret`` decides, the retry loop acts
on the decision. It reads nothing but its arguments, so every answer is tested with a plain call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from .._converter import decode_lead
from .._errors import APIStatusError, ResponseValidationError
from .._models import Lead
from .answer import Answer
from .classify import status_error
from .headers import RateLimitInfo, has_rate_limit_headers

__all__ = ["Interpretation", "interpret"]


class Interpretation(NamedTuple):
    """What one answer means.

    Args:
        outcome: the ``Lead`` of a 2xx; else the typed error to raise: an ``APIStatusError``
            subclass for a non-2xx, ``ResponseValidationError`` for a 2xx that is not a lead.
        answer: what rate control must observe; ``None`` for a 2xx without rate-limit headers
            (the common case, which the client reports with ``observe_success``).
    """

    outcome: Lead | APIStatusError | ResponseValidationError
    answer: Answer | None


def interpret(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float, attempts: int
) -> Interpretation:
    """Decide what one HTTP answer means.

    Args:
        status: the HTTP status (3xx included: redirects are never followed).
        headers: the answer's headers (case-insensitive mapping, or lower-case keys).
        body: the raw body, already capped in size by the transport.
        now: the wall-clock time as a POSIX timestamp, for HTTP dates and epoch resets.
        attempts: how many requests this call has sent, this one included; set on the error.
    """
    info = RateLimitInfo.from_headers(headers, now) if has_rate_limit_headers(headers) else None
    if 200 <= status < 300:
        answer = None if info is None else Answer(status, info, None)
        try:
            # tuple.__new__ directly: a third of the cost of the NamedTuple's own __new__.
            return _new(Interpretation, (decode_lead(body), answer))
        except ResponseValidationError as error:
            error.status_code = status
            error.request_id = headers.get("x-request-id")
            error.attempts = attempts
            return Interpretation(error, answer)
    failure = status_error(status, headers, body, now=now, attempts=attempts)
    return Interpretation(failure, Answer(status, info, failure.retry_after))


_new = tuple.__new__
