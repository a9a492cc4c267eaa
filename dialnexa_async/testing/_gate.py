"""The rate-limit gate in front of the simulated API, with no I/O: limiter, headers, 429 body.

``RateGate`` turns the live ``SimulatorConfig`` into a limiter, asks it about each request
and renders the answer (status, headers, body) in the configured dialect. The server drives
it over HTTP; a virtual-time harness can drive the same object with plain calls. This module
also holds the bodies gateways and the API answer with, so every answer is built one way.
"""

from __future__ import annotations

import dataclasses
import http
import json

from ._config import SimulatorConfig
from ._dialects import render_headers
from ._limiters import (
    BlockPenalty,
    ChangingLimit,
    ConcurrencyLimit,
    FixedWindow,
    LeakyBucket,
    Limiter,
    ScalableLimiter,
    SlidingWindowCounter,
    SlidingWindowLog,
    TokenBucket,
)

JSON = "application/json"
HTML = "text/html"
TEXT = "text/plain"

_OK = 200
_TOO_MANY = 429
# What gateways that answer 429 in HTML or with no body at all call themselves.
_GATEWAY_SERVER = {"Server": "nginx"}


def reason_phrase(status: int) -> str:
    """The standard reason phrase of a status, or ``Error`` for one without.

    Args:
        status: An HTTP status code.
    """
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def envelope(status: int, message: str | list[str]) -> bytes:
    """The API's (NestJS) JSON error body.

    Args:
        status: The HTTP status it goes with.
        message: What went wrong; validation errors are a list.
    """
    body = {"statusCode": status, "message": message, "error": reason_phrase(status)}
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def gateway_page(status: int) -> bytes:
    """The HTML error page nginx sends when it answers for the API.

    Args:
        status: The HTTP status it goes with.
    """
    title = f"{status} {reason_phrase(status)}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode("ascii")


_TOO_MANY_JSON = envelope(_TOO_MANY, reason_phrase(_TOO_MANY))
_TOO_MANY_HTML = gateway_page(_TOO_MANY)
_TOO_MANY_TEXT = reason_phrase(_TOO_MANY).encode("ascii")


@dataclasses.dataclass(frozen=True)
class GateAnswer:
    """The gate's decision on one request, ready to send.

    Args:
        admitted: Whether the request goes on to the API (else answer ``status`` now).
        status: 200 when admitted, 429 when refused.
        delay: Seconds to hold an admitted request before going on (queueing limiters).
        headers: Rate-limit headers (and ``Retry-After``, ``Server``) to add to the answer.
        body: The 429 body; ``None`` when admitted or when the 429 has no body.
        content_type: The 429 body's type; ``None`` when admitted or without a body.
    """

    admitted: bool
    status: int
    delay: float
    headers: dict[str, str]
    body: bytes | None = None
    content_type: str | None = None


def make_limiter(config: SimulatorConfig, *, in_flight: int = 0) -> Limiter:
    """Build the limiter a config describes.

    Args:
        config: Uses ``limiter``, ``rate_limit`` (which must be set), ``rate_window``,
            ``burst``, ``block_period`` and ``limit_schedule``.
        in_flight: Requests already admitted and not yet finished, carried into a
            concurrency limiter built mid-run; the other limiters ignore it.
    """
    limit = config.rate_limit
    if limit is None:
        raise ValueError("rate_limit is None: there is no limiter to build")
    window = config.rate_window
    burst = limit if config.burst is None else config.burst
    kind = config.limiter
    limiter: ScalableLimiter
    if kind == "fixed-window":
        limiter = FixedWindow(limit, window)
    elif kind == "sliding-log":
        limiter = SlidingWindowLog(limit, window)
    elif kind == "sliding-counter":
        limiter = SlidingWindowCounter(limit, window)
    elif kind == "token-bucket":
        limiter = TokenBucket(limit / window, burst)
    elif kind == "leaky-bucket":
        limiter = LeakyBucket(limit / window, burst)
    elif kind == "concurrency":
        limiter = ConcurrencyLimit(limit, in_flight=in_flight)
    elif kind == "block":
        block = window if config.block_period is None else config.block_period
        limiter = BlockPenalty(limit, window, block)
    else:
        raise ValueError(f"unknown limiter {kind!r}")
    if config.limit_schedule:
        return ChangingLimit(limiter, config.limit_schedule)
    return limiter


