"""Numbers with meaning, in one place."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.dialnexa.com/v1"
"""The versioned API root; the unversioned legacy routes answer 404 since 2026-07-31."""

API_KEY_ENV = "DIALNEXA_API_KEY"
BASE_URL_ENV = "DIALNEXA_BASE_URL"

DEFAULT_TIMEOUT = 30.0
"""Seconds one attempt may take from sending the request to the last byte of the body."""

DEFAULT_MAX_RETRIES = 3
"""Retries after the first attempt, so at most four attempts per request."""

DEFAULT_MAX_CONCURRENCY = 64
"""Requests in flight at once across the whole client."""

DEFAULT_MAX_RETRY_WAIT = 60.0
"""A server-given wait longer than this is not slept: the call fails with the wait attached."""

DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
"""A lead is well under a kilobyte; anything past a mebibyte is not a lead."""

BACKOFF_INITIAL = 0.5
"""Upper bound of the first jittered backoff, in seconds; it doubles per retry."""

BACKOFF_MAX = 8.0
"""The jittered backoff never draws from a range wider than this."""

MAX_SERVER_DELAY = 86_400.0
"""A parsed Retry-After or reset is clamped to a day so arithmetic on it stays finite."""

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Answers that are safe to retry for a read: timeouts, rate limits and transient 5xx."""

ERROR_BODY_PREVIEW = 2048
"""How much of a non-JSON error body an exception keeps, in characters."""

RESET_EPOCH_SECONDS = 1e9
"""A rate-limit reset above this is a POSIX timestamp in seconds, not a delta (GitHub's form):
1e9 seconds is 2001-09-09 as a date and 31 years as a delta, which no window lasts."""

RESET_EPOCH_MILLISECONDS = 1e12
"""A rate-limit reset above this is a POSIX timestamp in milliseconds (2001-09-09 onwards)."""
