"""The plain adaptive rate: sends paced at what the server has been measured admitting.

Every limiter a gateway runs (fixed or sliding window, token or leaky bucket, a cap on
requests in flight) admits some number of requests per second in the long run, and that
number can be read off the answers: while the client offers more than the server takes, the
answers that were not 429 *are* the server's rate. So a throttle sets the send rate to the
admissions measured over the last ``horizon`` seconds, never to a share of what was sent, and
the rate then climbs back along a cubic curve (slowly near the measured rate, faster away from
it) to find a limit that has risen. Sends are spaced evenly (a GCRA with no burst), which no
limiter refuses when the rate is under its own.

Invariants:
- The rate is never set below ``MARGIN`` times the admissions measured when it is set.
- A throttle reacts once per episode: 429s to requests sent before the last cut are the echo
  of the same overload.
- Pure and clock-driven: every method takes ``now``, so it is tested without waiting.
"""

from __future__ import annotations

import math

__all__ = ["AdmissionLog", "AdmissionRate", "GcraPacer"]

BUCKET = 0.05
"""Seconds of admissions counted together in the log."""

LOG_SECONDS = 64.0
"""How far back the admission log reaches; the longest horizon a throttle measures over."""

MIN_SPAN = 0.2
"""Admissions measured over less time than this are too few to read a rate from."""

MARGIN = 0.97
"""After a throttle the rate is set to this share of the admissions measured: a little
room for the trip-time jitter that bunches evenly spaced sends at the server."""

RECOVERY = 1.5
"""Seconds the cubic curve takes to climb from the cut back to the measured rate."""

CUBE = (1.0 - MARGIN) / RECOVERY**3
"""The cubic's coefficient, relative to the measured rate: the curve climbs from the cut back
to the measured rate in ``RECOVERY`` seconds, then probes above it, by 3% one ``RECOVERY``
later and by 24% two later."""

MIN_RATE = 0.5
"""Requests per second the rate never goes below, so a probe always gets out."""

FEW_ADMISSIONS = 16
"""A throttle that measured fewer admissions than this knows too little to pace by: the rate
then doubles every ``DOUBLING`` seconds (a slow start) until the next throttle measures it."""

DOUBLING = 0.2
"""Seconds in which a slow start doubles the rate."""

CEILING_HOLDS = 30.0
"""Seconds a penalty's ceiling (``stay_under``) holds before the rate may climb past it again,
doubling each time one is set. A ceiling read off one bad episode (another client on the key
that has since stopped, a limit raised since, a jittery read) then costs at most one more
penalty per such period, instead of holding the client under it for the rest of the run."""


class AdmissionLog:
    """Admitted requests by send time, in buckets of ``BUCKET`` seconds over ``LOG_SECONDS``."""

    _SIZE = int(LOG_SECONDS / BUCKET)

    def __init__(self) -> None:
        self._counts = [0] * self._SIZE
        self._last = -1  # index of the newest bucket written (bucket number mod size)
        self._last_number = -1
        self.first = math.inf
        """When the first admission was recorded (infinity before any)."""

    def record(self, when: float) -> None:
        """Count one admitted request sent at ``when``."""
        number = int(when / BUCKET)
        if number != self._last_number:
            if number < self._last_number:
                # Sent before the newest bucket: count it there, the error is one bucket.
                self._counts[self._last] += 1
                return
            self._advance(number)
            if self.first == math.inf:
                self.first = when
        self._counts[self._last] += 1

    def _advance(self, number: int) -> None:
        gap = number - self._last_number
        size = self._SIZE
        if self._last_number < 0 or gap >= size:
            self._counts = [0] * size
        else:
            for step in range(1, gap + 1):
                self._counts[(self._last + step) % size] = 0
        self._last = number % size
        self._last_number = number

    def count(self, now: float, span: float) -> int:
        """Admissions sent in the last ``span`` seconds before ``now`` (whole buckets)."""
        number = int(now / BUCKET)
        if number > self._last_number:
            self._advance(number)
        buckets = min(self._SIZE, max(1, math.ceil(span / BUCKET - 1e-9)))
        size = self._SIZE
        last = self._last
        return sum(self._counts[(last - i) % size] for i in range(buckets))

    def peak(self, now: float, start: float, end: float, span: float) -> int:
        """The most admissions sent within any ``span`` seconds from ``start`` to ``end``."""
        number = int(now / BUCKET)
        if number > self._last_number:
            self._advance(number)
        oldest = self._last_number - self._SIZE + 1
        first, last = max(int(start / BUCKET), oldest), min(int(end / BUCKET), self._last_number)
        counts = [self._counts[n % self._SIZE] for n in range(first, last + 1)]
        width = max(1, round(span / BUCKET))
        best = total = sum(counts[:width])
        for i in range(width, len(counts)):
            total += counts[i] - counts[i - width]
            best = max(best, total)
        return best

    def rate(self, now: float, horizon: float) -> float:
        """Admissions per second over the last ``horizon`` seconds (or since the first)."""
        count, seconds = self.measure(now, horizon)
        return count / seconds

    def measure(self, now: float, span: float) -> tuple[int, float]:
        """Admissions in the last ``span`` seconds (at least ``MIN_SPAN``), and the seconds
        that count covers; a span reaching back past the first admission counts from it."""
        span = max(span, MIN_SPAN)
        if self.first == math.inf:
            return 0, span
        if now - self.first <= span:
            buckets = int(now / BUCKET) - int(self.first / BUCKET) + 1
            return self.count(now, buckets * BUCKET - 1e-9), max(now - self.first, MIN_SPAN)
        span = min(span, LOG_SECONDS)
        return self.count(now, span), covered(now, span)


