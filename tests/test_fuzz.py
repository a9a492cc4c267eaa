"""Properties over hostile input that the unit tests' own properties leave out.

``test_sansio_headers``, ``test_sansio_request`` and ``test_converter`` already fuzz the
parsers on plain text, the quoting on plain text and the lead parser on random bytes and
lead-shaped dicts. Here: the parsers against whole header mappings in every rate-limit
dialect (structured-field soup included), any clock and every HTTP-date form; quoting of any
code point (surrogates included) down to what goes on the wire; the lead parser on damaged
and hostile JSON text; the error-answer parser; and ``interpret`` on any answer.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

import dialnexa_async as dnx
from dialnexa_async._constants import MAX_SERVER_DELAY
from dialnexa_async._converter import decode_lead
from dialnexa_async._sansio.classify import server_delay, status_error
from dialnexa_async._sansio.headers import (
    RateLimitInfo,
    has_rate_limit_headers,
    parse_retry_after,
)
from dialnexa_async._sansio.interpret import interpret
from dialnexa_async._sansio.request import lead_url, quote_segment
from tests.hostile import LEAD, Guard, guarding, reply

NOW = 1_700_000_000.0
BASE = "https://api.example.test/v1"
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
DIALECT_HEADERS = (
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-reset",
)
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SEGMENT = re.compile(r"(?:[A-Za-z0-9_.~-]|%[0-9A-F]{2})+")


@pytest.fixture
async def guard(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Guard]:
    """Check the invariants of the wire test once it ends."""
    async with guarding(caplog) as checker:
        yield checker


# --- header parsers -------------------------------------------------------------------------


def random_case(name: str) -> st.SearchStrategy[str]:
    """``name`` with each letter's case drawn at random."""
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda flips: "".join(c.upper() if f else c for c, f in zip(name, flips, strict=True))
    )


header_names = st.one_of(
    *(random_case(name) for name in (*RATE_HEADERS, *DIALECT_HEADERS, "retry-after")),
    st.text(st.characters(codec="ascii", exclude_characters=":\r\n"), min_size=1, max_size=20),
)
numberish = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.from_regex(r"[ \t]*-?[0-9]{0,20}(\.[0-9]{0,12})?[ \t]*", fullmatch=True),
)
# The ASCII separators \x1c-\x1f are left to their own (failing) property below.
SEPARATORS = "\x1c\x1d\x1e\x1f"
header_text = st.text(st.characters(exclude_characters=SEPARATORS), max_size=40)
# Structured-field soup: the characters that steer the RateLimit parsers, in any order.
structured = st.text(alphabet='"\\,;=: \t-.0123456789rtqwlimitsea', max_size=40)
sf_number = st.one_of(numberish, st.sampled_from(["", "-", "x", ":YQ==:", '"5"', "?1"]))
sf_params = st.lists(st.tuples(st.sampled_from("rtqw"), sf_number), max_size=3).map(
    lambda params: "".join(f";{key}={value}" for key, value in params)
)
sf_member = st.tuples(st.sampled_from(['"a"', '"b"', "a", '"a,b"', '""', "7", ""]), sf_params).map(
    "".join
)
sf_lists = st.lists(sf_member, max_size=4).map(", ".join)
draft7_dicts = st.lists(
    st.tuples(st.sampled_from(["limit", "remaining", "reset", "x"]), sf_number), max_size=4
).map(lambda members: ", ".join(f"{key}={value}" for key, value in members))
header_values = st.one_of(header_text, numberish, structured, sf_lists, draft7_dicts)
header_maps = st.lists(st.tuples(header_names, header_values), max_size=8).map(CIMultiDict)
any_now = st.floats(allow_nan=True, allow_infinity=True) | st.just(NOW)


@given(status=st.integers(100, 599), headers=header_maps, now=any_now)
def test_server_delay_never_raises_on_any_headers(
    status: int, headers: CIMultiDict[str], now: float
) -> None:
    """Any header mapping, any status and any clock reading give None or a wait in [0, a day]."""
    delay = server_delay(status, headers, now)
    assert delay is None or 0.0 <= delay <= MAX_SERVER_DELAY
    if status != 429:
        assert delay == parse_retry_after(headers.get("retry-after"), now)


@given(headers=header_maps, now=any_now)
def test_rate_limit_info_never_raises_on_any_headers(headers: CIMultiDict[str], now: float) -> None:
    """Whole header mappings in every dialect, names in any case, any clock, parse to None or
    to non-negative bounded fields."""
    info = RateLimitInfo.from_headers(headers, now)
    if info is not None:
        assert all(value is None or 0 <= value <= 10**15 for value in info)
        assert info.reset is None or info.reset <= MAX_SERVER_DELAY
        assert info.window is None or info.window > 0
        assert info[:3] != (None, None, None)
    if has_rate_limit_headers(headers):
        return
    assert info is None or info.remaining is None


