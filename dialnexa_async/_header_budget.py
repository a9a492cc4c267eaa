"""The window budget a server states in its rate-limit headers (any dialect).

An answer to request number ``s`` saying ``remaining: r`` means requests up to number
``s + r`` fit in the window; later ones wait for the window's end, estimated as the earliest
``arrival + reset`` seen in that window (an upper bound of the true end, tight even when the
server rounds ``reset`` up to seconds).

An answer to a request numbered before the tracked window opened (one in flight across its
start) speaks of an older window and is not counted: its ``remaining`` would end the new
window's budget at once.

Invariants:
- Within one window, the end and the last admissible number only move earlier.
- Pure and clock-driven: every method takes ``now`` or a ticket.
"""

from __future__ import annotations

import math
from typing import Protocol

from ._sansio.headers import RateLimitInfo

__all__ = ["HeaderBudget"]


class _Sent(Protocol):
    @property
    def seq(self) -> int: ...

    @property
    def sent_at(self) -> float: ...


class HeaderBudget:
    """Requests left in the server's current window, and when the window ends."""

    def __init__(self) -> None:
        self.end = -math.inf
        self.last_seq: float = math.inf
        self.limit: int | None = None
        self.length = 0.0
        """The longest reset seen: the window's length, as far as the headers tell."""
        self.opened_seq = 0
        """The first request number of the tracked window: answers to earlier ones are old."""

    def observe(self, info: RateLimitInfo, ticket: _Sent, now: float) -> None:
        """Learn from headers that state both ``remaining`` and ``reset``."""
        remaining, reset = info.remaining, info.reset
        assert remaining is not None
        assert reset is not None
        end = now + reset
        last_seq = ticket.seq + remaining
        if info.limit is not None:
            self.limit = info.limit
        if reset > self.length:
            self.length = reset
        if ticket.sent_at >= self.end:
            # Sent after the tracked window surely ended: this answer opens a newer window.
            self.end = end
            self.last_seq = last_seq
            self.opened_seq = ticket.seq
            return
        if ticket.seq < self.opened_seq:
            return  # in flight when the tracked window opened: it speaks of the one before
        if end < self.end:
            self.end = end
        if last_seq < self.last_seq:
            self.last_seq = last_seq

    def exhausted(self, seq: int) -> bool:
        """Whether request number ``seq + 1`` is past the window's budget."""
        return seq >= self.last_seq

    def wait(self, seq: int, now: float) -> float:
        """Seconds request number ``seq + 1`` must wait for the window to end (0: it fits)."""
        if seq < self.last_seq:
            return 0.0
        if now >= self.end:
            # The tracked window is over: trust the known limit until answers from the new
            # one speak. The server opens it at our first request, so its end is about one
            # length away; twice that is a bound the answers will tighten.
            limit = self.limit
            self.last_seq = math.inf if limit is None else seq + limit
            self.end = now + 2 * self.length
            self.opened_seq = seq + 1
            return 0.0
        return self.end - now
