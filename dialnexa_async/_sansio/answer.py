"""What rate control learns from one HTTP answer, independent of how it was received."""

from __future__ import annotations

from typing import NamedTuple

from .headers import RateLimitInfo

__all__ = ["Answer"]


class Answer(NamedTuple):
    """What rate control needs to know about one HTTP answer.

    Args:
        status: the HTTP status.
        rate_limit: the parsed rate-limit headers (any dialect), when sent.
        retry_after: the server-given wait in seconds (``Retry-After``, or the reset on a 429).
    """

    status: int
    rate_limit: RateLimitInfo | None
    retry_after: float | None
