"""The fixed window inferred from bare 429s: pure plain calls, then through the rate control.

``InferredWindow`` is driven with plain calls and explicit times; the ``ClientRateControl``
tests run it on the SDK's ``VirtualClock`` against the simulator's ``FixedWindow``, answering
each request the moment it is sent. Expectations are derived from the module's named constants.
"""

from __future__ import annotations

import itertools
import math

import pytest

import dialnexa_async as dnx
from dialnexa_async import _inferred_window
from dialnexa_async._inferred_window import (
    BURST_SHARE,
    GROWTH,
    GUARD,
    GUARD_SHARE,
    HALF,
    MAX_GUARD_SHARE,
    MIN_BUDGET,
    MIN_REST,
    PERIODS,
    PHASE_STEP,
    SHORTFALL,
    SLACK,
    InferredWindow,
)
from dialnexa_async._rate_control import Answer, ClientRateControl, Ticket
from dialnexa_async._sansio.headers import RateLimitInfo
from dialnexa_async.testing import FixedWindow

BUDGET = 10
"""The budget of the window most tests engage."""

PERIOD = 1.0
"""The period of the window most tests engage (one of ``PERIODS``)."""

OPEN_SEQ = 100
"""The sequence number of the request whose admission ended the engaging cycle's rest."""

FLOAT_SLACK = 1e-9
"""Seconds past a computed moment, so float noise cannot put a send just before it."""


def _guard(period: float) -> float:
    """Seconds past a window's predicted end before the next is entered."""
    return max(GUARD, GUARD_SHARE * period)


def _engaged(budget: int = BUDGET, period: float = PERIOD) -> InferredWindow:
    """A window engaged by one clean cycle: ``budget`` admitted in a burst ``period`` before 0,
    refusals from then on, and the next window opened at 0 by request ``OPEN_SEQ``."""
    window = InferredWindow()
    window.cycle(budget, -period, -period, 0.0, OPEN_SEQ)
    assert (window.engaged, window.budget, window.period) == (True, budget, period)
    return window


def _send(window: InferredWindow, first_seq: int, count: int, now: float) -> int:
    """Send ``count`` requests numbered from ``first_seq`` at ``now``; the next number."""
    for seq in range(first_seq, first_seq + count):
        window.sent(seq, now)
    return first_seq + count


def _admit(window: InferredWindow, first_seq: int, count: int) -> None:
    """Admit ``count`` requests numbered from ``first_seq``."""
    for seq in range(first_seq, first_seq + count):
        window.admitted(seq)


def _spend(window: InferredWindow) -> int:
    """Send the rest of the first window's budget at 0; the next sequence number."""
    return _send(window, OPEN_SEQ + 1, window.budget - 1, 0.0)


def _next_window_at(window: InferredWindow, now: float) -> float:
    """The moment the next window may be entered, as the window says at ``now``."""
    return now + window.wait(now) + FLOAT_SLACK


# --- cycle(): when one cycle of bare 429s shows a window ---------------------------------------


