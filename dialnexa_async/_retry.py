"""The tenacity retry policy, built from the I/O-free decisions in ``_sansio``.

One ``RetryPolicy`` per client holds the stateless strategy objects; every call gets a fresh
``AsyncRetrying`` from ``new_retrying()``, since a shared one would mix the attempt counts of
concurrent tasks. ``CancelledError`` is a ``BaseException`` that ``is_retryable`` never accepts,
so cancellation always propagates instead of being retried (jd/tenacity#529).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

import attrs
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from ._constants import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
)
from ._errors import APIStatusError, DialNexaError, RateLimitError
from ._rate_control import MIN_SERVER_WAIT
from ._retry_budget import RetryBudget
from ._sansio.backoff import full_jitter
from ._sansio.classify import exceeds_max_wait, is_retryable

__all__ = ["RetryPolicy", "logger"]

logger = logging.getLogger("dialnexa_async")
logger.addHandler(logging.NullHandler())


@attrs.frozen
class RetryPolicy:
    """Which failures are retried, how often, and how long to wait between attempts.

    Args:
        max_retries: retries after the first attempt; 0 turns retrying off.
        backoff_initial: ceiling of the first jittered backoff, in seconds.
        backoff_max: ceiling of any jittered backoff, in seconds.
        max_retry_wait: a server-given wait longer than this is not slept; the call fails.
        rand: a source of floats in ``[0, 1)`` for the jitter.
        budget: the client-wide retry budget every retry draws from.
        shared_pause: the seconds left in the client-wide pause; a 429 that gave no wait
            waits that out instead of a backoff of its own, so the client backs off as one.
        resets_overstate: whether the client has seen the server admit requests well before
            the resets its 429s stated (its headers describe no fixed window, or probes beat
            its pauses): a 429 with a reset but no ``Retry-After`` then backs off as one with
            no hint, never past that reset.
    """

    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES)
    backoff_initial: float = BACKOFF_INITIAL
    backoff_max: float = BACKOFF_MAX
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT
    rand: Callable[[], float] = attrs.field(default=random.random, repr=False)
    budget: RetryBudget = attrs.field(factory=RetryBudget, repr=False)
    shared_pause: Callable[[], float] | None = attrs.field(default=None, repr=False)
    resets_overstate: Callable[[], bool] | None = attrs.field(default=None, repr=False)

    @max_retries.validator
    def _check_max_retries(self, _: object, value: int) -> None:
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"max_retries must be a non-negative int, got {value!r}")

    def should_retry(self, error: BaseException) -> bool:
        """Retry only retryable SDK errors whose server-given wait we are willing to sleep.

        A request the client withheld itself is never retried: it waited its fill already.
        """
        if isinstance(error, RateLimitError) and error.refused_by_client:
            return False
        return is_retryable(error) and not (
            isinstance(error, DialNexaError) and exceeds_max_wait(error, self.max_retry_wait)
        )

    def stop(self, state: RetryCallState) -> bool:
        """Tenacity's stop hook: out of attempts, or out of retry budget."""
        if state.attempt_number > self.max_retries:
            return True
        error = state.outcome.exception() if state.outcome is not None else None
        return isinstance(error, DialNexaError) and not self.budget.withdraw(error)

    def wait(self, state: RetryCallState) -> float:
        """Tenacity's wait hook: the server's word, else full-jitter backoff."""
        error = state.outcome.exception() if state.outcome is not None else None
        if not isinstance(error, DialNexaError):
            return 0.0
        return self.delay(error, state.attempt_number)

    def delay(self, error: DialNexaError, attempt: int) -> float:
        """The wait before retrying after ``error``, the ``attempt``-th failure of its call.

        The server's wait, else full-jitter backoff; for a 429 that gave no wait, the longer
        of that backoff and the client-wide pause. A wait the server gave is at least
        ``MIN_SERVER_WAIT``: ``Retry-After: 0`` (or a reset of 0) from a server still refusing
        is no reason to come straight back. A reset (no ``Retry-After``) from a server whose
        resets ``resets_overstate`` is a bound on the wait, not the wait.
        """
        stated = None
        if isinstance(error, APIStatusError) and error.retry_after is not None:
            stated = max(error.retry_after, MIN_SERVER_WAIT)
            if not (
                error._retry_after_is_reset
                and self.resets_overstate is not None
                and self.resets_overstate()
            ):
                return stated
            # No Retry-After, and the quota resets this server states have proved to be no
            # moment capacity returns (a bucket's refill, a sliding window): its reset bounds
            # the wait, and the call backs off as after a 429 with no hint. At the end of a
            # bulk run, where no other request keeps the server busy, a reset slept in full
            # is time lost.
        wait = full_jitter(attempt, self.backoff_initial, self.backoff_max, self.rand)
        if (
            self.shared_pause is not None
            and isinstance(error, APIStatusError)
            and error.status_code == 429
        ):
            # The client-wide pause, when longer: the client backs off as one. Never less
            # than the call's own backoff: rate control may have nothing to hold it with (no
            # hint, no inference standing), and a retry sent again at once is refused again
            # until the call's attempts are gone.
            wait = max(wait, self.shared_pause())
        return wait if stated is None else min(stated, wait)

    def withheld(self, error: DialNexaError) -> tuple[str | None, float]:
        """Why a call that ended with ``error`` was not retried although it could have been.

        Returns:
            ``(None, 0)`` when nothing was withheld (the error is final, retries are used
            up, or the client already said it withheld the request); else the reason, for
            the error's message, and how long the call waits before raising it: a call
            refused a retry by the spent budget still waits the backoff it would have
            waited, so a loop of calls during an outage sends no faster than retries would.
        """
        if isinstance(error, RateLimitError) and error.refused_by_client:
            return None, 0.0
        if not is_retryable(error):
            return None, 0.0
        if isinstance(error, APIStatusError) and exceeds_max_wait(error, self.max_retry_wait):
            return (
                f"the server asked to wait {error.retry_after:g}s, longer than "
                f"max_retry_wait={self.max_retry_wait:g}s",
                0.0,
            )
        if error.attempts > self.max_retries:
            return None, 0.0
        return (
            "the client's retry budget is spent: too many requests failed lately",
            self.delay(error, max(error.attempts, 1)),
        )

    def new_retrying(
        self,
        sleep: Callable[[float], Awaitable[None]],
        before_sleep: Callable[[RetryCallState], None] | None = None,
    ) -> AsyncRetrying:
        """A fresh tenacity controller for one call."""
        return AsyncRetrying(
            stop=self.stop,
            wait=self.wait,
            retry=retry_if_exception(self.should_retry),
            sleep=sleep,
            reraise=True,
            before_sleep=before_sleep or log_retry,
        )


def log_retry(state: RetryCallState) -> None:
    """Log one retry: 429s at INFO (pacing at work), every other fault at WARNING."""
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.upcoming_sleep
    if isinstance(error, APIStatusError):
        level = logging.INFO if error.status_code == 429 else logging.WARNING
        what = f"HTTP {error.status_code}"
    else:
        level = logging.WARNING
        what = type(error).__name__
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "retrying after %s (attempt %d) in %.2fs: %s",
            what,
            state.attempt_number,
            wait,
            error,
        )