def covered(now: float, span: float) -> float:
    """The seconds that ``AdmissionLog.count(now, span)`` covers: whole buckets back, plus the
    part of the current one already gone (its sends still in flight are few)."""
    buckets = max(1, math.ceil(span / BUCKET - 1e-9))
    return (buckets - 1) * BUCKET + max(now - int(now / BUCKET) * BUCKET, 1e-3)


CATCH_UP = 0.02
"""Seconds of lateness a pacer makes up by sending sooner: timer overshoot, not an idle gap."""


class GcraPacer:
    """Evenly spaced send slots at ``rate`` per second (a virtual schedule, no background task).

    Args:
        rate: requests per second.
        burst: how many requests may start back to back after an idle spell.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        self._tat = -math.inf  # theoretical arrival time of the next request
        self._burst = burst
        self._interval = 0.0
        self.rate = rate

    @property
    def rate(self) -> float:
        """The current rate in requests per second."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"rate must be positive, got {value!r}")
        interval = 1.0 / value
        if self._tat != -math.inf:
            # The next slot stays one interval after the last send, at the new interval.
            self._tat += interval - self._interval
        self._rate = value
        self._interval = interval
        self._tolerance = (self._burst - 1) * self._interval

    def reserve(self, now: float) -> float:
        """Book the next send slot and return how long to wait for it (0 when it is now)."""
        tat = self._tat if self._tat > now else now
        start = tat - self._tolerance
        self._tat = tat + self._interval
        return start - now if start > now else 0.0

    def next_free(self, now: float) -> float:
        """Seconds until a slot is free, without booking it (at the rate in force now)."""
        start = self._tat - self._tolerance
        return start - now if start > now else 0.0

    def take(self, now: float) -> None:
        """Book the slot that ``next_free`` said is free.

        A slot taken late by less than ``CATCH_UP`` seconds keeps the schedule instead of
        starting a new one from ``now``: timers fire late by a little every time, and
        restarting from each late wake-up would pace below the rate. After a longer gap (or
        the first send) the schedule starts from ``now``.
        """
        tat = self._tat
        if tat < now - CATCH_UP:
            tat = now
        self._tat = tat + self._interval