@given(
    items=st.lists(
        st.tuples(
            st.integers(0, 10**6), st.integers(1, 10**5), st.integers(0, 10**6), st.integers(0, 999)
        ),
        min_size=1,
        max_size=5,
    ),
    spaces=st.sampled_from(["", " "]),
    lines=st.booleans(),
)
def test_draft8_reads_back_the_most_restrictive_policy(
    items: list[tuple[int, int, int, int]], spaces: str, lines: bool
) -> None:
    """Any set of named draft-8 policies reads back as the one with the fewest remaining
    requests (ties to the longest reset), with that policy's quota and window, whether the
    lists come on one line or one line per policy."""
    policies = [f'"p{i}";{spaces}q={q};{spaces}w={w}' for i, (q, w, _, _) in enumerate(items)]
    limits = [f'"p{i}";{spaces}r={r};{spaces}t={t}' for i, (_, _, r, t) in enumerate(items)]
    if lines:
        headers = CIMultiDict([("RateLimit-Policy", p) for p in policies])
        headers.extend([("RateLimit", item) for item in limits])
    else:
        headers = CIMultiDict(
            {"RateLimit-Policy": ", ".join(policies), "RateLimit": ", ".join(limits)}
        )
    quota, window, remaining, reset = min(items, key=lambda item: (item[2], -item[3]))
    expected = RateLimitInfo(quota, remaining, float(reset), float(window))
    assert RateLimitInfo.from_headers(headers, NOW) == expected


@given(
    limit=st.integers(0, 10**12),
    remaining=st.integers(0, 10**12),
    reset=st.integers(0, 10**6),
    order=st.permutations(range(3)),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_draft7_reads_back_in_any_order(
    limit: int, remaining: int, reset: int, order: list[int], pad: str
) -> None:
    """A draft-7 RateLimit dictionary reads back whatever the order and spacing of its keys."""
    members = [f"limit={limit}", f"remaining={remaining}", f"reset={reset}"]
    value = f"{pad},{pad}".join(members[i] for i in order)
    info = RateLimitInfo.from_headers(CIMultiDict({"RateLimit": value}), NOW)
    assert info == RateLimitInfo(limit, remaining, min(float(reset), MAX_SERVER_DELAY))


@given(
    limit=st.integers(0, 10**12),
    remaining=st.integers(0, 10**12),
    reset=st.integers(0, 10**6),
    millis=st.integers(0, 999),
    names=st.tuples(*(random_case(name) for name in RATE_HEADERS)),
    pad=st.sampled_from(["", " ", "\t", "  "]),
)
def test_rate_limit_info_reads_back_what_was_sent(
    limit: int, remaining: int, reset: int, millis: int, names: tuple[str, ...], pad: str
) -> None:
    """Counts and a decimal reset read back exactly, whatever the name case and padding."""
    values = (str(limit), str(remaining), f"{reset}.{millis:03d}")
    headers = CIMultiDict({n: pad + v + pad for n, v in zip(names, values, strict=True)})
    info = RateLimitInfo.from_headers(headers, NOW)
    assert info == RateLimitInfo(limit, remaining, min(float(values[2]), MAX_SERVER_DELAY))


@given(
    seconds=st.integers(0, 10**12 - 1), fraction=st.from_regex(r"(\.[0-9]{1,9})?", fullmatch=True)
)
def test_retry_after_decimal_seconds_read_back(seconds: int, fraction: str) -> None:
    """Any non-negative decimal of up to 12 + 9 digits is that many seconds, capped at a day
    (longer ones: see test_faults' huge Retry-After cases)."""
    text = f"{seconds}{fraction}"
    assert parse_retry_after(text, NOW) == min(float(text), MAX_SERVER_DELAY)
    assert parse_retry_after("-" + text, NOW) is None


@given(value=st.text(max_size=40), now=any_now)
def test_retry_after_never_raises_for_any_clock(value: str, now: float) -> None:
    """A clock reading of NaN or infinity never makes the parser raise or go out of range."""
    delay = parse_retry_after(value, now)
    assert delay is None or 0.0 <= delay <= MAX_SERVER_DELAY


@given(
    number=st.from_regex(r"[0-9]{1,6}", fullmatch=True),
    separator=st.sampled_from(SEPARATORS),
    header=st.sampled_from(["retry-after", "x-ratelimit-reset"]),
)
def test_header_parsers_never_raise_on_ascii_separators(
    number: str, separator: str, header: str
) -> None:
    """A number followed by an ASCII separator control is garbage (None), not an exception."""
    headers = CIMultiDict({header: number + separator, "x-ratelimit-remaining": "1"})
    assert parse_retry_after(headers.get("retry-after"), NOW) is None
    info = RateLimitInfo.from_headers(headers, NOW)
    assert info is not None
    assert info.reset is None


def imf_fixdate(when: datetime) -> str:
    return f"{DAYS[when.weekday()]}, {when:%d} {MONTHS[when.month - 1]} {when:%Y %H:%M:%S} GMT"


def rfc850_date(when: datetime) -> str:
    return f"{LONG_DAYS[when.weekday()]}, {when:%d}-{MONTHS[when.month - 1]}-{when:%y %H:%M:%S} GMT"


def asctime_date(when: datetime) -> str:
    return f"{DAYS[when.weekday()]} {MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S %Y}"


offsets = st.integers(-(10**6), 10**6)


@given(offset=offsets, form=st.sampled_from([imf_fixdate, rfc850_date]))
def test_retry_after_http_date_forms(offset: int, form: object) -> None:
    """IMF-fixdate and RFC 850 dates mean the same wait: the offset, never below 0."""
    when = datetime.fromtimestamp(NOW + offset, tz=timezone.utc)
    expected = min(max(offset, 0), MAX_SERVER_DELAY)
    assert parse_retry_after(form(when), NOW) == expected  # type: ignore[operator]


@given(offset=offsets)
def test_retry_after_asctime_date(offset: int) -> None:
    """An asctime() date, the third HTTP-date form (always GMT), means the same wait."""
    when = datetime.fromtimestamp(NOW + offset, tz=timezone.utc)
    assert parse_retry_after(asctime_date(when), NOW) == min(max(offset, 0), MAX_SERVER_DELAY)


# --- the error-answer parser ----------------------------------------------------------------

error_bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda status, message, error: json.dumps(
            {"statusCode": status, "message": message, "error": error}
        ).encode(),
        st.integers(),
        st.none() | st.text() | st.lists(st.text(), max_size=3) | st.integers(),
        st.none() | st.text(),
    ),
    st.integers(1, 50_000).map(lambda n: b"[" * n + b"]" * n),
)


