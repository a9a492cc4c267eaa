"""The server's pause, pure and clock-driven: probes, early ends, lost trust, strikes.

Expectations are derived from the module's named constants, so retuning a constant breaks
only the tests whose behaviour it really changes.
"""

from __future__ import annotations

import pytest

from dialnexa_async._pause import (
    EARLY_ENDS,
    EARLY_SHARE,
    MIN_PROBE_GAP,
    PROBE_EXPIRY,
    PROBES,
    STRIKES,
    ServerPause,
)

BEATS = 1.0 - 2 * EARLY_SHARE
"""A share of a pause after which an admitted probe beat it by twice ``EARLY_SHARE``."""

ROUNDS = 1.0 - EARLY_SHARE / 2
"""A share of a pause after which an admitted probe beat it by half ``EARLY_SHARE``."""

EXACT = None
"""A pause no probe got through."""


def _gap(seconds: float) -> float:
    """The probe spacing the module documents for a pause of ``seconds``."""
    return max(MIN_PROBE_GAP, seconds / (PROBES + 1))


@pytest.mark.parametrize(
    ("holds", "until", "count", "seconds"),
    [
        ([(0.0, 5.0)], 5.0, 1, 5.0),
        ([(0.0, 5.0), (1.0, 1.0)], 5.0, 1, 5.0),  # shorter: ignored
        ([(0.0, 5.0), (1.0, 4.0)], 5.0, 1, 5.0),  # ends at the same time: ignored
        ([(0.0, 5.0), (1.0, 8.0)], 9.0, 2, 9.0),  # longer: extended, overlap counted once
        ([(0.0, 1.0), (3.0, 1.0)], 4.0, 2, 2.0),  # apart: both counted
    ],
)
def test_a_pause_only_moves_forward(
    holds: list[tuple[float, float]], until: float, count: int, seconds: float
) -> None:
    """hold() extends a pause but never shortens one in force; seconds count the timeline."""
    pause = ServerPause()
    for now, length in holds:
        pause.hold(now, length)
    assert pause.until == until
    assert pause.count == count
    assert pause.seconds == pytest.approx(seconds)
    assert pause.remaining(holds[-1][0]) == pytest.approx(until - holds[-1][0])
    assert pause.remaining(until) == 0.0


def test_no_pause_waits_nothing() -> None:
    """Before any hold, and once a pause is over, a request waits nothing."""
    pause = ServerPause()
    assert pause.wait(0.0) == 0.0
    pause.hold(0.0, 2.0)
    assert pause.wait(2.0) == 0.0
    assert pause.wait(3.0) == 0.0


@pytest.mark.parametrize("seconds", [0.02, 0.1, 0.5, 1.0, 3.0, 10.0, 60.0])
def test_probes_are_spaced_evenly_and_at_most_probes_per_pause(seconds: float) -> None:
    """A pause lets a probe go every max(MIN_PROBE_GAP, seconds/(PROBES+1)), PROBES at most."""
    gap = _gap(seconds)
    pause = ServerPause()
    pause.hold(0.0, seconds)
    now, seq, probes = 0.0, 0, []
    while now < seconds:
        wait = pause.wait(now)
        if wait > 0:
            now += wait
            continue
        if now >= seconds - 1e-9:
            break
        seq += 1
        probes.append(now)
        pause.sent(seq, now)
        pause.answered(seq, False, now)  # refused at once: the next one waits its turn
    expected = [k * gap for k in range(1, PROBES + 1) if k * gap < seconds - 1e-9]
    assert probes == pytest.approx(expected)
    assert len(probes) <= PROBES


