"""A fixed window inferred from hintless 429s: how many requests it admits, and how long it lasts.

A gateway that answers 429 with no ``Retry-After`` and no rate-limit headers still leaves
evidence when it counts requests in fixed windows: a window admits the same number of
requests each time, and a request sent once the window has turned gets through again. So:

- **Budget.** The server refuses requests in the order they reach it, so the requests sent
  since the window opened and before the first refused one are what a window admits,
  answered or not. Each later window sends that many and stops, so a steady run sees no 429
  at all.
- **Length.** The window's length lies between a lower bound (a request sent that long
  after the opening was refused) and an upper bound (a request sent that long after it was
  admitted by a new window). Once a window is spent, one probe goes out; every other
  request waits for its answer, which narrows the bounds. When they are within
  ``PRECISION`` the probe goes at the upper bound.
- **Where the probe goes.** While the length is unbounded, at a round length of
  ``ROUND_LENGTHS`` (then a multiple of ``MAX_PROBE_STEP`` seconds) about twice the lower
  bound, since limits are stated per second or per minute; measured from when the server
  opened the window, which is up to the delay of our first answer after we sent our first
  request. Once bounded, at the midpoint. Against a one-second window the first probe that
  gets through is late by at most that first delay.
- **Noise.** A span is measured at the client, so it is off by the difference of two
  requests' trip times. Bounds that cross are taken as that noise: the upper bound moves
  just past the lower one, twice as far at each further crossing, instead of the search
  starting over.
- **Opening.** A probe that gets through opens the next window at the moment it was sent.

A token bucket is no fixed window, but the same loop paces it: each cycle's budget becomes
what the bucket refilled since the last, so the bursts average out at its rate. A window
that admits fewer than ``MIN_BUDGET`` requests, or under ``MIN_SHARE`` of the last one (a
limit shared with other clients, a limiter of another shape), disengages the guess, and the
client falls back to its pauses and adaptive rate cap.

Pure and clock-driven: every method takes the time or a ticket, so it is tested without
waiting. ``_rate_control.ClientRateControl`` owns one and consults it only after a hintless
429.
"""

from __future__ import annotations

import math
from typing import Protocol

__all__ = ["MIN_BUDGET", "PRECISION", "ROUND_LENGTHS", "Sent", "WindowGuess"]

MIN_BUDGET = 5
"""A window that admitted fewer requests is not treated as a fixed window."""

MIN_SHARE = 0.5
"""A window admitting less than this share of the last one's budget disengages the guess."""

SLACK_SHARE = 0.05
"""A window refusing within this share of its budget after its probe was admitted was no new
window: the last one still had that much room."""

PRECISION = 0.01
"""Bisecting the window's length stops when its bounds are within this share of it."""

ROUND_LENGTHS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
"""Window lengths in seconds probed in turn while the length is unbounded; past the last,
every multiple of ``MAX_PROBE_STEP``."""

SEARCH_GROWTH = 1.9
"""While the length is unbounded, the next probe goes at the first round length at least
this many times the lower bound (just under twice, so that 0.5 s leads to 1 s), or at least
``MAX_PROBE_STEP`` past it when that is nearer."""

MAX_PROBE_STEP = 5.0
"""The longest step between two probes while the length is unbounded (a long window)."""

_EPSILON = 1e-6
"""Seconds below which two spans count as equal (float rounding, not network noise)."""

PROBE_POLL = 0.005
"""Seconds a request queued behind a probe in flight waits before looking again."""

PROBE_EXPIRY = 1.0
"""Seconds after which a probe with no answer (a network failure) no longer blocks another."""


class Sent(Protocol):
    """What the guess needs of a request: its place in the sending order and its send time."""

    @property
    def seq(self) -> int: ...

    @property
    def sent_at(self) -> float: ...


