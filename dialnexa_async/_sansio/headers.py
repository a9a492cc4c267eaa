"""Reading the rate-limit headers: ``Retry-After`` and every ``RateLimit`` dialect in use.

``RateLimitInfo.from_headers`` reads the first of these dialects an answer carries:

- IETF draft-8 and later: ``RateLimit: "default";r=19;t=1`` with
  ``RateLimit-Policy: "default";q=20;w=1``, both structured-field lists whose items pair up by
  name (express-rate-limit ``draft-8``, Cloudflare's API).
- IETF draft-7: ``RateLimit: limit=20, remaining=19, reset=1`` with ``RateLimit-Policy: 20;w=1``.
- IETF draft-6: ``RateLimit-Limit``, ``-Remaining`` and ``-Reset`` with ``RateLimit-Policy``,
  or with the policies riding in the limit itself (``RateLimit-Limit: 20, 20;w=1``).
- ``X-RateLimit-*`` (the API's own, GitHub, envoy) and ``X-Rate-Limit-*`` (Twitter), whose
  reset is delta seconds, an epoch timestamp in seconds or milliseconds, or an HTTP date.

Every parser returns ``None`` for an absent or malformed header or field and never raises: a
server's garbage must not turn a retryable answer into a crash. Headers are read from any
mapping with case-insensitive keys (aiohttp's ``CIMultiDictProxy``) or with lower-case keys.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import NamedTuple

from .._constants import MAX_SERVER_DELAY, RESET_EPOCH_MILLISECONDS, RESET_EPOCH_SECONDS

__all__ = [
    "RateLimitInfo",
    "has_rate_limit_headers",
    "parse_delay_seconds",
    "parse_reset",
    "parse_retry_after",
]

# ASCII only: \s and \d also match characters float() refuses (\x1c-\x1f); HTTP puts only
# spaces and tabs around a field value.
_SECONDS = re.compile(r"[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*")
_MAX_DIGITS = 15
_INTEGER = re.compile(r"[ \t]*([0-9]{1,15})[ \t]*")
_WINDOW = re.compile(r"[ \t]*([0-9]{1,15}(?:\.[0-9]+)?)[ \t]*")

# One token of a structured field: a quoted string (its closing quote optional, so that an
# unterminated one ends the value instead of making the match backtrack), a separator, or a
# run of anything else. The alternatives start with different characters: matching is linear.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[,;]|[^,;"]+', re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_SEPARATOR = re.compile("([,;])")

_TRIPLES = (
    ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy"),
    ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", None),
    ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset", None),
)
"""The three-header dialects, in order of preference: limit, remaining, reset, policy."""

_DRAFT7_KEYS = frozenset({"limit", "remaining", "reset"})


def parse_delay_seconds(value: str | None) -> float | None:
    """A non-negative decimal number of seconds, clamped to a day; ``None`` for anything else."""
    if value is None:
        return None
    match = _SECONDS.fullmatch(value)
    if match is None:
        return None
    # A number too long for a float is a very long wait (inf), not garbage.
    return min(float(match.group(1)), MAX_SERVER_DELAY)


def _seconds_until_date(value: str, now: float) -> float | None:
    """Seconds from ``now`` until an HTTP date, 0 when it is past; ``None`` if not a date."""
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
    return _seconds_until_date(value, now)


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a quota resets, from delta seconds, an epoch timestamp or an HTTP date.

    A number above ``RESET_EPOCH_SECONDS`` is a POSIX timestamp in seconds (GitHub,
    express-rate-limit's legacy header), above ``RESET_EPOCH_MILLISECONDS`` one in
    milliseconds; an HTTP date is Cloudflare's form. Both are turned into seconds from ``now``.

    Args:
        value: the raw header or parameter value, or ``None`` when absent.
        now: the wall-clock time as a POSIX timestamp; ``None`` reads ``time.time()``, and only
            when the value is a timestamp or a date.

    Returns:
        Seconds in ``[0, MAX_SERVER_DELAY]`` (a moment in the past gives 0); ``None`` when the
        value is absent, negative or unparseable.
    """
    if value is None:
        return None
    if value.isdigit() and value.isascii():
        seconds = float(value)  # the common case, without the regex
    else:
        match = _SECONDS.fullmatch(value)
        if match is None:
            return _seconds_until_date(value, time.time() if now is None else now)
        seconds = float(match.group(1))
    if seconds > RESET_EPOCH_SECONDS:
        if seconds > RESET_EPOCH_MILLISECONDS:
            seconds /= 1000.0
        seconds -= time.time() if now is None else now
        if math.isnan(seconds):
            return None
        seconds = max(seconds, 0.0)
    return min(seconds, MAX_SERVER_DELAY)