def test_one_probe_at_a_time() -> None:
    """While a probe is unanswered no other request goes; its refusal lets the next one go."""
    length = (PROBES + 1) * PROBE_EXPIRY / 2  # probes PROBE_EXPIRY / 2 apart
    pause = ServerPause()
    pause.hold(0.0, length)
    gap = _gap(length)
    assert pause.wait(0.0) == pytest.approx(gap)
    pause.sent(1, gap)
    assert pause.probe == 1
    answer = 2 * gap + 0.01  # past the next probe's slot, before the first expires
    for later in (gap, 2 * gap, answer):
        assert pause.wait(later) > 0
    pause.answered(1, False, answer)
    assert pause.probe is None
    assert pause.wait(answer) == 0.0
    assert pause.until == length  # a refused probe leaves the pause as it was


def test_an_unanswered_probe_expires() -> None:
    """A probe with no answer after PROBE_EXPIRY no longer keeps the next one back."""
    length = (PROBES + 1) * PROBE_EXPIRY / 2  # probes PROBE_EXPIRY / 2 apart
    pause = ServerPause()
    pause.hold(0.0, length)
    sent = _gap(length)
    assert sent < PROBE_EXPIRY
    pause.sent(1, sent)
    assert pause.wait(sent + PROBE_EXPIRY - 0.01) > 0
    assert pause.wait(sent + PROBE_EXPIRY) == 0.0
    pause.sent(2, sent + PROBE_EXPIRY)
    assert pause.probe == 2
    pause.answered(1, True, sent + PROBE_EXPIRY + 0.1)  # the lost probe's late answer
    assert pause.remaining(sent + PROBE_EXPIRY + 0.1) > 0


def test_a_request_sent_outside_a_pause_is_no_probe() -> None:
    """Sends before or after a pause are not probes, and their answers leave the pause alone."""
    pause = ServerPause()
    pause.sent(1, 0.0)
    pause.hold(1.0, 5.0)
    pause.answered(1, True, 2.0)
    assert pause.probe is None
    assert pause.until == 6.0
    pause.sent(2, 7.0)
    assert pause.probe is None


def test_an_admitted_probe_ends_the_pause_early() -> None:
    """A probe the server admits before the pause's end ends it for every request."""
    pause = ServerPause()
    pause.hold(0.0, 10.0)
    sent = _gap(10.0)
    pause.sent(7, sent)
    assert pause.early(7, sent + 0.1) is True
    assert pause.early(8, sent + 0.1) is False  # not the probe
    pause.answered(7, True, sent + 0.1)
    assert pause.remaining(sent + 0.1) == 0.0
    assert pause.wait(sent + 0.1) == 0.0
    assert pause.shortened == 1
    assert pause.early(7, sent + 0.2) is False  # the pause is over


def _pauses(
    shares: list[float | None], length: float = 4.0, *, settles: bool = True
) -> ServerPause:
    """Pauses one after another; each ends by a probe admitted at ``share`` of it, or (``None``)
    exactly: its probe, sent a gap in, refused."""
    pause = ServerPause(settles=settles)
    start = 0.0
    for seq, share in enumerate(shares, start=1):
        pause.hold(start, length)
        if share is not None:
            pause.sent(seq, start + share * length)
            pause.answered(seq, True, start + share * length)
        else:
            pause.sent(seq, start + _gap(length))
            pause.answered(seq, False, start + _gap(length) + 0.01)
        start += length + 1.0
    return pause


def test_a_pause_no_probe_tested_is_not_scored() -> None:
    """A pause during which no probe went out (every request was a retry) proves nothing: it
    counts neither as exact nor as beaten, so probing goes on."""
    pause = ServerPause()
    for index in range(STRIKES + 2):
        pause.hold(index * 10.0, 4.0)
    assert pause.probing is True
    assert pause.trusted is True


