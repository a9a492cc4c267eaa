"""A fixed window inferred from bare 429s, followed only while the server keeps proving it.

A gateway that counts requests in fixed windows and says nothing but 429 still shows its
window: a run of admissions, a run of refusals, and admissions again when the next window
opens. One such cycle gives a budget (the admissions) and a period (from one opening to the
next, rounded down to the round lengths limits are stated in). From then on each window gets
its whole budget at once, with no pacing, and the client waits for the next window: a fixed
window admits that and nothing more, so even pacing would only forgo the start of each.

The inference is a hypothesis and has to keep earning: a window that refuses before its
budget is spent (a bucket, a sliding window, a limit shared with others) ends it for good, and
the adaptive rate paces the client instead. So does a window whose rest admits a request: once
per rest, halfway through it, one fresh request goes out as a probe. A true window refuses it
(one 429 per window); an admitted probe shows the rest is not the server's (the period or the
budget was misread, or the limit grew), and holding the client through it would keep it below
what the server admits.

Invariants:
- Engaged only after one whole cycle was seen; never re-engaged once disproved.
- Disproved by two windows in a row that refused early: one alone may be a window start
  estimated a little early, and is answered by starting the next one later. Disproved at once
  by a probe admitted during a rest.
- Pure and clock-driven: every method takes ``now``.
"""

from __future__ import annotations

import math

__all__ = ["InferredWindow"]

MIN_BUDGET = 5
"""A window that admitted fewer requests is no window worth bursting into."""

PERIODS = (0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0)
"""Window lengths in seconds a cycle is rounded down to."""

SLACK = 0.5
"""A cycle may take up to this share longer than its period: probes find an opening late."""

SHORTFALL = 0.9
"""A window refusing past this share of its budget shows the budget a little too large."""

HALF = 0.5
"""A window refusing before this share of its budget twice in a row disproves the window;
later than that, or once, its start was misjudged by a little (requests in flight across the
edge count in a window we did not count them in)."""

GROWTH = 0.01
"""The share a budget grows by after a window took all of it (one request at least)."""

MIN_REST = 0.05
"""Seconds a run of refusals must last to be a window's rest rather than requests crossing
in flight."""

BURST_SHARE = 0.8
"""A cycle shows a window only if its admissions ran out within this share of its period."""

PHASE_STEP = 0.01
"""A share of the period to wait again when a window's first request was refused: our
estimate of its start ran a little ahead of the server's."""

GUARD = 0.005
"""Seconds past the predicted end before a new window is entered: the server opens it at our
request's arrival, a little after we send it."""

GUARD_SHARE = 0.005
"""The same as a share of the period, for long windows, whichever is longer."""

MAX_GUARD_SHARE = 0.1
"""The guard doubles each time a window's first request is refused (our estimate of its start
ran early), up to this share of the period, and shrinks back by a tenth after each window that
took its whole budget. Without it the requests first in line at every window, the retries of
the last one, could be refused window after window until their retries ran out."""