def _parse_count(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit() and value.isascii() and len(value) <= _MAX_DIGITS:
        return int(value)  # the common case, without the regex
    match = _INTEGER.fullmatch(value)
    return None if match is None else int(match.group(1))


def _parse_window(value: str | None) -> float | None:
    """A policy window: positive decimal seconds; ``None`` for zero or anything else."""
    if value is None:
        return None
    match = _WINDOW.fullmatch(value)
    if match is None:
        return None
    window = float(match.group(1))
    return window if window > 0 else None


def has_rate_limit_headers(headers: Mapping[str, str]) -> bool:
    """Whether an answer carries rate-limit state in any dialect: a few ``in`` checks.

    The hot path parses only when this is true; a header set giving just a reset (and no
    remaining count) is left to ``server_delay``, which reads it on a 429.
    """
    return (
        "x-ratelimit-remaining" in headers
        or "ratelimit" in headers
        or "ratelimit-remaining" in headers
        or "x-rate-limit-remaining" in headers
    )


class _Member(NamedTuple):
    """One member of a structured-field list or dictionary."""

    head: str
    """The bare item (a quoted string keeps its quotes) or the ``key=value`` of a dictionary."""
    params: dict[str, str]
    """The parameters after it, keys lower-cased; a repeated key keeps its last value."""


def _field(headers: Mapping[str, str], name: str) -> str | None:
    """A list-valued header, its repeated lines joined with commas as RFC 9110 5.3 allows."""
    getall = getattr(headers, "getall", None)
    if getall is None:
        return headers.get(name)
    values = getall(name, None)
    if not values:
        return None
    return values[0] if len(values) == 1 else ", ".join(values)


def _members(value: str) -> list[_Member]:
    """Split a structured-field list or dictionary into members; never empty."""
    members: list[_Member] = []
    pieces = [""]  # the member being read: its head, then one piece per parameter
    tokens = _SEPARATOR.split(value)
    if '"' in value and ("\\" in value or any(token.count('"') % 2 for token in tokens)):
        # A separator inside a quoted string: without escapes, a piece between separators
        # then holds an odd number of quotes. Rare, so it alone pays for the tokenizer.
        tokens = _TOKEN.findall(value)
    for token in tokens:
        if token == ",":
            members.append(_member(pieces))
            pieces = [""]
        elif token == ";":
            pieces.append("")
        else:
            pieces[-1] += token
    members.append(_member(pieces))
    return members


def _member(pieces: list[str]) -> _Member:
    """One member from its head and its ``key=value`` parameter pieces."""
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        key, _, value = piece.partition("=")
        params[key.strip().lower()] = value.strip()
    return _Member(pieces[0].strip(), params)


def _unquote(text: str) -> str:
    """The content of a quoted string; other text unchanged (a token name)."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    inner = text[1:-1]
    return _ESCAPE.sub(r"\1", inner) if "\\" in inner else inner


def _policy_window(members: list[_Member], limit: int | None) -> float | None:
    """The window of the policy whose quota is ``limit``, else of the first one that has one.

    A policy's quota is its bare item (``20;w=1``) or its ``q`` parameter (``"p";q=20;w=1``).
    """
    first = None
    for head, params in members:
        window = _parse_window(params.get("w"))
        if window is None:
            continue
        quota = _parse_count(head)
        if quota is None:
            quota = _parse_count(params.get("q"))
        if limit is not None and quota == limit:
            return window
        if first is None:
            first = window
    return first


def _limit_and_window(value: str | None) -> tuple[int | None, float | None]:
    """The quota of a limit header and the window of a policy riding in it (``20, 20;w=1``)."""
    limit = _parse_count(value)
    if limit is not None or value is None or ("," not in value and ";" not in value):
        return limit, None
    members = _members(value)
    limit = _parse_count(members[0].head)
    return limit, _policy_window(members, limit)


def _from_triple(
    limit_value: str | None,
    remaining_value: str | None,
    reset_value: str | None,
    policy_value: str | None,
    now: float | None,
) -> RateLimitInfo | None:
    """Draft-6 and ``X-RateLimit-*``: three headers and maybe a policy."""
    limit, window = _limit_and_window(limit_value)
    remaining = _parse_count(remaining_value)
    reset = parse_reset(reset_value, now)
    if limit is None and remaining is None and reset is None:
        return None
    if policy_value is not None:
        window = _policy_window(_members(policy_value), limit) or window
    return RateLimitInfo(limit, remaining, reset, window)


def _from_ratelimit(
    value: str, policy_value: str | None, now: float | None
) -> RateLimitInfo | None:
    """The ``RateLimit`` header: a draft-7 dictionary or a draft-8 list of named items."""
    members = _members(value)
    fields: dict[str, str] = {}
    for head, _ in members:
        key, equals, item = head.partition("=")
        if equals and not head.startswith('"'):
            fields[key.strip().lower()] = item.strip()
    if _DRAFT7_KEYS.isdisjoint(fields):
        return _from_draft8(members, policy_value, now)
    limit = _parse_count(fields.get("limit"))
    remaining = _parse_count(fields.get("remaining"))
    reset = parse_reset(fields.get("reset"), now)
    if limit is None and remaining is None and reset is None:
        return None
    window = None if policy_value is None else _policy_window(_members(policy_value), limit)
    return RateLimitInfo(limit, remaining, reset, window)


def _from_draft8(
    items: list[_Member], policy_value: str | None, now: float | None
) -> RateLimitInfo | None:
    """The most restrictive draft-8 item (fewest remaining, then the longest reset), with its
    policy's quota and window."""
    best: tuple[str, int | None, float | None] | None = None
    best_key: tuple[float, float] = (math.inf, math.inf)
    for head, params in items:
        remaining = _parse_count(params.get("r"))
        reset = parse_reset(params.get("t"), now)
        if remaining is None and reset is None:
            continue
        key = (math.inf if remaining is None else remaining, -1.0 if reset is None else -reset)
        if best is None or key < best_key:
            best, best_key = (_unquote(head), remaining, reset), key
    if best is None:
        return None
    name, remaining, reset = best
    limit = window = None
    if policy_value is not None:
        policies = _members(policy_value)
        chosen = next((p for p in policies if _unquote(p.head) == name), None)
        if chosen is None and len(items) == 1 and len(policies) == 1:
            # One limit and one policy under different names (Cloudflare's documented example
            # pairs "default" with "burst"): they can only describe each other.
            chosen = policies[0]
        if chosen is not None:
            limit = _parse_count(chosen.params.get("q"))
            window = _parse_window(chosen.params.get("w"))
    return RateLimitInfo(limit, remaining, reset, window)


class RateLimitInfo(NamedTuple):
    """What one answer said about the rate-limit quota, in whichever dialect it said it.

    Args:
        limit: requests allowed per window (the policy's quota), when sent.
        remaining: requests left in this window, when sent.
        reset: seconds from now until the quota resets, when sent.
        window: the policy's window length in seconds, when the server states it.
    """

    limit: int | None
    remaining: int | None
    reset: float | None
    window: float | None = None

    @classmethod
    def from_headers(
        cls, headers: Mapping[str, str], now: float | None = None
    ) -> RateLimitInfo | None:
        """Read the first rate-limit dialect present; ``None`` when none gives a usable field.

        Preference: ``RateLimit`` (draft-8, then draft-7), ``RateLimit-Limit/-Remaining/-Reset``
        (draft-6), ``X-RateLimit-*``, ``X-Rate-Limit-*``. A dialect whose every field is garbage
        gives way to the next.

        Args:
            headers: the answer's headers (case-insensitive mapping, or lower-case keys).
            now: the wall-clock time as a POSIX timestamp, to turn an epoch or date reset into
                seconds; ``None`` reads ``time.time()`` when one is met.
        """
        get = headers.get
        if get("ratelimit") is not None:
            value = _field(headers, "ratelimit")
            if value is not None:
                info = _from_ratelimit(value, _field(headers, "ratelimit-policy"), now)
                if info is not None:
                    return info
        for limit_name, remaining_name, reset_name, policy_name in _TRIPLES:
            limit = get(limit_name)
            remaining = get(remaining_name)
            reset = get(reset_name)
            if limit is None and remaining is None and reset is None:
                continue
            policy = None if policy_name is None else _field(headers, policy_name)
            info = _from_triple(limit, remaining, reset, policy, now)
            if info is not None:
                return info
        return None
