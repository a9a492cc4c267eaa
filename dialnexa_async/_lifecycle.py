"""A client's lifetime: the event loop it belongs to, and closing, which ends its sleeps.

A client belongs to the first event loop it runs on: its connection pool, its waiters and its
futures are that loop's. Used from another loop it raises ``DialNexaError`` saying so, instead
of aiohttp's ``RuntimeError: Event loop is closed`` from deep inside a request. ``close()``
ends it for good: every later use raises ``DialNexaError("the client is closed")``, and every
sleep in progress (a retry's backoff, a wait for the server's pause) ends at once with that
error, so the calls in flight end promptly instead of waking later to reopen the pool.

A call may also give its sleeps a deadline (``sleeps_until``): rate control then cannot hold a
retry past it, however often the server renews its pause.

Invariants:
- ``closed`` only goes from ``False`` to ``True``.
- A sleeper of the system clock is in ``_sleepers`` exactly while it sleeps; ``close()`` wakes
  them all, and each then raises the closed error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from ._clock import Clock, SystemClock
from ._errors import DialNexaError

__all__ = ["CLOSED", "OTHER_LOOP", "Lifecycle", "WaitOverdue", "closed_error", "sleeps_until"]

CLOSED = "the client is closed"
"""The message of every error a closed client raises."""

OTHER_LOOP = (
    "this client belongs to another event loop (the first one it ran on); create one "
    "AsyncDialNexa per event loop, inside it (for example in the coroutine you pass to "
    "asyncio.run), and close it there"
)


def closed_error(attempts: int = 0) -> DialNexaError:
    """The error of a call that a closed client ended.

    Args:
        attempts: the requests the call had sent.
    """
    return DialNexaError(CLOSED, attempts=attempts)


class WaitOverdue(Exception):
    """A sleep would end past the deadline the current call set for its sleeps."""


_DEADLINE: ContextVar[float | None] = ContextVar("dialnexa_async_sleep_deadline", default=None)
"""The moment (on the client's clock) past which the current task's sleeps may not run."""


@contextlib.contextmanager
def sleeps_until(deadline: float) -> Iterator[None]:
    """Within this block, a sleep of the current task that would end past ``deadline`` raises
    ``WaitOverdue`` at once instead.

    Args:
        deadline: a time on the client's clock (``monotonic()``).
    """
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


class Lifecycle:
    """One client's loop binding and closed state, and the clock its waits go through.

    Args:
        clock: the clock the caller chose; ``self.clock`` wraps it.
    """

    def __init__(self, clock: Clock) -> None:
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.clock = _ClosingClock(clock, self)
        """The clock rate control and retries sleep on: closing ends its sleeps."""

    def check(self) -> None:
        """Raise unless the client is open and this is its loop; bind it on first use.

        Raises:
            DialNexaError: the client is closed, or belongs to another event loop.
        """
        if self.closed:
            raise closed_error()
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                raise DialNexaError(OTHER_LOOP)
            self._loop = loop

    def foreign(self) -> bool:
        """Whether the client is bound to a loop other than the running one (closed or not)."""
        loop = self._loop
        return loop is not None and loop is not asyncio.get_running_loop()

    def loop_is_closed(self) -> bool:
        """Whether the loop the client is bound to has been closed."""
        return self._loop is not None and self._loop.is_closed()

    def close(self) -> None:
        """Mark the client closed and end every sleep in progress."""
        self.closed = True
        self.clock.wake_all()


class _ClosingClock:
    """The caller's clock, with sleeps that closing ends and that respect a call's deadline.

    The system clock's sleeps are futures the client can wake; another clock (a
    ``VirtualClock`` in tests) is slept on as is, and closing is noticed when it returns.
    """

    def __init__(self, clock: Clock, lifecycle: Lifecycle) -> None:
        # Bound methods, not wrappers: reading the time costs nothing more than before.
        self.monotonic = clock.monotonic
        self.time = clock.time
        self._sleep = clock.sleep
        self._own_timer = type(clock) is SystemClock
        self._lifecycle = lifecycle
        self._sleepers: set[asyncio.Future[None]] = set()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, unless the client closes first or a deadline forbids it.

        Raises:
            DialNexaError: the client is (or became) closed.
            WaitOverdue: the sleep would end past the current call's deadline.
        """
        lifecycle = self._lifecycle
        if lifecycle.closed:
            raise closed_error()
        deadline = _DEADLINE.get()
        if deadline is not None and self.monotonic() + seconds > deadline:
            raise WaitOverdue
        if not self._own_timer or seconds <= 0:
            await self._sleep(seconds)
        else:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            timer = loop.call_later(seconds, _wake, waiter)
            self._sleepers.add(waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._sleepers.discard(waiter)
        if lifecycle.closed:
            raise closed_error()

    def wake_all(self) -> None:
        """End every sleep in progress now."""
        for waiter in self._sleepers:
            _wake(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
