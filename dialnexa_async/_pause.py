"""The pause a server asks for, held for the whole client and tested while it lasts.

A 429 with ``Retry-After`` (or a reset) says when *that* request may come back; holding every
other request until then is the client's own extrapolation. It is right for a gateway that
blocks everything for a period and wrong for one that rounds a 0.2 s wait up to ``1``, or
whose capacity returns gradually (a bucket, a sliding window). So while a pause lasts, one
probe at a time goes out, ``PROBES`` times per pause at most: an admitted probe ends the
pause (the server has room again), a refused one costs one 429. A pause that several times
in a row let no probe through was exact, and probing stops for good.

Invariants:
- ``until`` only moves forward: a later, shorter wait never shortens a pause in force.
- At most one probe is in flight; one with no answer after ``PROBE_EXPIRY`` no longer counts.
- Pure and clock-driven: every method takes ``now``.
"""

from __future__ import annotations

import math

__all__ = ["ServerPause"]

PROBES = 9
"""Probes a pause sends at most, spread evenly over it."""

MIN_PROBE_GAP = 0.05
"""Seconds between two probes at least."""

STRIKES = 3
"""Pauses in a row that no probe shortened before probing stops."""

EARLY_SHARE = 0.25
"""A probe admitted this share of the pause (or more) before its end beat it; less is the
server rounding its wait up."""

EARLY_ENDS = 2
"""Pauses in a row that a probe ended early before pausing stops: the server's waits are
then not about the whole client (a rounded wait, a bucket refilling one request at a time),
and each refused request waits out its own."""

PROBE_EXPIRY = 2.0
"""Seconds after which a probe with no answer (a network fault) no longer blocks another."""


class ServerPause:
    """A client-wide pause from the server's word, shortened when a probe gets through.

    Args:
        settles: whether pauses that no probe beat ``STRIKES`` times in a row end probing;
            ``False`` for pauses of the client's own choosing, whose length proves nothing.
    """

    def __init__(self, *, settles: bool = True) -> None:
        self._settles = settles
        self.until = -math.inf
        self.probing = True
        """Whether pauses are tested with probes (off once they proved exact)."""
        self.trusted = True
        """Whether a 429's wait pauses the whole client (off once probes beat it repeatedly)."""
        self._early_ends = 0
        self._length = 0.0
        self._probed = False  # a probe went out during the current pause
        self.count = 0
        """Pauses begun or lengthened."""
        self.seconds = 0.0
        """Seconds of pause imposed, on the timeline (overlaps counted once)."""
        self.shortened = 0
        """Pauses a probe ended early."""
        self._gap = 0.0
        self._next_probe = math.inf
        self._probe: int | None = None
        self._probe_sent = -math.inf
        self._strikes = 0
        self._early = False
        self._must_probe = False

    def hold(self, now: float, seconds: float, *, probe_now: bool = False) -> None:
        """Pause new requests for ``seconds`` from ``now``, unless a longer pause is in force.

        ``probe_now``: the first probe may go at once, even once probing has stopped (a hold
        of the client's own reckoning, which only the server can confirm); a hold without it
        (the server's word, come meanwhile) withdraws that probe if it has not gone.
        """
        if not probe_now:
            self._must_probe = False
        until = now + seconds
        if until <= self.until or not self.trusted:
            return
        if now >= self.until:
            self._settle(now)
            self._early = False
            self._probed = False
        self.count += 1
        self.seconds += until - max(now, self.until)
        self.until = until
        self._gap = max(MIN_PROBE_GAP, seconds / (PROBES + 1))
        self._length = until - now
        self._next_probe = now if probe_now else now + self._gap
        self._must_probe = probe_now

    def _settle(self, now: float) -> None:
        """Score the pause that just ended: did any probe get through before its end?"""
        if self.until == -math.inf or not self._probed:
            return  # no probe went out: the pause was not tested either way
        if not self._early:
            self._early_ends = 0
        self._strikes = 0 if self._early else self._strikes + 1
        if self._settles and self._strikes >= STRIKES:
            self.probing = False

    def wait(self, now: float) -> float:
        """Seconds a new request must wait; 0 when it may go (possibly as the probe)."""
        until = self.until
        if now >= until:
            return 0.0
        if not self.probing and not self._must_probe:
            return until - now
        if self._probe is not None and now - self._probe_sent < PROBE_EXPIRY:
            return min(until, now + self._gap) - now
        if now >= self._next_probe:
            return 0.0
        return min(until, self._next_probe) - now

    def sent(self, seq: int, now: float) -> None:
        """Note a request sent at ``now``: during a pause it is the probe."""
        if now < self.until:
            self._must_probe = False
            self._probed = True
            self._probe = seq
            self._probe_sent = now
            self._next_probe = now + self._gap

    @property
    def probe(self) -> int | None:
        """The sequence number of the probe in flight, if any."""
        return self._probe

    def early(self, seq: int, now: float) -> bool:
        """Whether request ``seq``, admitted at ``now``, is a probe that clearly beat the pause.

        Clearly: by ``EARLY_SHARE`` of the pause or more; less is a server rounding its wait.
        """
        return seq == self._probe and self.until - now >= EARLY_SHARE * self._length

    def answered(self, seq: int, admitted: bool, now: float, *, recount: bool = False) -> None:
        """Learn from an answer: an admitted probe ends the pause.

        ``recount``: the hold was the client's own count, which the probe corrected; it says
        nothing about the server's waits, so it neither ends trust nor probing.
        """
        if seq != self._probe:
            return
        if admitted and now < self.until:
            clearly = self.early(seq, now)
            self.shortened += 1
            self.until = now
            if recount:
                self._probed = False  # the hold was not the server's: it was not tested
                self._probe = None
                return
            self._early = True
            self._strikes = 0
            if clearly:
                self._early_ends += 1
                if self._early_ends >= EARLY_ENDS:
                    self.trusted = False
            else:
                self._early_ends = 0
        self._probe = None

    def remaining(self, now: float) -> float:
        """Seconds left in the pause (0 when none)."""
        return max(0.0, self.until - now)
