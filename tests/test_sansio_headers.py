"""Parsing Retry-After and every rate-limit header dialect: never raises, never negative, capped."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from dialnexa_async._constants import MAX_SERVER_DELAY
from dialnexa_async._sansio.headers import (
    RateLimitInfo,
    has_rate_limit_headers,
    parse_delay_seconds,
    parse_reset,
    parse_retry_after,
)

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
    assert RateLimitInfo.from_headers(headers, NOW) == RateLimitInfo(150, 0, 42.0)


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
    assert RateLimitInfo.from_headers(headers, NOW) == expected


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


# --- every dialect, as real servers send it -------------------------------------------------

EPOCH = 1_700_000_600
"""Ten minutes after NOW, as a POSIX timestamp in seconds."""

DIALECTS = [
    pytest.param(
        {"x-ratelimit-limit": "150", "x-ratelimit-remaining": "149", "x-ratelimit-reset": "60"},
        RateLimitInfo(150, 149, 60.0),
        id="dialnexa-documented",
    ),
    pytest.param(
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(EPOCH),
            "x-ratelimit-used": "1",
            "x-ratelimit-resource": "core",
        },
        RateLimitInfo(5000, 4999, 600.0),
        id="github-epoch-seconds",
    ),
    pytest.param(
        {
            "x-ratelimit-limit": "60",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": "1600000000",
        },
        RateLimitInfo(60, 0, 0.0),
        id="github-epoch-in-the-past",
    ),
    pytest.param(
        {
            "x-ratelimit-limit": "100",
            "x-ratelimit-remaining": "7",
            "x-ratelimit-reset": f"{EPOCH}250",
        },
        RateLimitInfo(100, 7, 600.25),
        id="epoch-milliseconds",
    ),
    pytest.param(
        {
            "x-ratelimit-limit": "100",
            "x-ratelimit-remaining": "7",
            "x-ratelimit-reset": f"{EPOCH}.5",
        },
        RateLimitInfo(100, 7, 600.5),
        id="epoch-seconds-decimal",
    ),
    pytest.param(
        {
            "date": "Tue, 14 Nov 2023 22:13:20 GMT",
            "x-ratelimit-limit": "100",
            "x-ratelimit-remaining": "99",
            "x-ratelimit-reset": str(EPOCH),
        },
        RateLimitInfo(100, 99, 600.0),
        id="express-rate-limit-legacy",
    ),
    pytest.param(
        {
            "x-rate-limit-limit": "900",
            "x-rate-limit-remaining": "899",
            "x-rate-limit-reset": str(EPOCH + 300),
        },
        RateLimitInfo(900, 899, 900.0),
        id="twitter-x-rate-limit",
    ),
    pytest.param(
        {
            "x-ratelimit-limit": "1200",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": _http_date(30),
            "retry-after": "30",
        },
        RateLimitInfo(1200, 0, 30.0),
        id="cloudflare-legacy-http-date",
    ),
    pytest.param(
        {
            "x-ratelimit-limit": "10, 10;w=60",
            "x-ratelimit-remaining": "9",
            "x-ratelimit-reset": "45",
        },
        RateLimitInfo(10, 9, 45.0, 60.0),
        id="envoy-policy-in-limit",
    ),
    pytest.param(
        {
            "x-ratelimit-limit": '10, 10;w=1;name="per-second", 600;w=60;name="per-minute"',
            "x-ratelimit-remaining": "3",
            "x-ratelimit-reset": "1",
        },
        RateLimitInfo(10, 3, 1.0, 1.0),
        id="envoy-named-policies",
    ),
    pytest.param(
        {
            "ratelimit-policy": "100;w=60",
            "ratelimit-limit": "100",
            "ratelimit-remaining": "99",
            "ratelimit-reset": "60",
        },
        RateLimitInfo(100, 99, 60.0, 60.0),
        id="express-draft-6",
    ),
    pytest.param(
        {"ratelimit-limit": "20, 20;w=1", "ratelimit-remaining": "19", "ratelimit-reset": "1"},
        RateLimitInfo(20, 19, 1.0, 1.0),
        id="draft-6-policy-in-limit",
    ),
    pytest.param(
        {"ratelimit-limit": "100", "ratelimit-remaining": "99"},
        RateLimitInfo(100, 99, None),
        id="draft-6-without-reset",
    ),
    pytest.param(
        {
            "ratelimit-policy": "10;w=1, 50;w=60",
            "ratelimit-limit": "50",
            "ratelimit-remaining": "12",
            "ratelimit-reset": "31",
        },
        RateLimitInfo(50, 12, 31.0, 60.0),
        id="draft-6-several-policies",
    ),
    pytest.param(
        {"ratelimit-policy": "100;w=60", "ratelimit": "limit=100, remaining=99, reset=60"},
        RateLimitInfo(100, 99, 60.0, 60.0),
        id="express-draft-7",
    ),
    pytest.param(
        {"ratelimit": "reset=7,remaining=5 , limit=100"},
        RateLimitInfo(100, 5, 7.0),
        id="draft-7-any-order-no-policy",
    ),
    pytest.param(
        {
            "ratelimit-policy": "10;w=1, 1000;w=3600",
            "ratelimit": "limit=1000, remaining=3, reset=90",
        },
        RateLimitInfo(1000, 3, 90.0, 3600.0),
        id="draft-7-policy-matching-limit",
    ),
    pytest.param(
        {"ratelimit-policy": "10;w=1, 1000;w=3600", "ratelimit": "limit=7, remaining=3, reset=1"},
        RateLimitInfo(7, 3, 1.0, 1.0),
        id="draft-7-no-policy-matches-first-wins",
    ),
    pytest.param(
        {
            "ratelimit-policy": '"100-in-1min"; q=100; w=60; pk=:M2U2NmI3NDhjNmZk:',
            "ratelimit": '"100-in-1min"; r=99; t=60',
        },
        RateLimitInfo(100, 99, 60.0, 60.0),
        id="express-draft-8",
    ),
    pytest.param(
        {"ratelimit-policy": '"default";q=20;w=1', "ratelimit": '"default";r=19;t=1'},
        RateLimitInfo(20, 19, 1.0, 1.0),
        id="draft-8-compact",
    ),
    pytest.param(
        {"ratelimit-policy": '"default";w=1;q=20', "ratelimit": '"default" ; t=1 ; r=19'},
        RateLimitInfo(20, 19, 1.0, 1.0),
        id="draft-8-params-any-order",
    ),
    pytest.param(
        {"ratelimit": '"default";r=50;t=30', "ratelimit-policy": '"burst";q=100;w=60'},
        RateLimitInfo(100, 50, 30.0, 60.0),
        id="cloudflare-draft-8-lone-pair",
    ),
    pytest.param(
        {
            "ratelimit-policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
            "ratelimit": '"burst";r=40;t=30, "daily";r=10;t=3600',
        },
        RateLimitInfo(1000, 10, 3600.0, 86400.0),
        id="draft-8-fewest-remaining-wins",
    ),
    pytest.param(
        {
            "ratelimit-policy": '"second";q=10;w=1, "minute";q=100;w=60',
            "ratelimit": '"second";r=0;t=1, "minute";r=0;t=42',
        },
        RateLimitInfo(100, 0, 42.0, 60.0),
        id="draft-8-tie-longest-reset",
    ),
    pytest.param(
        {"ratelimit-policy": '"a, b;c";q=5;w=10', "ratelimit": '"a, b;c";r=1;t=2'},
        RateLimitInfo(5, 1, 2.0, 10.0),
        id="draft-8-separators-inside-name",
    ),
    pytest.param(
        {"ratelimit-policy": '"say \\"hi\\"";q=5;w=10', "ratelimit": '"say \\"hi\\"";r=4;t=2'},
        RateLimitInfo(5, 4, 2.0, 10.0),
        id="draft-8-escaped-quotes-in-name",
    ),
    pytest.param(
        {"ratelimit-policy": '"other";q=5;w=10, "x";q=6;w=1', "ratelimit": '"mine";r=1;t=2'},
        RateLimitInfo(None, 1, 2.0),
        id="draft-8-no-policy-of-that-name",
    ),
    pytest.param(
        {"ratelimit": '"default";r=19;t=1'},
        RateLimitInfo(None, 19, 1.0),
        id="draft-8-without-policy",
    ),
    pytest.param(
        {"ratelimit": "default;r=3;t=4", "ratelimit-policy": "default;q=5;w=6"},
        RateLimitInfo(5, 3, 4.0, 6.0),
        id="draft-8-token-names",
    ),
]


@pytest.mark.parametrize(("headers", "expected"), DIALECTS)
def test_each_dialect_reads_as_real_servers_send_it(
    headers: dict[str, str], expected: RateLimitInfo
) -> None:
    """Every dialect real servers send gives quota, remaining, reset from now, and window."""
    assert RateLimitInfo.from_headers(headers, NOW) == expected
    assert RateLimitInfo.from_headers(CIMultiDict(headers), NOW) == expected


@pytest.mark.parametrize(("headers", "expected"), DIALECTS)
def test_every_dialect_with_a_remaining_count_is_noticed(
    headers: dict[str, str], expected: RateLimitInfo
) -> None:
    """The hot path's cheap check sees every dialect that states a remaining count."""
    assert has_rate_limit_headers(headers) is (expected.remaining is not None)


