"""Cumulative counters of one client's traffic."""

from __future__ import annotations

from tenacity import RetryCallState

from ._errors import APIConnectionError, APIStatusError, DialNexaError, RateLimitError
from ._rate_control import ClientRateControl
from ._retry import log_retry

__all__ = ["ClientStats"]


class ClientStats:
    """What a client has done since it was created; read it at any time.

    Attributes:
        requests: HTTP attempts sent.
        retries: attempts that were retries of an earlier one.
        rate_limited: answers with status 429 from the server (never the client's refusals).
        refused: requests the client withheld itself, sending nothing, because it was paused
            by the server's rate limit for longer than ``max_retry_wait``; not in ``requests``.
        server_errors: answers with a 5xx status.
        connection_errors: attempts that got no HTTP answer (timeouts included).
        resends: requests resent at once because a pooled keep-alive connection had been
            closed before any answer (RFC 9112 allows it for idempotent requests); each went
            through rate control again but is not an attempt or a retry.
    """

    __slots__ = (
        "_rate",
        "connection_errors",
        "rate_limited",
        "refused",
        "requests",
        "resends",
        "retries",
        "server_errors",
    )

    def __init__(self, rate: ClientRateControl) -> None:
        self._rate = rate
        self.resends = 0
        self.requests = 0
        self.retries = 0
        self.rate_limited = 0
        self.refused = 0
        self.server_errors = 0
        self.connection_errors = 0

    @property
    def send_rate(self) -> float:
        """Requests sent per second over the last second."""
        return self._rate.send_rate()

    @property
    def concurrency_limit(self) -> int:
        """The current adaptive limit on requests in flight."""
        return self._rate.concurrency.limit

    @property
    def cooldown_seconds(self) -> float:
        """Seconds the whole client spent paused by the server's rate limit."""
        return self._rate.cooldown_seconds

    def record_failure(self, error: DialNexaError) -> None:
        """Count one failed attempt by kind, or one request the client refused to send."""
        if isinstance(error, APIStatusError):
            if isinstance(error, RateLimitError) and error.refused_by_client:
                self.refused += 1
            elif error.status_code == 429:
                self.rate_limited += 1
            elif error.status_code >= 500:
                self.server_errors += 1
        elif isinstance(error, APIConnectionError):
            self.connection_errors += 1

    def on_retry(self, state: RetryCallState) -> None:
        """Tenacity's before-sleep hook: count the retry, then log it."""
        self.retries += 1
        log_retry(state)

    def as_dict(self) -> dict[str, float]:
        """The counters as a plain dict."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "refused": self.refused,
            "server_errors": self.server_errors,
            "connection_errors": self.connection_errors,
            "resends": self.resends,
            "cooldown_seconds": self.cooldown_seconds,
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v:g}" for k, v in self.as_dict().items())
        return f"ClientStats({fields})"