@pytest.mark.parametrize(
    ("shares", "trusted"),
    [
        ([BEATS] * (EARLY_ENDS - 1), True),
        ([BEATS] * EARLY_ENDS, False),
        ([ROUNDS] * (EARLY_ENDS + 3), True),  # a rounded-up wait is not beaten
        ([BEATS] * (EARLY_ENDS - 1) + [ROUNDS] + [BEATS] * (EARLY_ENDS - 1), True),
        ([BEATS] * (EARLY_ENDS - 1) + [EXACT] + [BEATS] * (EARLY_ENDS - 1), True),
        ([ROUNDS] + [BEATS] * EARLY_ENDS, False),
    ],
)
def test_pauses_beaten_by_probes_in_a_row_stop_pausing(
    shares: list[float | None], trusted: bool
) -> None:
    """EARLY_ENDS pauses in a row that probes beat by EARLY_SHARE or more end trust in pauses."""
    pause = _pauses(shares)
    assert pause.trusted is trusted
    before = pause.count
    pause.hold(1000.0, 5.0)
    assert pause.remaining(1000.0) == (5.0 if trusted else 0.0)
    assert pause.count == before + (1 if trusted else 0)


@pytest.mark.parametrize(
    ("shares", "settles", "probing"),
    [
        ([EXACT] * (STRIKES - 1), True, True),
        ([EXACT] * STRIKES, True, False),
        ([EXACT] * (STRIKES - 1) + [ROUNDS] + [EXACT] * (STRIKES - 1), True, True),
        ([ROUNDS] + [EXACT] * STRIKES, True, False),
        # A pause of the client's own choosing proves nothing by being exact.
        ([EXACT] * (STRIKES + 3), False, True),
    ],
)
def test_probing_stops_after_strikes_exact_pauses_in_a_row(
    shares: list[float | None], settles: bool, probing: bool
) -> None:
    """STRIKES pauses in a row that no probe got through turn probing off, if the pause settles."""
    pause = _pauses(shares, settles=settles)
    pause.hold(1000.0, 5.0)  # the previous pause is scored when the next begins
    assert pause.probing is probing
    gap = _gap(5.0)
    assert pause.wait(1000.0 + gap) == (0.0 if probing else pytest.approx(5.0 - gap))


def test_a_refused_probe_is_no_early_end() -> None:
    """Probes the server refuses neither shorten a pause nor cost trust in it."""
    pause = ServerPause()
    start = 0.0
    for seq in range(1, 2 * EARLY_ENDS + 2):
        pause.hold(start, 4.0)
        pause.sent(seq, start + 1.0)
        pause.answered(seq, False, start + 1.1)
        assert pause.remaining(start + 1.1) == pytest.approx(2.9)
        start += 5.0
    assert pause.trusted is True
    assert pause.shortened == 0


def test_a_hold_of_the_clients_own_count_is_probed_at_once_even_when_probing_stopped() -> None:
    """``probe_now``: only the server can say whether the client's count ran out early."""
    pause = ServerPause()
    pause.probing = False
    pause.hold(0.0, 1.0, probe_now=True)
    assert pause.wait(0.0) == 0.0  # the probe goes now
    pause.sent(1, 0.0)
    assert pause.wait(0.01) == pytest.approx(0.99)  # then the hold stands: no more probes


def test_a_probe_that_recounts_neither_ends_trust_nor_scores_the_pause() -> None:
    """Recounts end the hold but say nothing of the server's waits."""
    pause = ServerPause()
    for k in range(5):
        start = 10.0 * k
        pause.hold(start, 1.0, probe_now=True)
        pause.sent(k + 1, start)
        pause.answered(k + 1, admitted=True, now=start + 0.01, recount=True)
        assert pause.until == pytest.approx(start + 0.01)
    assert pause.trusted
    assert pause.probing


def test_the_servers_word_withdraws_a_probe_of_the_clients_own_count() -> None:
    """A hold of the client's count asks for a probe at once; once the server itself says the
    window is spent (a hold without ``probe_now``), that probe is withdrawn unsent."""
    pause = ServerPause()
    pause.probing = False
    pause.hold(0.0, 1.0, probe_now=True)
    pause.hold(0.0, 1.0)
    assert pause.wait(0.0) == pytest.approx(1.0)