def test_no_rate_limit_headers_are_noticed_as_none() -> None:
    """An answer with only ordinary headers has no rate-limit headers and parses to None."""
    headers = CIMultiDict({"Content-Type": "application/json", "X-Request-Id": "r1"})
    assert not has_rate_limit_headers(headers)
    assert RateLimitInfo.from_headers(headers, NOW) is None


def test_repeated_header_lines_are_one_list() -> None:
    """Two limiters appending their own RateLimit lines are read as one list (RFC 9110 5.3)."""
    headers = CIMultiDict(
        [
            ("RateLimit-Policy", '"per-second"; q=10; w=1'),
            ("RateLimit", '"per-second"; r=9; t=1'),
            ("RateLimit-Policy", '"per-hour"; q=1000; w=3600'),
            ("RateLimit", '"per-hour"; r=2; t=1800'),
        ]
    )
    assert RateLimitInfo.from_headers(headers, NOW) == RateLimitInfo(1000, 2, 1800.0, 3600.0)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            {
                "ratelimit": '"default";r=1;t=2',
                "ratelimit-policy": '"default";q=3;w=4',
                "ratelimit-limit": "30",
                "ratelimit-remaining": "10",
                "x-ratelimit-remaining": "20",
            },
            RateLimitInfo(3, 1, 2.0, 4.0),
            id="draft-8-over-the-rest",
        ),
        pytest.param(
            {
                "ratelimit": "limit=100, remaining=99, reset=60",
                "x-ratelimit-limit": "100",
                "x-ratelimit-remaining": "99",
                "x-ratelimit-reset": str(EPOCH),
            },
            RateLimitInfo(100, 99, 60.0),
            id="draft-7-over-legacy",
        ),
        pytest.param(
            {
                "ratelimit-remaining": "5",
                "x-ratelimit-remaining": "6",
                "x-rate-limit-remaining": "7",
            },
            RateLimitInfo(None, 5, None),
            id="draft-6-over-legacy",
        ),
        pytest.param(
            {"x-ratelimit-remaining": "6", "x-rate-limit-remaining": "7"},
            RateLimitInfo(None, 6, None),
            id="x-ratelimit-over-x-rate-limit",
        ),
        pytest.param(
            {"ratelimit": "garbage", "x-ratelimit-remaining": "6"},
            RateLimitInfo(None, 6, None),
            id="garbage-dialect-gives-way",
        ),
        pytest.param(
            {"ratelimit-remaining": "lots", "x-ratelimit-remaining": "6"},
            RateLimitInfo(None, 6, None),
            id="garbage-draft-6-gives-way",
        ),
    ],
)
def test_dialects_are_read_in_order_of_preference(
    headers: dict[str, str], expected: RateLimitInfo
) -> None:
    """With several dialects present, the newest usable one is read and the others ignored."""
    assert RateLimitInfo.from_headers(headers, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"ratelimit": "garbage"}, None, id="draft-7-8-word"),
        pytest.param({"ratelimit": ""}, None, id="empty"),
        pytest.param({"ratelimit": ",,;;=="}, None, id="separators"),
        pytest.param({"ratelimit": '"unterminated;r=5;t=1'}, None, id="unterminated-string"),
        pytest.param(
            {"ratelimit": "limit=abc, remaining=-1, reset=soon"}, None, id="draft-7-words"
        ),
        pytest.param(
            {"ratelimit": "limit=10, remaining=x, reset=1"},
            RateLimitInfo(10, None, 1.0),
            id="draft-7-one-bad-field",
        ),
        pytest.param({"ratelimit": '"p";r=abc;t=-1'}, None, id="draft-8-bad-params"),
        pytest.param(
            {"ratelimit": '"p";r=2;t=1', "ratelimit-policy": '"p";q=-5;w=0'},
            RateLimitInfo(None, 2, 1.0),
            id="draft-8-bad-policy",
        ),
        pytest.param(
            {"ratelimit": "limit=10, remaining=5, reset=1", "ratelimit-policy": "garbage;w=abc"},
            RateLimitInfo(10, 5, 1.0),
            id="draft-7-bad-policy",
        ),
        pytest.param(
            {"ratelimit-limit": "1.5", "ratelimit-remaining": "2e3", "ratelimit-reset": "-4"},
            None,
            id="draft-6-numbers-of-the-wrong-kind",
        ),
        pytest.param(
            {"x-ratelimit-remaining": "1", "x-ratelimit-reset": "1e9"},
            RateLimitInfo(None, 1, None),
            id="exponent-reset",
        ),
        pytest.param(
            {"x-ratelimit-remaining": "1", "x-ratelimit-reset": "Wed, 99 Oct 2015 07:28:00 GMT"},
            RateLimitInfo(None, 1, None),
            id="impossible-date-reset",
        ),
        pytest.param(
            {"x-ratelimit-remaining": "1", "x-ratelimit-reset": "9" * 400},
            RateLimitInfo(None, 1, MAX_SERVER_DELAY),
            id="reset-too-long-for-a-float",
        ),
        pytest.param(
            {"x-ratelimit-limit": "abc, 5;w=1", "x-ratelimit-remaining": "3"},
            RateLimitInfo(None, 3, None, 1.0),
            id="bad-limit-with-policy",
        ),
    ],
)
def test_garbage_fields_are_none_and_never_raise(
    headers: dict[str, str], expected: RateLimitInfo | None
) -> None:
    """A malformed field is None, the good ones stay; nothing usable at all gives None."""
    assert RateLimitInfo.from_headers(headers, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("30", 30.0),
        ("2.5", 2.5),
        (" 7 ", 7.0),
        ("1000000000", MAX_SERVER_DELAY),
        ("1000000001", 0.0),
        (str(EPOCH), 600.0),
        (f"{EPOCH}.25", 600.25),
        (str(EPOCH + 10**6), MAX_SERVER_DELAY),
        (f"{EPOCH}000", 600.0),
        ("1000000000001", 0.0),
        (_http_date(45), 45.0),
        (_http_date(-45), 0.0),
        ("-1", None),
        ("soon", None),
        ("", None),
        ("1e3", None),
        ("٣", None),
    ],
)
def test_parse_reset_reads_deltas_epochs_and_dates(
    value: str | None, expected: float | None
) -> None:
    """A reset is delta seconds, an epoch in seconds or milliseconds, or an HTTP date; a moment
    in the past is 0, a far one a day, and the result is never an epoch slept as a delay."""
    assert parse_reset(value, NOW) == pytest.approx(expected)


def test_parse_reset_reads_the_system_clock_when_not_given_one() -> None:
    """Without ``now``, an epoch reset is measured from the real wall clock."""
    reset = parse_reset(str(int(time.time()) + 100))
    assert reset is not None
    assert 98.0 <= reset <= 100.0


@given(offset=st.integers(-(10**6), 10**6), millis=st.booleans())
def test_epoch_resets_are_seconds_from_now(offset: int, millis: bool) -> None:
    """Any epoch reset around now, in seconds or milliseconds, is its distance from now, clamped."""
    epoch = int(NOW) + offset
    value = str(epoch * 1000) if millis else str(epoch)
    expected = min(max(float(offset), 0.0), MAX_SERVER_DELAY)
    assert parse_reset(value, NOW) == pytest.approx(expected)
