"""Parsing Retry-After and the x-ratelimit-* headers: never raises, never negative, capped."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from dialnexa_async._constants import MAX_SERVER_DELAY
from dialnexa_async._sansio.headers import RateLimitInfo, parse_delay_seconds, parse_retry_after

NOW = 1_700_000_000.0


def _http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, tz=timezone.utc), usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("1", 1.0),
        ("1.5", 1.5),
        (" 7 ", 7.0),
        ("120", 120.0),
        ("-1", None),
        ("-0.5", None),
        ("soon", None),
        ("", None),
        ("nan", None),
        ("inf", None),
        ("1e3", None),
        ("0x10", None),
        ("1000000000", MAX_SERVER_DELAY),
        (_http_date(30), 30.0),
        (_http_date(-30), 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 99 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    """Seconds, fractions and HTTP dates parse; garbage and negatives give None; huge is capped."""
    assert parse_retry_after(value, NOW) == expected


@given(st.text())
def test_retry_after_never_raises_and_stays_in_range(value: str) -> None:
    """Any header text yields None or a finite wait between 0 and the cap."""
    delay = parse_retry_after(value, NOW)
    assert delay is None or 0.0 <= delay <= MAX_SERVER_DELAY


@given(st.floats(min_value=-1e6, max_value=1e6))
def test_retry_after_http_date_is_never_negative(offset: float) -> None:
    """An HTTP date anywhere around now is a non-negative wait close to the offset."""
    delay = parse_retry_after(_http_date(offset), NOW)
    assert delay is not None
    assert delay >= 0.0
    assert abs(delay - min(max(offset, 0.0), MAX_SERVER_DELAY)) <= 1.0


@given(st.integers(min_value=0, max_value=10**6))
def test_delay_seconds_round_trips_integers(value: int) -> None:
    """Every non-negative integer of seconds reads back as itself, up to the cap."""
    assert parse_delay_seconds(str(value)) == min(float(value), MAX_SERVER_DELAY)


def test_rate_limit_info_reads_all_three_headers_case_insensitively() -> None:
    """The x-ratelimit-* headers are read whatever their case."""
    headers = CIMultiDict(
        {"X-RateLimit-Limit": "150", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "42"}
    )
    assert RateLimitInfo.from_headers(headers) == RateLimitInfo(150, 0, 42.0)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"x-ratelimit-limit": "abc"}, None),
        ({"x-ratelimit-remaining": "5"}, RateLimitInfo(None, 5, None)),
        ({"x-ratelimit-reset": "0.25"}, RateLimitInfo(None, None, 0.25)),
        ({"x-ratelimit-remaining": "-3", "x-ratelimit-reset": "1"}, RateLimitInfo(None, None, 1.0)),
    ],
)
def test_rate_limit_info_partial_and_garbage(
    headers: dict[str, str], expected: RateLimitInfo | None
) -> None:
    """Absent or malformed headers are left out; nothing usable gives None."""
    assert RateLimitInfo.from_headers(headers) == expected


@given(
    st.dictionaries(
        st.sampled_from(["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]),
        st.text(),
    )
)
def test_rate_limit_info_never_raises(headers: dict[str, str]) -> None:
    """Any header values parse to None or to non-negative numbers."""
    info = RateLimitInfo.from_headers(headers)
    if info is not None:
        for value in info:
            assert value is None or value >= 0