@pytest.mark.parametrize(
    ("admitted", "refused_at", "reopened_at", "period"),
    [
        # MIN_BUDGET admissions are a window; one fewer is none.
        (MIN_BUDGET, 0.1, 1.2, PERIOD),
        (MIN_BUDGET - 1, 0.1, 1.2, None),
        # The span from opening to reopening is rounded down to a period limits are stated in.
        (BUDGET, 0.1, 1.2, 1.0),
        (BUDGET, 0.1, 2.9, 2.0),
        (BUDGET, 0.1, 0.7, 0.5),
        (BUDGET, 0.1, 14.0, 10.0),
        (BUDGET, 0.1, 75.0, 60.0),
        (BUDGET, 0.1, PERIODS[0] * 0.9, None),  # shorter than any period
        # A cycle may run SLACK longer than its period (probes find the opening late), no more.
        (BUDGET, 0.1, 1.0 * (1 + SLACK), 1.0),
        (BUDGET, 0.1, 1.0 * (1 + SLACK) + 0.01, None),
        (BUDGET, 0.1, 2.0 * (1 + SLACK), 2.0),
        (BUDGET, 0.1, 2.0 * (1 + SLACK) + 0.01, None),
        # The admissions ran out within BURST_SHARE of the period, or they show no edge.
        (BUDGET, BURST_SHARE * 1.0, 1.2, 1.0),
        (BUDGET, BURST_SHARE * 1.0 + 0.01, 1.2, None),
        (BUDGET, BURST_SHARE * 10.0, 11.0, 10.0),
        (BUDGET, BURST_SHARE * 10.0 + 0.1, 11.0, None),
    ],
)
def test_a_cycle_engages_only_a_window_it_shows(
    admitted: int, refused_at: float, reopened_at: float, period: float | None
) -> None:
    """A cycle opened at 0 engages a window of its admissions over its rounded-down span."""
    window = InferredWindow()
    window.cycle(admitted, 0.0, refused_at, reopened_at, OPEN_SEQ)
    assert window.engaged is (period is not None)
    _send(window, OPEN_SEQ + 1, admitted - 1, reopened_at)  # the rest of a budget
    if period is not None:
        assert (window.budget, window.period) == (admitted, period)
        # The reopening request opened a window: spent, it holds the next one to its end.
        assert window.wait(reopened_at) == pytest.approx(period + _guard(period))
    else:
        assert window.wait(reopened_at) == 0.0
        assert window.disproved is False  # no proof against a window, just none shown


@pytest.mark.parametrize(("rest", "engaged"), [(MIN_REST, True), (MIN_REST * 0.9, False)])
def test_a_rest_shorter_than_min_rest_shows_no_window(
    monkeypatch: pytest.MonkeyPatch, rest: float, engaged: bool
) -> None:
    """Refusals that lasted under MIN_REST are requests crossing in flight, not a window's rest."""
    # With the shipped constants BURST_SHARE already forces a rest of (1 - BURST_SHARE) of the
    # shortest period, longer than MIN_REST; lift it so that MIN_REST alone decides.
    monkeypatch.setattr(_inferred_window, "BURST_SHARE", 1.0)
    reopened_at = 1.0
    window = InferredWindow()
    window.cycle(BUDGET, 0.0, reopened_at - rest - FLOAT_SLACK * engaged, reopened_at, OPEN_SEQ)
    assert window.engaged is engaged


# --- wait() and sent(): each window's budget at once, then the next window ----------------------


@pytest.mark.parametrize(
    ("period", "guard"),
    [
        (0.5, GUARD),  # a short window: GUARD is the longer
        (PERIOD, GUARD),
        (10.0, GUARD_SHARE * 10.0),  # a long window: its share is the longer
        (60.0, GUARD_SHARE * 60.0),
    ],
)
def test_wait_holds_the_request_past_the_budget_until_the_window_end_plus_guard(
    period: float, guard: float
) -> None:
    """The whole budget goes at once; the next request waits for the window's end plus guard."""
    window = _engaged(period=period)
    _send(window, OPEN_SEQ + 1, BUDGET - 2, 0.0)
    assert window.wait(0.0) == 0.0  # the budget's last request may still go
    window.sent(OPEN_SEQ + BUDGET - 1, 0.0)
    assert window.wait(0.0) == pytest.approx(period + guard)
    assert window.wait(period / 2) == pytest.approx(period / 2 + guard)
    assert window.wait(period + guard) == 0.0


@pytest.mark.parametrize(
    ("budget", "grown"),
    [
        (BUDGET, BUDGET + 1),  # GROWTH of a small budget is under one request: one
        (MIN_BUDGET, MIN_BUDGET + 1),
        (500, 500 + round(500 * GROWTH)),
    ],
)
def test_sent_opens_the_next_window_and_grows_the_budget_after_a_full_one(
    budget: int, grown: int
) -> None:
    """A window that took its whole budget grows the next by GROWTH; one that did not, not."""
    window = _engaged(budget)
    nxt = _spend(window)
    _admit(window, OPEN_SEQ + 1, budget - 1)  # with the reopening request: all of it
    start = _next_window_at(window, 0.0)
    window.sent(nxt, start)
    assert window.budget == grown
    assert window.wait(start) == 0.0  # a new window: its budget is open again
    # This window takes one request short of its budget: the next one keeps it.
    after = _send(window, nxt + 1, grown - 1, start)
    _admit(window, nxt, grown - 1)
    window.sent(after, _next_window_at(window, start))
    assert window.budget == grown


