"""The window budget a server states in its rate-limit headers (any dialect).

An answer to request number ``s`` saying ``remaining: r`` means requests up to number
``s + r`` fit in the window; later ones wait for the window's end, estimated as the earliest
``arrival + reset`` seen in that window (an upper bound of the true end, tight even when the
server rounds ``reset`` up to seconds).

An answer to a request numbered before the tracked window opened (one in flight across its
start) speaks of an older window and is not counted: its ``remaining`` would end the new
window's budget at once.

Requests reach the server in another order than they were numbered (per-request jitter,
several connections), so the count can run out before the server's: request ``s`` may have
been counted after later ones, and ``s + r`` then falls short. A probe the server admits
through a count no answer stated spent recounts from its own answer (``recount``); one
admitted after an answer said ``remaining: 0`` shows the headers describe no fixed window.

Invariants:
- Within one window, the end and the last admissible number only move earlier.
- Pure and clock-driven: every method takes ``now`` or a ticket.
"""

from __future__ import annotations

import math
from typing import Protocol

from ._sansio.headers import RateLimitInfo

__all__ = ["HeaderBudget"]

FRESH_SLACK = 2
"""Requests a fresh window may count beyond the client's own since its end: probes sent in the
last moments of a window whose end the client estimated late."""

FRESH_SLACK_SHARE = 0.05
"""The same, as a share of the limit, whichever is larger."""


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
        self.spent_seq: float = math.inf
        """The lowest request number of the tracked window whose answer stated ``remaining: 0``
        (``inf``: none did, so only the client's own count says the budget is spent)."""
        self.assumed = False
        """Whether ``last_seq`` is the known limit counted from a window's end, not yet an
        answer's count (which requests reaching the server out of order can make fall short)."""
        self.fresh = False
        """Whether the tracked window is one the client took as fresh when the last one's end
        passed (it began with request ``opened_seq``)."""

    def observe(
        self, info: RateLimitInfo, ticket: _Sent, now: float, sent: int | None = None
    ) -> bool:
        """Learn from headers that state both ``remaining`` and ``reset``.

        ``sent``: the number of the client's latest request, when no other client shares the
        key. Returns ``False`` when the answer shows the headers describe no fixed window: in
        a window the client took as fresh (its end passed), the server remembers more
        requests than the client sent since, as a sliding window does.
        """
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
            self.spent_seq = ticket.seq if remaining == 0 else math.inf
            self.fresh = False
            self.assumed = False
            return True
        if ticket.seq < self.opened_seq:
            return True  # in flight when the tracked window opened: it speaks of the one before
        limit = self.limit
        if self.fresh and sent is not None and limit is not None:
            # A fixed window that reopened has counted at most the requests sent since.
            counted = sent - self.opened_seq + 1
            if remaining < limit - counted - max(FRESH_SLACK, limit * FRESH_SLACK_SHARE):
                return False
        if remaining == 0 and ticket.seq < self.spent_seq:
            self.spent_seq = ticket.seq
        if end < self.end:
            self.end = end
        if last_seq < self.last_seq:
            self.last_seq = last_seq
            self.assumed = False
        return True

    def recount(self, info: RateLimitInfo, ticket: _Sent) -> bool:
        """A probe held by the spent budget was admitted: recount from its answer if only the
        client's own count said spent (``True``); ``False`` if an answer to an earlier request
        of the window stated it spent, so the headers describe no fixed window.
        """
        remaining = info.remaining
        assert remaining is not None
        if ticket.seq > self.spent_seq:
            return False
        self.last_seq = max(self.last_seq, ticket.seq + remaining)
        self.assumed = False
        return True

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
            self.spent_seq = math.inf
            self.fresh = True
            self.assumed = True
            return 0.0
        return self.end - now