@settings(deadline=None)  # a 50,000-deep body can take a while on a loaded machine
@given(status=st.integers(300, 599), headers=header_maps, body=error_bodies)
def test_status_error_types_any_answer(status: int, headers: CIMultiDict[str], body: bytes) -> None:
    """Any error answer becomes the APIStatusError of its status with a non-empty message and
    a bounded wait, whatever the headers and body."""
    error = status_error(status, headers, body, now=NOW, attempts=1)
    assert isinstance(error, dnx.APIStatusError)
    assert error.status_code == status
    assert isinstance(error.message, str)
    assert error.message
    assert error.retry_after is None or 0.0 <= error.retry_after <= MAX_SERVER_DELAY
    assert str(error)
    assert repr(error)


# --- id quoting -----------------------------------------------------------------------------

any_code_point = st.characters(codec=None, categories=None)


@given(lead_id=st.text(any_code_point, max_size=30))
def test_lead_url_is_one_segment_or_value_error(lead_id: str) -> None:
    """Any text, lone surrogates included, gives a URL with exactly one more segment that holds
    only unreserved characters and escapes and unquotes to the id, or raises ValueError."""
    try:
        url = lead_url(BASE, lead_id)
    except ValueError:
        assert lead_id in ("", ".", "..") or any(0xD800 <= ord(c) <= 0xDFFF for c in lead_id)
        return
    prefix = BASE + "/campaigns-leads/"
    assert url.startswith(prefix)
    segment = url[len(prefix) :]
    assert SEGMENT.fullmatch(segment)
    assert unquote(segment, errors="strict") == lead_id
    # What aiohttp sends: yarl keeps an encoded URL's path byte for byte.
    assert URL(url, encoded=True).raw_path == "/v1/campaigns-leads/" + segment


@given(lead_id=st.text(min_size=1, max_size=30))
def test_quoting_is_canonical(lead_id: str) -> None:
    """Quoting is a function of the text alone: quoting the unquoted segment gives it back."""
    segment = quote_segment(lead_id)
    assert quote_segment(unquote(segment)) == segment


def random_id(rng: random.Random) -> str:
    """An id mixing ASCII punctuation and controls, accented, CJK and astral code points."""
    pools = [
        (0x20, 0x7E),
        (0x00, 0x1F),
        (0xA0, 0x24F),
        (0x3040, 0x30FF),
        (0x4E00, 0x4FFF),
        (0x1F300, 0x1F6FF),
    ]
    chars = []
    for _ in range(rng.randint(1, 12)):
        low, high = rng.choice(pools)
        chars.append(chr(rng.randint(low, high)))
    text = "".join(chars)
    return text if text not in (".", "..") else text + "x"