def test_a_window_not_engaged_holds_nothing() -> None:
    """Before a cycle engages it, the window neither counts sends nor holds a request."""
    window = InferredWindow()
    for seq in range(1, 10 * BUDGET):
        window.sent(seq, 0.0)
        window.admitted(seq)
    assert window.wait(0.0) == 0.0
    assert window.refused(10 * BUDGET, 0.0) is False
    assert (window.engaged, window.disproved) == (False, False)


# --- refused(): what a refusal while engaged says ----------------------------------------------


def test_a_refusal_from_an_earlier_window_is_its_echo() -> None:
    """A refusal of a request sent before the current window opened changes nothing."""
    window = _engaged()
    nxt = _spend(window)
    start = _next_window_at(window, 0.0)
    window.sent(nxt, start)  # the next window opens
    budget, held = window.budget, window.wait(start)
    for seq in (OPEN_SEQ, nxt - 1, OPEN_SEQ - 1):
        assert window.refused(seq, start) is False
    assert (window.engaged, window.budget, window.wait(start)) == (True, budget, held)


@pytest.mark.parametrize(
    ("positions", "budget"),
    [
        ([99], 99),
        ([95], 95),
        ([round(SHORTFALL * 100)], round(SHORTFALL * 100)),
        ([97, 92, 95], 92),  # in any order, the first refused position counts
    ],
)
def test_a_refusal_past_shortfall_shrinks_the_budget_to_the_first_refused_position(
    positions: list[int], budget: int
) -> None:
    """Refused at or past SHORTFALL of the budget: the budget is what got through, no shift."""
    window = _engaged(100)
    _spend(window)
    held = window.wait(0.0)
    for position in positions:
        assert window.refused(OPEN_SEQ + position, 0.0) is False
    assert window.budget == budget
    assert window.engaged is True
    assert window.wait(0.0) == held  # the window's end stands


@pytest.mark.parametrize(
    ("sent", "position"),
    [
        (BUDGET, 0),
        (BUDGET, round(HALF * BUDGET) - 1),
        (BUDGET, round(HALF * BUDGET)),
        (BUDGET, round(SHORTFALL * BUDGET) - 1),
        (3, 0),  # refused before the budget was all sent: the rest is held back
    ],
)
def test_a_first_early_refusal_moves_the_window_start_by_a_phase_step(
    sent: int, position: int
) -> None:
    """Refused before SHORTFALL of the budget, once: the next window opens PHASE_STEP later,
    and a refusal of the window's very first request doubles the guard after each end."""
    window = _engaged()
    nxt = _send(window, OPEN_SEQ + 1, sent - 1, 0.0)
    now = 0.3
    assert window.refused(OPEN_SEQ + position, now) is False
    assert (window.engaged, window.budget) == (True, BUDGET)
    step = PHASE_STEP * PERIOD
    assert window.wait(now) == pytest.approx(step)
    start = now + step + FLOAT_SLACK
    assert window.wait(start) == 0.0
    window.sent(nxt, start)  # opens the next window, counted from here
    _send(window, nxt + 1, window.budget - 1, start)
    guard = _guard(PERIOD) * (2 if position == 0 else 1)
    assert window.wait(start) == pytest.approx(PERIOD + min(guard, MAX_GUARD_SHARE * PERIOD))


