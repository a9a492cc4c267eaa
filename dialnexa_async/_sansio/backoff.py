"""How long to wait before the next attempt."""

from __future__ import annotations

from collections.abc import Callable

from .._errors import APIStatusError, DialNexaError

_MAX_EXPONENT = 32


def full_jitter(attempt: int, initial: float, maximum: float, rand: Callable[[], float]) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(maximum, initial * 2**(n-1)))``.

    Args:
        attempt: the number of the attempt that just failed, from 1.
        initial: the ceiling of the first draw, in seconds.
        maximum: the ceiling no draw exceeds, in seconds.
        rand: a source of floats in ``[0, 1)``.
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    return min(maximum, initial * float(2**exponent)) * rand()


def retry_wait(
    error: DialNexaError,
    attempt: int,
    *,
    initial: float,
    maximum: float,
    rand: Callable[[], float],
) -> float:
    """The wait before retrying after ``error``: the server's word if it gave one, else backoff."""
    if isinstance(error, APIStatusError) and error.retry_after is not None:
        return error.retry_after
    return full_jitter(attempt, initial, maximum, rand)
