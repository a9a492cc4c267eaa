"""Reading the rate-limit headers: ``Retry-After`` and ``x-ratelimit-*``.

Every parser returns ``None`` for an absent or malformed header and never raises: a server's
garbage must not turn a retryable answer into a crash. Headers are read from any mapping with
case-insensitive keys (aiohttp's ``CIMultiDictProxy``) or with lower-case keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import NamedTuple

from .._constants import MAX_SERVER_DELAY

# ASCII only: \s and \d also match characters float() refuses (\x1c-\x1f); HTTP puts only
# spaces and tabs around a field value.
_SECONDS = re.compile(r"[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*")
_INTEGER = re.compile(r"[ \t]*([0-9]{1,15})[ \t]*")


def parse_delay_seconds(value: str | None) -> float | None:
    """A non-negative decimal number of seconds, clamped to a day; ``None`` for anything else."""
    if value is None:
        return None
    match = _SECONDS.fullmatch(value)
    if match is None:
        return None
    # A number too long for a float is a very long wait (inf), not garbage.
    return min(float(match.group(1)), MAX_SERVER_DELAY)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date.

    Args:
        value: the raw header value, or ``None`` when absent.
        now: the current wall-clock time as a POSIX timestamp, for the HTTP-date form.

    Returns:
        Seconds in ``[0, MAX_SERVER_DELAY]``; a date in the past gives 0; ``None`` when the
        value is absent, negative or unparseable.
    """
    if value is None:
        return None
    seconds = parse_delay_seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # Every HTTP-date is GMT; the asctime() form just does not say so (RFC 9110 5.6.7).
        when = when.replace(tzinfo=timezone.utc)
    try:
        delta = when.timestamp() - now
    except (OverflowError, OSError, ValueError):
        return None
    if not math.isfinite(delta):
        return None
    return min(max(delta, 0.0), MAX_SERVER_DELAY)


def _parse_count(value: str | None) -> int | None:
    if value is None:
        return None
    match = _INTEGER.fullmatch(value)
    return None if match is None else int(match.group(1))


class RateLimitInfo(NamedTuple):
    """What one answer said about the rate-limit window.

    Args:
        limit: ``x-ratelimit-limit``, requests allowed per window, when sent.
        remaining: ``x-ratelimit-remaining``, requests left in this window, when sent.
        reset: ``x-ratelimit-reset``, seconds until the window resets, when sent.
        window: the policy's window length in seconds, when the server states it.
    """

    limit: int | None
    remaining: int | None
    reset: float | None
    window: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo | None:
        """Read the ``x-ratelimit-*`` headers; ``None`` when none of them is usable."""
        limit = _parse_count(headers.get("x-ratelimit-limit"))
        remaining = _parse_count(headers.get("x-ratelimit-remaining"))
        reset = parse_delay_seconds(headers.get("x-ratelimit-reset"))
        if limit is None and remaining is None and reset is None:
            return None
        return cls(limit, remaining, reset)