@pytest.mark.parametrize(
    ("full_in_between", "refused_at", "disproved"),
    [
        (False, "first", True),
        (False, "before-half", True),  # the last position before HALF of the budget
        (False, "half", False),  # at HALF: a start misjudged again, one more phase step
        (True, "first", False),  # a full window in between: not in a row, a phase step
    ],
)
def test_two_windows_in_a_row_refusing_before_half_disprove_it_for_good(
    full_in_between: bool, refused_at: str, disproved: bool
) -> None:
    """A second window in a row refused before HALF its budget disproves the window for good."""
    window = _engaged()
    nxt = _spend(window)
    assert window.refused(OPEN_SEQ, 0.0) is False  # the first early window: a phase step
    start = _next_window_at(window, 0.0)
    if full_in_between:
        window.sent(nxt, start)  # opens a window that takes all of its budget
        size = window.budget
        _send(window, nxt + 1, size - 1, start)
        _admit(window, nxt, size)
        nxt += size
        start = _next_window_at(window, start)
    opened = nxt
    window.sent(opened, start)  # opens the window refused early
    _send(window, opened + 1, window.budget - 1, start)
    # A window of its own; the first early window's refused first request doubled the guard,
    # and a full window in between shrank it by a tenth.
    guard = 2 * _guard(PERIOD) * (0.9 if full_in_between else 1.0)
    assert window.wait(start) == pytest.approx(PERIOD + max(guard, _guard(PERIOD)))
    half = math.ceil(HALF * window.budget)  # the first position at HALF of the budget
    position = {"first": 0, "before-half": half - 1, "half": half}[refused_at]
    assert window.refused(opened + position, start) is disproved
    assert window.engaged is not disproved
    assert window.disproved is disproved
    if disproved:
        assert window.wait(start) == 0.0  # it holds nothing any more...
        window.cycle(BUDGET, start, start, start + PERIOD, opened + BUDGET)
        assert window.engaged is False  # ...and a clean cycle never engages it again
    else:
        assert window.wait(start) == pytest.approx(PHASE_STEP * PERIOD)


# --- through the rate control ------------------------------------------------------------------

LIMIT = 10
"""Requests the server's fixed window admits."""

WINDOW = 1.0
"""The server's window in seconds (one of ``PERIODS``)."""

OK = Answer(200, None, None)
BARE_429 = Answer(429, None, None)


async def _send_one(control: ClientRateControl, server: FixedWindow) -> tuple[Ticket, bool]:
    """Send one request and answer it at once: admitted, or a bare 429."""
    ticket = await control.acquire()
    admitted = server.admit(ticket.sent_at).admitted
    control.observe(OK if admitted else BARE_429, ticket)
    return ticket, admitted


async def _engage(clock: dnx.VirtualClock) -> tuple[ClientRateControl, FixedWindow, Ticket]:
    """A rate control that one cycle of bare 429s from a fixed window engaged, and the
    request whose admission engaged it (the first of the window it opened)."""
    control = ClientRateControl(clock, rate_limit=None, max_wait=60.0)
    server = FixedWindow(LIMIT, WINDOW)
    while True:
        assert clock.monotonic() < 2 * WINDOW * (1 + SLACK), "no cycle engaged the window"
        ticket, _ = await _send_one(control, server)
        if control.window.engaged:
            return control, server, ticket


async def test_a_cycle_of_bare_429s_from_a_fixed_window_engages_it_and_lifts_pacing() -> None:
    """After one cycle the window is followed: no pacing, each window's budget sent at once."""
    clock = dnx.VirtualClock()
    control, server, engaging = await _engage(clock)
    assert (control.window.budget, control.window.period) == (LIMIT, WINDOW)
    assert control.model.rate is not None  # the first refusal did cut a rate...
    assert control.send_rate_cap is None  # ...which the window lifted
    windows = 4
    bursts: dict[float, list[bool]] = {engaging.sent_at: [True]}
    while sum(True in sent for sent in bursts.values()) <= windows:  # until one more opens
        ticket, admitted = await _send_one(control, server)
        bursts.setdefault(ticket.sent_at, []).append(admitted)
    starts = sorted(t for t, sent in bursts.items() if True in sent)[:windows]
    probes = sorted(t for t, sent in bursts.items() if True not in sent)
    # Each window's requests go at one instant, the whole budget admitted (a request past it
    # is GROWTH's try for more, refused), and the windows a period plus the guard apart.
    assert [bursts[start].count(True) for start in starts] == [LIMIT] * windows
    assert all(len(bursts[start]) <= LIMIT + 1 for start in starts)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([WINDOW + _guard(WINDOW)] * (windows - 1))
    # Each rest is tested by one probe, halfway through it, which the server refuses.
    for start, nxt in itertools.pairwise(starts):
        inside = [p for p in probes if start < p < nxt]
        assert len(inside) == 1
        assert bursts[inside[0]] == [False]
        assert inside[0] == pytest.approx(start + (nxt - start) / 2)
    assert control.window.engaged is True
    assert control.send_rate_cap is None