@pytest.mark.integration
async def test_random_ids_reach_the_server_exactly_as_quoted(guard: Guard) -> None:
    """300 seeded random ids each reach a real server as their own quoted segment, in order."""
    rng = random.Random(20240301)
    ids = [random_id(rng) for _ in range(300)]
    async with guard.server(reply()) as server, guard.client(server) as client:
        for lead_id in ids:
            await client.get_lead(lead_id)
    assert server.targets == ["/v1/campaigns-leads/" + quote_segment(i) for i in ids]
    assert [unquote(t.rsplit("/", 1)[1], errors="strict") for t in server.targets] == ids
    assert server.connections == 1


# --- the lead parser on hostile JSON text ---------------------------------------------------

LEAD_TEXT = json.dumps(LEAD).encode()


@st.composite
def damaged_leads(draw: st.DrawFn) -> bytes:
    """A valid lead body cut, spliced, or with bytes dropped, inserted or replaced."""
    body = bytearray(LEAD_TEXT)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["cut", "drop", "insert", "replace", "splice"]))
        if action == "cut":
            del body[at:]
        elif action == "drop":
            del body[at : at + draw(st.integers(1, 8))]
        elif action == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "replace" and at < len(body):
            body[at] = draw(st.integers(0, 255))
        elif action == "splice":
            body[at:at] = draw(st.sampled_from(TOKENS))
    return bytes(body)


TOKENS = [
    b'"',
    b"\\",
    b"\\u",
    b'\\ud800"',
    b'"\\udc00\\ud800"',
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"NaN",
    b"-Infinity",
    b"1e999",
    b"-0",
    b"9" * 5000,
    b"[" * 3000,
    b'{"id": 1}',
    b',"id":"other"',
    b',"status":null',
    b',"created_at":"2024-02-30T00:00:00Z"',
    b",",
    b"}",
    b"]",
    b"true",
    b"null",
]

json_tokens = st.lists(
    st.sampled_from([*TOKENS, b"{", b":", b'"id"', b'"lead"', b" ", b"\n", b"0", b"1.5e3"]),
    max_size=30,
).map(b"".join)

# Integers beyond the 4,300-digit str() limit, nesting past the recursion limit, NaN and
# duplicate keys inside an otherwise valid lead.
hostile_leads = st.one_of(
    st.integers(4000, 6000).map(lambda n: LEAD_TEXT[:-1] + b',"metadata":{"n":' + b"7" * n + b"}}"),
    st.integers(500, 20_000).map(
        lambda n: LEAD_TEXT[:-1] + b',"notes":' + b"[" * n + b"]" * n + b"}"
    ),
    st.sampled_from([b"NaN", b"Infinity", b"1e400", b"-1e400", b'"\\ud800"']).map(
        lambda v: LEAD_TEXT[:-1] + b',"metadata":{"x":' + v + b"}}"
    ),
    st.sampled_from([b'"status":1', b'"id":"a","id":null', b'"created_at":"x"']).map(
        lambda v: LEAD_TEXT[:-1] + b"," + v + b"}"
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=damaged_leads() | json_tokens | hostile_leads)
def test_decode_lead_on_hostile_json_is_lead_or_validation_error(body: bytes) -> None:
    """Damaged, deeply nested, huge-number and token-soup bodies give a Lead or a
    ResponseValidationError carrying a bounded body, and nothing else."""
    outcome = lead_or_error(body)
    if isinstance(outcome, dnx.ResponseValidationError):
        assert len(str(outcome)) < 5000
        assert not isinstance(outcome.body, str) or len(outcome.body) <= 2048
    else:
        assert outcome.created_at.tzinfo is not None


def lead_or_error(body: bytes) -> dnx.Lead | dnx.ResponseValidationError:
    """The lead ``decode_lead`` returns, or the ResponseValidationError it raises."""
    try:
        return decode_lead(body)
    except dnx.ResponseValidationError as error:
        return error


# --- the whole interpretation of an answer -------------------------------------------------


@settings(deadline=None)  # the deep bodies of error_bodies can take a while
@given(status=st.integers(100, 599), headers=header_maps, body=error_bodies | st.just(LEAD_TEXT))
def test_interpret_decides_any_answer(status: int, headers: CIMultiDict[str], body: bytes) -> None:
    """Any answer is interpreted without raising: a 2xx is a Lead or a ResponseValidationError,
    anything else the APIStatusError of its status, and rate control hears of every non-2xx."""
    outcome, answer = interpret(status, headers, body, now=NOW, attempts=2)
    if 200 <= status < 300:
        assert isinstance(outcome, (dnx.Lead, dnx.ResponseValidationError))
        assert answer is None or answer.rate_limit is not None
    else:
        assert isinstance(outcome, dnx.APIStatusError)
        assert outcome.status_code == status
        assert outcome.attempts == 2
        assert answer is not None
        assert answer.status == status
        assert answer.retry_after == outcome.retry_after