def _limiter_key(config: SimulatorConfig) -> tuple[object, ...]:
    """Every config field the limiter is built from; a change means a new limiter."""
    return (
        config.limiter,
        config.rate_limit,
        config.rate_window,
        config.burst,
        config.block_period,
        config.limit_schedule,
    )


class RateGate:
    """Decides, for each request, whether the simulated gateway lets it through, and says so.

    The config is read live on every check: when a field the limiter depends on changes, the
    limiter is rebuilt (forgetting its counts, as a gateway reloading its config would).

    Args:
        config: The simulator's live configuration.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._limiter: Limiter | None = None
        self._key: tuple[object, ...] | None = None
        # Admitted by check() and not yet reported done(), whatever limiter was in force;
        # carried into a concurrency limiter built while they are still running.
        self._in_flight = 0
        # Refused by check() and not yet reported done(). A done() is matched to a refusal
        # first: callers report refusals at once, so this pairs each done() with its own
        # check(), and in any order it can only hold a slot longer, never free one early.
        self._refused_open = 0

    @property
    def limiter(self) -> Limiter | None:
        """The limiter in force, or ``None`` before the first check or without a limit."""
        return self._limiter

    def reset(self) -> None:
        """Forget the limiter's counts; requests still in flight stay counted."""
        self._limiter = None
        self._key = None

    def check(self, now: float, wall_now: float, send_retry_after: bool) -> GateAnswer:
        """Decide on a request arriving now; call ``done`` once it is answered, whatever the answer.

        Args:
            now: Monotonic seconds, from the config's ``clock``.
            wall_now: POSIX seconds, from the config's ``wall_clock``.
            send_retry_after: Whether a refusal carries ``Retry-After``.
        """
        cfg = self.config
        if cfg.rate_limit is None:
            self._limiter = None
            self._key = None
            self._in_flight += 1
            return GateAnswer(admitted=True, status=_OK, delay=0.0, headers={})
        key = _limiter_key(cfg)
        limiter = self._limiter
        if limiter is None or key != self._key:
            limiter = self._limiter = make_limiter(cfg, in_flight=self._in_flight)
            self._key = key
        verdict = limiter.admit(now)
        headers = render_headers(
            cfg.rate_limit_dialect if cfg.rate_limit_headers else "none",
            verdict,
            wall_now=wall_now,
            fractional=cfg.fractional_reset,
            retry_after=send_retry_after,
            retry_after_date=cfg.retry_after_date,
        )
        if verdict.admitted:
            self._in_flight += 1
            return GateAnswer(admitted=True, status=_OK, delay=verdict.delay, headers=headers)
        self._refused_open += 1
        body_kind = cfg.rate_limit_body
        if body_kind == "json":
            body: bytes | None = _TOO_MANY_JSON
            content_type: str | None = JSON
        elif body_kind == "text":
            body, content_type = _TOO_MANY_TEXT, TEXT
        else:
            headers.update(_GATEWAY_SERVER)
            body, content_type = (_TOO_MANY_HTML, HTML) if body_kind == "html" else (None, None)
        return GateAnswer(
            admitted=False,
            status=_TOO_MANY,
            delay=0.0,
            headers=headers,
            body=body,
            content_type=content_type,
        )

    def done(self, now: float) -> None:
        """Note that a checked request was answered; an admitted one frees its concurrency slot.

        Call it exactly once per ``check``, refused or admitted, a refusal's before awaiting.

        Args:
            now: Monotonic seconds.
        """
        if self._refused_open:
            self._refused_open -= 1
            return
        self._in_flight = max(0, self._in_flight - 1)
        if self._limiter is not None:
            self._limiter.release(now)
