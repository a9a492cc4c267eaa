"""A client-wide retry budget: retries draw tokens that successes refill.

As in botocore's standard mode and gRPC retry throttling: during a sustained outage the bucket
drains and failing requests end at once, so the outage costs a bounded extra load instead of
multiplying every request by ``max_retries``. 429s are free: slowing down is the pacing's job,
and a rate-limited bulk job must never fail for want of budget.
"""

from __future__ import annotations

from ._errors import APIStatusError, APITimeoutError, DialNexaError

__all__ = ["RetryBudget"]

CAPACITY = 500.0
"""Tokens in a full bucket (botocore's value)."""

RETRY_COST = 5.0
"""Tokens one retry takes; a success gives one back, so retries can sustain 20% of traffic."""

TIMEOUT_RETRY_COST = 10.0
"""Tokens a retry after a timeout takes: a slow server is not helped by more requests."""

SUCCESS_REFILL = 1.0
"""Tokens each success puts back."""


class RetryBudget:
    """The token bucket retries draw from.

    Args:
        capacity: tokens in a full bucket; the bucket starts full.
    """

    def __init__(self, capacity: float = CAPACITY) -> None:
        self.capacity = capacity
        self.tokens = capacity
        self.denied = 0
        """Retries refused because the bucket was empty."""

    def withdraw(self, error: DialNexaError) -> bool:
        """Take the cost of retrying after ``error``; ``False`` when the bucket cannot pay."""
        if isinstance(error, APIStatusError) and error.status_code == 429:
            return True
        cost = TIMEOUT_RETRY_COST if isinstance(error, APITimeoutError) else RETRY_COST
        if self.tokens < cost:
            self.denied += 1
            return False
        self.tokens -= cost
        return True

    def deposit(self) -> None:
        """Refill after a success."""
        tokens = self.tokens + SUCCESS_REFILL
        self.tokens = tokens if tokens < self.capacity else self.capacity