@pytest.mark.parametrize(
    ("hint", "paced"),
    [
        pytest.param(Answer(429, None, 0.5), True, id="retry-after"),
        pytest.param(Answer(429, RateLimitInfo(LIMIT, 0, 0.5), None), False, id="budget-headers"),
        pytest.param(Answer(429, RateLimitInfo(None, None, None, WINDOW), None), True, id="policy"),
    ],
)
async def test_a_429_with_any_hint_disengages_the_window(hint: Answer, paced: bool) -> None:
    """A 429 that says anything (Retry-After, rate-limit headers) ends the inferred window."""
    clock = dnx.VirtualClock()
    control, _, _ = await _engage(clock)
    ticket = await control.acquire()  # within the window's budget
    control.observe(hint, ticket)
    assert control.window.engaged is False
    assert control.window.disproved is False  # the server's words, no proof against it
    # The server's words rule now: a trusted budget holds the client, else the rate paces it.
    assert (control.send_rate_cap is not None) is paced


# --- the rest's probe ----------------------------------------------------------------------------


def test_a_rest_is_probed_once_halfway_and_a_retry_never_probes_it() -> None:
    """Once the budget is sent, one fresh request may go halfway through the rest; a retry
    (``may_probe=False``) waits for the next window, and so does everything after the probe."""
    window = _engaged()
    nxt = _spend(window)
    end = PERIOD + _guard(PERIOD)
    halfway = end / 2
    assert window.wait(0.0, may_probe=True) == pytest.approx(halfway)
    assert window.wait(0.0, may_probe=False) == pytest.approx(end)
    assert window.wait(halfway, may_probe=False) == pytest.approx(end - halfway)
    assert window.wait(halfway, may_probe=True) == 0.0
    window.sent(nxt, halfway)
    assert window.probe == nxt
    assert window.wait(halfway, may_probe=True) == pytest.approx(end - halfway)


def test_a_refused_probe_leaves_the_window_standing() -> None:
    """A true window refuses the probe of its rest: nothing changes, the next window opens."""
    window = _engaged()
    nxt = _spend(window)
    _admit(window, OPEN_SEQ, BUDGET)
    halfway = (PERIOD + _guard(PERIOD)) / 2
    window.sent(nxt, halfway)
    assert window.refused(nxt, halfway) is False
    assert (window.engaged, window.budget) == (True, BUDGET)
    assert window.wait(halfway) == pytest.approx(PERIOD + _guard(PERIOD) - halfway)


def test_an_admitted_probe_disproves_the_window() -> None:
    """The server had room where the inference said it had none: the window is dropped for
    good (the adaptive rate paces instead), never holding the client below what it admits."""
    window = _engaged()
    nxt = _spend(window)
    halfway = (PERIOD + _guard(PERIOD)) / 2
    window.sent(nxt, halfway)
    window.admitted(nxt)
    assert (window.engaged, window.disproved) == (False, True)
    assert window.wait(halfway, may_probe=False) == 0.0
    window.cycle(BUDGET, halfway, halfway + 0.1, halfway + PERIOD, nxt + 1)
    assert window.engaged is False  # never re-engaged


async def test_a_window_inferred_too_long_is_dropped_by_its_first_rest_probe() -> None:
    """A 1 s window the client took for 2 s (a budget refused late, found late): the probe
    halfway through the first rest is admitted, and the client paces instead of idling."""
    clock = dnx.VirtualClock()
    control = ClientRateControl(clock, rate_limit=None, max_wait=60.0)
    control.observe(OK, await control.acquire())
    control.window.cycle(LIMIT, 0.0, 0.05, 2.0, 1)
    assert (control.window.engaged, control.window.period) == (True, 2.0)
    clock.advance(2.0)
    server = FixedWindow(LIMIT, WINDOW)
    sent: list[tuple[float, bool]] = []
    while control.window.engaged and clock.monotonic() < 4.0:
        ticket, admitted = await _send_one(control, server)
        sent.append((ticket.sent_at, admitted))
    assert control.window.disproved is True
    assert sent[-1][1] is True  # the probe, admitted in the server's next window
    assert 2.0 + WINDOW <= sent[-1][0] < 2.0 + 2.0 + _guard(2.0)