class AdmissionRate:
    """The adaptive send rate: ``None`` until the first throttle, then measured and regrown."""

    def __init__(self) -> None:
        self.log = AdmissionLog()
        self.rate: float | None = None
        self.measured = 0.0
        """The admissions per second measured at the last throttle."""
        self.cuts = 0
        """Throttles that set the rate."""
        self._cut_at = -math.inf
        self._cut_rate = MIN_RATE
        self._slow = False
        self._from_burst = False  # the slow start began from a first burst's reading
        self.ceiling = math.inf
        """The most the rate regrows to: the cut's rate once going over it proved costly."""
        self._ceiling_until = math.inf
        self._ceiling_holds = CEILING_HOLDS

    def admitted(self, sent_at: float) -> None:
        """Count one request the server admitted."""
        self.log.record(sent_at)

    def throttled(self, now: float, sent_at: float, horizon: float) -> bool:
        """Set the rate from the admissions of the last ``horizon`` seconds; ``False`` for an echo.

        Args:
            now: the current time.
            sent_at: when the refused request was sent.
            horizon: the period over which the server counts, as far as the client knows
                (at least a second).
        """
        if sent_at < self._cut_at:
            return False
        log = self.log
        measured = 0.0
        count = 0
        # Admissions over the server's period (a window admits in bursts). After a slow start
        # the period holds the ramp, so the recent rate counts too, whichever is higher.
        for want in (MIN_SPAN, horizon) if self._slow else (horizon,):
            admitted, seconds = log.measure(now, want)
            rate = admitted / seconds
            if rate > measured:
                measured, count = rate, admitted
        # A slow start from a first burst's reading may have begun above the server's rate
        # (a window's budget sent in milliseconds): it shows no "between half and all".
        from_below = self._slow and not self._from_burst
        if 0 < count < FEW_ADMISSIONS and not from_below and self.rate is not None:
            # Few admissions in the last period because the client held itself back for most
            # of it (a hold that ended as the server reopened): the server's rate shows in the
            # most it admitted in one period since the last cut began, not in this lull.
            peak = log.peak(now, self._cut_at - horizon, now, horizon)
            if peak >= FEW_ADMISSIONS:
                measured, count = peak / horizon, peak
        if from_below and self.rate is not None:
            # Refusals ended a slow start: the server's rate lies between half the rate
            # reached and that rate (it doubled since it was last under), whatever a limiter
            # that wants strict spacing let through of the overshoot.
            measured = max(measured, self.rate / 2)
        if count == 0:
            # Nothing admitted to pace by: the pauses hold the client, and a rate of nothing
            # would only slow it down once the server admits again.
            return False
        # Everything admitted so far came in less than MIN_SPAN (the first burst of a run):
        # the reading is floored at MIN_SPAN and may be far under the server's rate (a
        # bucket's burst, a cap on requests in flight answered in 20 ms), or far over it (a
        # window's budget): a slow start from it finds the rate either way, and the next cut
        # reads the higher of the recent and the period's rate, with no floor at half the
        # rate reached.
        burst = now - log.first < MIN_SPAN
        self.measured = measured
        self.rate = max(MIN_RATE, MARGIN * measured)
        self._cut_rate = self.rate
        self._slow = count < FEW_ADMISSIONS or burst
        self._from_burst = burst and count >= FEW_ADMISSIONS
        self._cut_at = now
        self.cuts += 1
        return True

    def regrow(self, now: float) -> float | None:
        """Move the rate along its curve to ``now``; the new rate (``None`` while unpaced)."""
        if self.rate is None:
            return None
        if now >= self._ceiling_until:
            # The ceiling has held its time: climb past it from the rate held, along the
            # curve's slow part first, as after a cut.
            self.ceiling = math.inf
            self._ceiling_until = math.inf
            self.measured = max(self.rate, MIN_RATE)
            self._cut_rate = self.rate
            self._cut_at = now - RECOVERY
            self._slow = False
        elapsed = now - self._cut_at
        if self._slow:
            grown = self._cut_rate * 2.0 ** min(elapsed / DOUBLING, 30.0)
        else:
            t = elapsed - RECOVERY
            grown = max(self.measured, MIN_RATE) * (1.0 + CUBE * t * t * t)
        self.rate = max(MIN_RATE, self.rate, min(grown, self.ceiling))
        return self.rate

    def stay_under(self, rate: float, now: float) -> None:
        """Pace at ``MARGIN * rate`` now and not above it for ``CEILING_HOLDS`` seconds (twice
        that after the next such ceiling, and so on).

        For a server whose refusals went on for seconds (a penalty block): what probing above
        the rate it was seen admitting could find is worth less than what one more such run
        costs. A lower ceiling set before stands.
        """
        self.ceiling = min(self.ceiling, max(MIN_RATE, MARGIN * rate))
        self._ceiling_until = now + self._ceiling_holds
        self._ceiling_holds *= 2
        if self.rate is None or self.rate > self.ceiling:
            self.rate = self.ceiling

    def reset(self) -> None:
        """Lift the rate, as before the first throttle."""
        self.rate = None
