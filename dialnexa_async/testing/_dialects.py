"""Rendering a limiter's ``Verdict`` as the rate-limit headers real servers send.

Dialects:

- ``none``: no rate-limit headers (``Retry-After`` may still be sent).
- ``x-ratelimit``: ``x-ratelimit-limit``, ``-remaining`` and ``-reset`` in delta seconds.
- ``x-ratelimit-epoch``: the same with ``-reset`` as a POSIX timestamp (GitHub,
  express-rate-limit's legacy headers).
- ``draft6``: ``RateLimit-Limit``, ``-Remaining``, ``-Reset`` and ``RateLimit-Policy``.
- ``draft7``: one ``RateLimit: limit=.., remaining=.., reset=..`` and ``RateLimit-Policy``.
- ``draft8``: structured fields, ``RateLimit: "default";r=..;t=..`` and
  ``RateLimit-Policy: "default";q=..;w=..``.
"""

from __future__ import annotations

import math
from email.utils import formatdate
from typing import Literal, get_args

from ._limiters import Verdict

RateLimitDialect = Literal["none", "x-ratelimit", "x-ratelimit-epoch", "draft6", "draft7", "draft8"]
RATE_LIMIT_DIALECTS: tuple[RateLimitDialect, ...] = get_args(RateLimitDialect)

# The policy name draft 8 requires; a server with one policy has no better one.
_POLICY_NAME = '"default"'
# Decimal places of fractional seconds, and the smallest fractional value sent.
_DECIMALS = 3
_SMALLEST_FRACTION = 10.0**-_DECIMALS
# Digits kept before rounding up, so float noise such as 1.0000000000000002 does not become 2.
_NOISE_DIGITS = 6


def _whole_up(value: float) -> int:
    """Round seconds up to a whole number, ignoring float noise."""
    return math.ceil(round(value, _NOISE_DIGITS))


def _decimal(value: float) -> str:
    """Seconds with up to three decimals and no trailing zeros."""
    return f"{value:.{_DECIMALS}f}".rstrip("0").rstrip(".")


def format_seconds(value: float, fractional: bool) -> str:
    """Render a delay as whole seconds rounded up (at least 1), or with millisecond decimals.

    Args:
        value: Seconds.
        fractional: Send up to three decimals (at least 0.001) instead of whole seconds.
    """
    if fractional:
        return _decimal(max(value, _SMALLEST_FRACTION))
    return str(max(1, _whole_up(value)))


def _format_window(window: float) -> str:
    """A policy window: an integer when whole, else up to three decimals."""
    if float(window).is_integer():
        return str(int(window))
    return _decimal(max(window, _SMALLEST_FRACTION))


def _add_quota(
    headers: dict[str, str],
    dialect: RateLimitDialect,
    verdict: Verdict,
    wall_now: float,
    fractional: bool,
) -> None:
    """Add the headers stating the quota, in ``dialect`` (anything but ``none``)."""
    limit = str(verdict.limit)
    remaining = str(verdict.remaining)
    if dialect == "x-ratelimit-epoch":
        headers["x-ratelimit-limit"] = limit
        headers["x-ratelimit-remaining"] = remaining
        headers["x-ratelimit-reset"] = str(_whole_up(wall_now + verdict.reset))
        return
    reset = format_seconds(verdict.reset, fractional)
    if dialect == "x-ratelimit":
        headers["x-ratelimit-limit"] = limit
        headers["x-ratelimit-remaining"] = remaining
        headers["x-ratelimit-reset"] = reset
        return
    window = _format_window(verdict.window)
    if dialect == "draft6":
        headers["RateLimit-Limit"] = limit
        headers["RateLimit-Remaining"] = remaining
        headers["RateLimit-Reset"] = reset
        headers["RateLimit-Policy"] = f"{limit};w={window}"
    elif dialect == "draft7":
        headers["RateLimit"] = f"limit={limit}, remaining={remaining}, reset={reset}"
        headers["RateLimit-Policy"] = f"{limit};w={window}"
    elif dialect == "draft8":
        headers["RateLimit"] = f"{_POLICY_NAME};r={remaining};t={reset}"
        headers["RateLimit-Policy"] = f"{_POLICY_NAME};q={limit};w={window}"
    else:
        raise ValueError(f"unknown rate-limit dialect {dialect!r}")


def render_headers(
    dialect: RateLimitDialect,
    verdict: Verdict,
    *,
    wall_now: float,
    fractional: bool,
    retry_after: bool,
    retry_after_date: bool,
) -> dict[str, str]:
    """Return the headers a server speaking ``dialect`` sends with an answer.

    Args:
        dialect: Which rate-limit headers to send.
        verdict: The limiter's decision on this request.
        wall_now: POSIX time now, for epoch resets and HTTP dates.
        fractional: Send delta seconds with millisecond decimals instead of whole seconds.
        retry_after: Add ``Retry-After`` if the request was refused.
        retry_after_date: Send ``Retry-After`` as an HTTP date rather than seconds.
    """
    headers: dict[str, str] = {}
    if dialect != "none":
        _add_quota(headers, dialect, verdict, wall_now, fractional)
    if retry_after and not verdict.admitted:
        if retry_after_date:
            # Rounded up, so a client honouring the date is never early.
            moment = _whole_up(wall_now + verdict.retry_after)
            headers["Retry-After"] = formatdate(moment, usegmt=True)
        else:
            headers["Retry-After"] = format_seconds(verdict.retry_after, fractional)
    return headers