class WindowGuess:
    """The inferred window of one client; ``engaged`` once a window's budget is known.

    Args:
        max_length: the longest window, in seconds, the guess follows. A probe refused
            later than that after the window opened disengages the guess for good, and the
            client's usual reactions to a 429 take over; a calm spell longer than that is not
            counted as one window. The client passes its ``max_retry_wait``.
    """

    def __init__(self, max_length: float = math.inf) -> None:
        self.max_length = max_length
        self.too_long = False
        """Set once a window proved longer than ``max_length``; the guess stays off then."""
        self.engaged = False
        self.budget = 0
        """Requests one window admits; meaningful while ``engaged``."""
        self._lo = 0.0
        self._hi = math.inf
        self._open = True
        self._opened_at = 0.0
        self._opened_seq = 0
        self._probe: int | None = None
        self._probe_at = 0.0
        self._slack = 0.0
        self._widen = PRECISION
        self._previous: tuple[float, int, float, float, float] | None = None

    @property
    def length_bounds(self) -> tuple[float, float]:
        """The current lower and upper bound of the window's length in seconds."""
        return self._lo, self._hi

    def disengage(self) -> None:
        """Forget the guess: the server did not behave like a fixed window."""
        self.engaged = False
        self.budget = 0
        self._lo, self._hi = 0.0, math.inf
        self._open = True
        self._probe = None
        self._previous = None
        self._slack = 0.0
        self._widen = PRECISION

    def wait(self, seq: int, now: float) -> float:
        """Seconds the request about to get ``seq`` must still wait; 0 lets it go now.

        Returning 0 once the window is spent makes that request the probe.
        """
        if self._probe is not None:
            if seq == self._probe:
                return 0.0
            if now - self._probe_at < PROBE_EXPIRY:
                return PROBE_POLL
            self._probe = None  # lost to a network failure: another one goes out
        if self._open:
            if seq < self._opened_seq + self.budget:
                return 0.0
            self._open = False  # the budget is used up: the window counts as spent
        at = self._opened_at + self._probe_offset()
        if now < at:
            return at - now
        self._probe = seq
        self._probe_at = now
        return 0.0

    def _probe_offset(self) -> float:
        lo, hi = self._lo, self._hi
        if hi == math.inf:
            # The round length at about twice the lower bound or MAX_PROBE_STEP past it, as
            # measured from the server's opening (up to ``_slack`` after ours).
            span = lo - self._slack
            reach = min(SEARCH_GROWTH * span, span + MAX_PROBE_STEP)
            return _round_at_least(max(reach, span + _EPSILON)) + self._slack
        if hi - lo <= PRECISION * hi:
            return hi
        return (lo + hi) / 2

    def admitted(self, sent: Sent) -> None:
        """A request got an answer other than 429."""
        if sent.seq != self._probe:
            return
        self._probe = None
        # What the window was before this probe, should the probe prove to have been let in
        # by it (``throttled`` takes it back).
        self._previous = (self._opened_at, self._opened_seq, self._lo, self._hi, self._slack)
        span = sent.sent_at - self._opened_at
        if not self._open and span < self._hi:
            self._hi = span
            if self._lo >= self._hi - _EPSILON:
                self._lo = 0.0  # the bounds crossed: the window shrank; keep the newer bound
        self._widen = PRECISION
        self._open = True
        self._opened_at = sent.sent_at
        self._opened_seq = sent.seq
        self._slack = 0.0  # the probe opened this window as it arrived, like the next one

    def throttled(
        self, sent: Sent, calm_since: float, calm_seq: int, calm_delay: float = 0.0
    ) -> bool:
        """A request got a hintless 429; return whether the guess accounts for it.

        ``False`` means the client should react as to any hintless 429 (pause, cut the rate).
        The server refuses requests in the order they reach it, so the requests sent in a
        window before the first refused one are what the window admits: answered or not
        (a connection reset after admission still counted).

        Args:
            sent: the refused request.
            calm_since: when the client last began sending without 429s; the first window
                is taken to open then.
            calm_seq: the first sequence number sent from then on.
            calm_delay: seconds from ``calm_since`` to the first answer after it: the server
                opened the first window at most that much later than ``calm_since``.
        """
        if self.too_long:
            return False
        if sent.seq == self._probe:
            # The window had not turned yet: it is longer than this probe's offset.
            self._probe = None
            self._raise_lower_bound(sent.sent_at - self._opened_at)
            if self._lo > self.max_length:
                # Longer than the client waits for any window: its usual reactions to a 429
                # take over from here on.
                self.disengage()
                self.too_long = True
                return False
            return True
        if not self.engaged:
            if sent.sent_at - calm_since > self.max_length:
                # Calm for longer than any window followed: many windows went by, so the
                # requests since then are no one window's budget. The next calm spell, begun
                # after the client's usual reaction to this 429, is counted instead.
                return False
            self._opened_at, self._opened_seq = calm_since, calm_seq
            self._slack = max(calm_delay, 0.0)
        elif sent.seq < self._opened_seq:
            return True  # the echo of an earlier window: requests already on their way
        count = sent.seq - self._opened_seq
        if self.engaged and not self._open:
            # Another refusal in a spent window: a request overtaken on the way, or a budget
            # one too generous. The window admits no more than the earliest refusal allows.
            if count < self.budget:
                self.budget = max(count, MIN_BUDGET)
            return True
        self._open = False
        previous, self._previous = self._previous, None
        if previous is not None and count <= self.budget * SLACK_SHARE:
            # The probe was let in by the last window, which had a little room left (its
            # budget was counted short, say by two requests overtaking each other): that
            # window goes on, now known to be longer than the probe's offset.
            probe_at = self._opened_at
            self._opened_at, self._opened_seq, self._lo, self._hi, self._slack = previous
            self._raise_lower_bound(probe_at - self._opened_at)
            self.budget += count
            return True
        if count < MIN_BUDGET or (self.engaged and count < self.budget * MIN_SHARE):
            # Too few for a window, or far fewer than the last one: the guess is wrong (a
            # token bucket, a limit shared with other clients).
            self.disengage()
            return False
        self._raise_lower_bound(sent.sent_at - self._opened_at)
        self.budget = count
        self.engaged = True
        return True

    def _raise_lower_bound(self, span: float) -> None:
        """The window was still closed ``span`` seconds after it opened."""
        if span > self._lo:
            self._lo = span
        if self._lo >= self._hi - _EPSILON:
            # The bounds crossed: trip-time noise, or a longer window. Just past the newer
            # bound, further at each crossing in a row.
            self._hi = self._lo * (1 + self._widen)
            self._widen *= 2


def _round_at_least(length: float) -> float:
    """The first round length not shorter than ``length`` seconds (to within ``_EPSILON``)."""
    for round_length in ROUND_LENGTHS:
        if round_length > length - _EPSILON:
            return round_length
    return (math.floor((length - _EPSILON) / MAX_PROBE_STEP) + 1) * MAX_PROBE_STEP