class InferredWindow:
    """The budget and period of a fixed window inferred from one cycle of bare 429s."""

    def __init__(self) -> None:
        self.engaged = False
        self.disproved = False
        """Set once a window refused early; the inference is never made again."""
        self.budget = 0
        self.period = 0.0
        self._opened_at = -math.inf
        self._open_seq = 0  # the sequence number of the window's first request
        self._sent = 0  # requests sent since the window opened
        self._admitted = 0  # of those, admitted
        self._full = True  # the window's whole budget was admitted
        self._early_refusals = 0  # windows in a row that refused before their budget
        self._guard = GUARD  # seconds past the predicted end before a window is entered
        self._shifted = -1  # the first sequence number of the window last moved later
        self._spent_at = math.inf  # when the window's budget was all sent
        self._probe = -1  # the sequence number of this rest's probe (-1: none sent)

    def cycle(
        self, admitted: int, opened_at: float, refused_at: float, reopened_at: float, seq: int
    ) -> None:
        """Learn from one cycle of bare 429s.

        Args:
            admitted: requests admitted from ``opened_at`` until refusals began.
            opened_at: when the first of them was sent.
            refused_at: when the first refused request was sent.
            reopened_at: when the first request admitted after the refusals was sent.
            seq: that request's sequence number.
        """
        if self.disproved or admitted < MIN_BUDGET or reopened_at - refused_at < MIN_REST:
            return
        span = reopened_at - opened_at
        period = max((p for p in PERIODS if p <= span), default=0.0)
        if period <= 0 or span > period * (1 + SLACK):
            return
        if refused_at - opened_at > BURST_SHARE * period:
            # Admissions spread over the whole span (paced sends, or several windows): they
            # show no window's edge.
            return
        self.budget = admitted
        self.period = period
        self._guard = self._floor_guard()
        self.engaged = True
        self._open(reopened_at, seq)
        self._admitted = 1

    def _open(self, now: float, seq: int) -> None:
        self._opened_at = now
        self._open_seq = seq
        self._sent = 1
        self._admitted = 0
        self._spent_at = math.inf
        self._probe = -1

    def _floor_guard(self) -> float:
        return max(GUARD, GUARD_SHARE * self.period)

    def _end(self) -> float:
        return self._opened_at + self.period + self._guard

    def wait(self, now: float, may_probe: bool = False) -> float:
        """Seconds until the next request fits a window (0: it does).

        Args:
            now: the time.
            may_probe: whether the request may go out as the probe of the window's rest.
        """
        if not self.engaged or self._sent < self.budget:
            return 0.0
        end = self._end()
        if end <= now:
            return 0.0
        if may_probe and self._probe < 0:
            probe_at = self._probe_at(end)
            if probe_at < end:
                return max(0.0, probe_at - now)
        return end - now

    def _probe_at(self, end: float) -> float:
        """When the current rest is probed: halfway between the budget's last send and the end."""
        spent_at = min(self._spent_at, end)
        return spent_at + (end - spent_at) / 2

    def sent(self, seq: int, now: float) -> None:
        """Count request ``seq`` sent at ``now``; one past the window's end opens the next."""
        if not self.engaged:
            return
        end = self._end()
        if now >= end:
            if self._full:
                # The last window took its whole budget: try a little more, in case it grew.
                self.budget += max(1, int(self.budget * GROWTH))
            self._full = False
            self._open(now, seq)
            return
        if self._sent >= self.budget and self._probe < 0 and now >= self._probe_at(end):
            self._probe = seq  # sent into the rest: it tests it
        self._sent += 1
        if self._sent == self.budget:
            self._spent_at = now

    @property
    def probe(self) -> int:
        """The sequence number of the current rest's probe (-1: none sent)."""
        return self._probe

    def admitted(self, seq: int) -> None:
        """Count an admission; the budget was the window's if all of it got through.

        An admitted probe of a rest disproves the window: the server had room the inference
        said it had not.
        """
        if self.engaged and seq == self._probe:
            self.engaged = False
            self.disproved = True
            return
        if self.engaged and seq >= self._open_seq:
            self._admitted += 1
            if self._admitted >= self.budget:
                self._full = True
                self._early_refusals = 0
                self._guard = max(self._floor_guard(), self._guard * 0.9)

    def refused(self, seq: int, now: float) -> bool:
        """Learn from a refusal; ``True`` when it disproves the window (it is then dropped)."""
        if not self.engaged or seq < self._open_seq:
            return False  # sent in an earlier window: its echo
        if seq == self._probe:
            return False  # the rest held: the window stands
        position = seq - self._open_seq
        if self._open_seq == self._shifted:
            return False  # this window already refused early and was moved: its echo
        if position >= SHORTFALL * self.budget:
            # Refusals of one window can arrive in any order: the first refused one counts.
            self.budget = min(self.budget, max(position, MIN_BUDGET))
            return False
        if position >= HALF * self.budget or self._early_refusals == 0:
            # Once, take it as our estimate of the window's start running a little ahead of
            # the server's (the old window still in force): hold the rest back and open the
            # next window a little later.
            self._early_refusals += 1
            self._shifted = self._open_seq
            self._sent = self.budget
            step = PHASE_STEP * self.period
            if position == 0:
                self._guard = min(2 * self._guard, MAX_GUARD_SHARE * self.period)
            self._opened_at = now + step - self.period - self._guard
            return False
        self.engaged = False
        self.disproved = True
        return True
