"""Client-wide rate control in virtual time: pauses, probes, header budget, adaptive rate.

The controller is driven with the SDK's ``VirtualClock``; answers are handed to ``observe``
the moment they are decided, so every wait in these tests is one the controller chose.
Expectations are derived from the modules' named constants.
"""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

import dialnexa_async as dnx
from dialnexa_async._pause import EARLY_ENDS, MIN_PROBE_GAP, PROBES
from dialnexa_async._rate_control import (
    BARE_HOLD_INITIAL,
    BARE_HOLD_MAX,
    COSTLY_SECONDS,
    MIN_HORIZON,
    MIN_SERVER_WAIT,
    REOPEN_GUARD,
    RESET_ROUNDING,
    ROUND_PERIODS,
    SETTLING,
    Answer,
    ClientRateControl,
    Ticket,
)
from dialnexa_async._rate_model import CEILING_HOLDS, LOG_SECONDS, MARGIN, MIN_RATE, RECOVERY
from dialnexa_async._sansio.headers import RateLimitInfo

OK = Answer(200, None, None)
BARE_429 = Answer(429, None, None)
HINTED_429 = Answer(429, None, 0.0)
"""A 429 that says to retry at once: it cuts the rate, but is no bare 429 to infer a window from."""


def _control(
    clock: dnx.VirtualClock, rate_limit: float | None = None, max_wait: float = 60.0
) -> ClientRateControl:
    return ClientRateControl(clock, rate_limit=rate_limit, max_wait=max_wait)


def _gap(seconds: float) -> float:
    """The spacing of probes during a pause of ``seconds``."""
    return max(MIN_PROBE_GAP, seconds / (PROBES + 1))


def _after(seconds: float) -> Answer:
    """A 429 whose Retry-After is ``seconds``."""
    return Answer(429, None, seconds)


async def _admit(
    control: ClientRateControl,
    clock: dnx.VirtualClock,
    per_second: float,
    seconds: float,
    answer: Answer = OK,
) -> None:
    """Send and admit requests evenly at ``per_second`` for ``seconds``."""
    for _ in range(round(per_second * seconds)):
        control.observe(answer, await control.acquire())
        clock.advance(1 / per_second)


def _now(clock: dnx.VirtualClock, seq: int = 0) -> Ticket:
    """A ticket for a request sent now (for answers whose sending is not under test)."""
    return Ticket(seq, clock.monotonic())


# --- server pauses (Retry-After) -----------------------------------------------------------------


async def test_a_retry_after_pauses_every_new_request_once_but_probes() -> None:
    """After a 429 with Retry-After only spaced probes go before its end; the rest wait it out."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    await _admit(control, clock, 100.0, 1.0)
    start = clock.monotonic()
    end = start + 2.0
    control.observe(_after(2.0), _now(clock))
    sent: list[tuple[float, bool]] = []

    async def request() -> None:
        ticket = await control.acquire()
        probe = control.pause.probe == ticket.seq
        sent.append((ticket.sent_at, probe))
        # The server refuses until the end of the pause, then admits.
        if ticket.sent_at < end:
            control.observe(_after(end - ticket.sent_at), ticket)
        else:
            control.observe(OK, ticket)

    await asyncio.gather(*(request() for _ in range(30)))
    early = [at for at, probe in sent if at < end - 1e-9]
    assert all(probe for at, probe in sent if at < end - 1e-9)
    assert 1 <= len(early) <= PROBES
    assert all(b - a >= _gap(2.0) - 1e-9 for a, b in itertools.pairwise(early))
    assert early[0] == pytest.approx(start + _gap(2.0))
    rest = [at for at, _ in sent if at >= end - 1e-9]
    assert len(rest) == 30 - len(early)
    assert min(rest) == pytest.approx(end)
    assert control.cooldowns == 1
    assert control.cooldown_seconds == pytest.approx(2.0)


async def test_pause_only_moves_forward() -> None:
    """A later, shorter wait never shortens a longer pause already in force."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(_after(5.0), _now(clock))
    control.observe(_after(1.0), _now(clock))
    assert control.paused_for == pytest.approx(5.0)
    control.observe(_after(8.0), _now(clock))
    assert control.paused_for == pytest.approx(8.0)
    assert control.cooldown_seconds == pytest.approx(8.0)


async def test_an_admitted_probe_ends_a_pause_early() -> None:
    """A probe the server admits during a pause ends it for every request at once."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    await _admit(control, clock, 100.0, 1.0)
    start = clock.monotonic()
    control.observe(_after(10.0), _now(clock))
    probe = await control.acquire()
    assert probe.sent_at == pytest.approx(start + _gap(10.0))
    assert control.pause.probe == probe.seq
    control.observe(OK, probe)
    assert control.paused_for == 0.0
    assert control.pause.shortened == 1
    cap = control.send_rate_cap
    assert cap is not None
    nxt = await control.acquire()
    assert nxt.sent_at <= probe.sent_at + 1 / cap + 1e-9  # paced at the rate, not paused


@pytest.mark.parametrize(("beaten", "trusted"), [(EARLY_ENDS - 1, True), (EARLY_ENDS, False)])
async def test_pauses_that_probes_beat_in_a_row_stop_pausing_the_client(
    beaten: int, trusted: bool
) -> None:
    """After EARLY_ENDS pauses in a row that a probe cut short, a Retry-After pauses no one."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    await _admit(control, clock, 100.0, 1.0)
    for _ in range(beaten):
        control.observe(_after(10.0), _now(clock))
        probe = await control.acquire()
        control.observe(OK, probe)
        assert control.paused_for == 0.0
        await _admit(control, clock, 100.0, 1.0)
    assert control.pause.trusted is trusted
    horizon = control.horizon
    cooldowns = control.cooldowns
    control.observe(_after(4 * horizon), _now(clock))
    assert control.paused_for == (pytest.approx(4 * horizon) if trusted else 0.0)
    assert control.cooldowns == cooldowns + (1 if trusted else 0)
    # An untrusted wait does not pass for the server's period either.
    assert control.horizon == (min(LOG_SECONDS, 4 * horizon) if trusted else horizon)


@pytest.mark.parametrize(
    ("retry_after", "fails"),
    [(3600.0, True), (60.5, True), (59.0, False), (1.0, False)],
)
async def test_a_pause_longer_than_max_wait_fails_fast(retry_after: float, fails: bool) -> None:
    """A pause longer than max_wait fails new requests at once with the remaining wait."""
    clock = dnx.VirtualClock()
    control = _control(clock, max_wait=60.0)
    control.pause.probing = False  # no probe: a request either fails or waits out the pause
    control.observe(_after(retry_after), _now(clock))
    if fails:
        with pytest.raises(dnx.RateLimitError) as caught:
            await control.acquire()
        assert caught.value.retry_after == pytest.approx(retry_after)
        assert clock.sleeps == []
    else:
        ticket = await control.acquire()
        assert ticket.sent_at == pytest.approx(retry_after)


@pytest.mark.parametrize("retry_after", [0.0, MIN_SERVER_WAIT / 2])
async def test_a_retry_after_shorter_than_min_server_wait_still_pauses_that_long(
    retry_after: float,
) -> None:
    """A 429 saying Retry-After: 0 (or a past date) pauses the client MIN_SERVER_WAIT."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.pause.probing = False  # no probe: the next request waits out the whole pause
    control.observe(_after(retry_after), await control.acquire())
    assert control.cooldowns == 1
    assert control.paused_for == pytest.approx(MIN_SERVER_WAIT)
    nxt = await control.acquire()
    assert nxt.sent_at == pytest.approx(MIN_SERVER_WAIT)


async def test_a_probe_through_a_pause_skips_the_pacer() -> None:
    """A request let through a pause as its probe goes at once; later ones keep their slots."""
    rate_limit = 0.5
    clock = dnx.VirtualClock()
    control = _control(clock, rate_limit=rate_limit)
    control.observe(_after(1.0), await control.acquire())  # the pacer's next slot is 1/rate
    probe = await control.acquire()
    assert probe.sent_at == pytest.approx(_gap(1.0))
    assert probe.sent_at < 1 / rate_limit  # not held for the pacer's slot
    assert control.pause.probe == probe.seq
    control.observe(OK, probe)  # admitted: the pause ends
    assert control.paused_for == 0.0
    nxt = await control.acquire()
    assert nxt.sent_at == pytest.approx(1 / rate_limit)  # the probe took no slot of the pacer


# --- bare 429s ---------------------------------------------------------------------------------


async def test_a_bare_429_pauses_briefly_and_the_pause_doubles_while_refusals_go_on() -> None:
    """A 429 with no hint holds the client BARE_HOLD_INITIAL, doubling to BARE_HOLD_MAX."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    doublings = math.ceil(math.log2(BARE_HOLD_MAX / BARE_HOLD_INITIAL)) + 2
    for n in range(doublings):
        control.observe(BARE_429, _now(clock, n + 1))
        hold = control.bare_hold.remaining(clock.monotonic())
        assert hold == pytest.approx(min(BARE_HOLD_INITIAL * 2**n, BARE_HOLD_MAX))
        clock.advance(hold)
    assert control.cooldowns == 0  # the client's own guess is no server-given pause
    # An admission ends the run of refusals: the next one pauses briefly again.
    control.observe(OK, _now(clock, 100))
    control.observe(BARE_429, _now(clock, 101))
    assert control.bare_hold.remaining(clock.monotonic()) == pytest.approx(BARE_HOLD_INITIAL)


async def test_a_bare_429_holds_new_requests_but_a_probe() -> None:
    """During a bare 429's hold the next request goes only as the probe, one gap in."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(BARE_429, await control.acquire())
    probe = await control.acquire()
    assert probe.sent_at == pytest.approx(_gap(BARE_HOLD_INITIAL))
    assert control.bare_hold.probe == probe.seq
    # Refusals of requests sent during the hold are its echo: the hold does not double.
    control.observe(BARE_429, probe)
    assert control.bare_hold.until == pytest.approx(BARE_HOLD_INITIAL)


async def test_a_bare_hold_probes_where_a_window_opened_by_the_run_would_reopen() -> None:
    """A run of bare refusals after admissions first answered at T: the doubling hold that
    would overshoot T + 1 s is cut short to probe just after it; a refused probe there leaves
    the doubling schedule as it was, and the next round period after it is probed too."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    seq = 0
    for _ in range(20):  # admissions sent from 0 to 0.19 s, the first answered at 0.01
        seq += 1
        ticket = _now(clock, seq)
        clock.advance(0.01)
        control.observe(OK, ticket)
    opened = 0.01
    # Refusals at each hold's end: holds of 0.1, 0.2, 0.4 (ends at 0.9 s), then 0.8 would end
    # at 1.7 s, past the window that reopens at 1.01 s.
    for expected in (0.1, 0.2, 0.4):
        seq += 1
        control.observe(BARE_429, _now(clock, seq))
        assert control.bare_hold.remaining(clock.monotonic()) == pytest.approx(expected)
        clock.advance(expected)
    doubling_end = clock.monotonic() + 0.8
    seq += 1
    control.observe(BARE_429, _now(clock, seq))
    assert control.bare_hold.until == pytest.approx(opened + 1.0 + REOPEN_GUARD)
    clock.advance(control.bare_hold.until - clock.monotonic())
    seq += 1
    control.observe(BARE_429, _now(clock, seq))  # still shut: back to the doubling hold
    assert control.bare_hold.until == pytest.approx(doubling_end)
    clock.advance(doubling_end - clock.monotonic())
    seq += 1
    control.observe(BARE_429, _now(clock, seq))  # the doubling probe: 1.6 s more, or 2 s in
    assert control.bare_hold.until == pytest.approx(opened + 2.0 + REOPEN_GUARD)


# --- header budget -----------------------------------------------------------------------------


async def test_window_budget_counts_requests_in_flight() -> None:
    """remaining: 3 for request 1 lets requests 2-4 go at once and holds the fifth."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    first = await control.acquire()
    control.observe(Answer(200, RateLimitInfo(10, 3, 5.0), None), first)
    for _ in range(3):
        assert control.try_acquire() is not None
    assert control.try_acquire() is None
    fifth = await control.acquire()
    # Held: only the client's own count says spent, so it goes at once as the hold's probe...
    assert fifth.sent_at == 0.0
    assert control.budget_hold.probe == fifth.seq
    # ...and refused as spent, the next probe keeps the hold's spacing.
    control.observe(Answer(429, RateLimitInfo(10, 0, 5.0), 5.0), fifth)
    sixth = await control.acquire()
    assert sixth.sent_at == pytest.approx(_gap(5.0))


async def test_a_probe_admitted_through_the_clients_own_count_recounts_the_budget() -> None:
    """Answers that reached the server out of order spent the count early: a probe the server
    admits recounts it from its answer, and the headers keep holding the client."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    tickets = [await control.acquire() for _ in range(4)]
    # Request 2 arrived last of the four: it saw 6 left, so 2 + 6 = 8 where 10 fit.
    for ticket, remaining in zip(tickets, (9, 6, 8, 7), strict=True):
        control.observe(Answer(200, RateLimitInfo(10, remaining, 5.0), None), ticket)
    rest = [await control.acquire() for _ in range(4)]  # numbers 5-8 fit the count
    assert [t.sent_at for t in rest] == [0.0] * 4
    probe = await control.acquire()  # the count says spent; no answer did
    assert probe.sent_at == 0.0
    control.observe(Answer(200, RateLimitInfo(10, 1, 5.0), None), probe)
    assert control.budget_trusted is True
    assert control.budget.last_seq == probe.seq + 1
    assert (await control.acquire()).sent_at == 0.0  # the one the recount freed
    assert control.try_acquire() is None  # then spent again


async def test_a_refusal_asking_past_the_windows_end_pauses_the_client() -> None:
    """A 429 whose reset lies beyond the budget's end and a rounded second is a penalty: the
    client sits it out instead of going back at the window's end."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    first = await control.acquire()
    control.observe(Answer(200, RateLimitInfo(10, 0, 1.0), None), first)  # spent till t=1
    probe = await control.acquire()
    control.observe(Answer(429, RateLimitInfo(10, 0, 2.0), 2.0), probe)  # blocked: 2 s more
    assert control.pause.until == pytest.approx(probe.sent_at + 2.0)
    clock.advance(1.05 - clock.monotonic())
    assert control.paused_for > RESET_ROUNDING / 2  # the window's end is no reopening
    # Only the pause's probe goes before its end, not the window's budget at once.
    later = [await control.acquire() for _ in range(3)]
    assert control.pause.probe == later[0].seq
    assert [t.sent_at for t in later[1:]] == pytest.approx([probe.sent_at + 2.0] * 2)


async def test_a_window_that_reopens_remembering_older_requests_ends_the_budgets_trust() -> None:
    """Past the budget's end the client takes the limit as fresh; a server that still counts
    the requests from before (a sliding window) is no fixed window, and the rate paces."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    first = await control.acquire()
    control.observe(Answer(200, RateLimitInfo(10, 0, 1.0), None), first)
    clock.advance(1.0)
    fresh = [await control.acquire() for _ in range(3)]
    assert [t.sent_at for t in fresh] == [1.0] * 3
    control.observe(Answer(200, RateLimitInfo(10, 9, 1.0), None), fresh[0])
    assert control.budget_trusted is True  # a fixed window's first request of ten
    control.observe(Answer(429, RateLimitInfo(10, 0, 0.2), None), fresh[1])
    assert control.budget_trusted is False


async def test_a_refusal_within_the_rounding_leaves_the_budget_to_say_when() -> None:
    """A reset rounded up to the second overstates the end: the budget's own end stands."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    first = await control.acquire()
    control.observe(Answer(200, RateLimitInfo(10, 0, 1.0), None), first)
    probe = await control.acquire()
    clock.advance(0.5 - probe.sent_at)
    control.observe(Answer(429, RateLimitInfo(10, 0, 1.0), 1.0), probe)  # "0.5 s" read as 1
    assert control.pause.until == -math.inf
    assert (await control.acquire()).sent_at <= 1.0 + 1e-9


async def test_a_spent_budget_holds_requests_until_the_reset_then_admits_the_limit() -> None:
    """With the budget spent only refused probes go before the reset; then ``limit`` go at once."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    limit, reset = 4, 5.0
    first = await control.acquire()
    control.observe(Answer(200, RateLimitInfo(limit, 0, reset), None), first)
    probes: list[float] = []
    while True:
        ticket = await control.acquire()
        if ticket.sent_at >= reset - 1e-9:
            break
        probes.append(ticket.sent_at)
        left = reset - ticket.sent_at
        control.observe(Answer(429, RateLimitInfo(limit, 0, left), left), ticket)
    assert probes == pytest.approx([k * _gap(reset) for k in range(1, len(probes) + 1)])
    assert 1 <= len(probes) <= PROBES
    assert control.budget_trusted is True
    assert control.send_rate_cap is None  # the budget, not the rate, held the client
    # The new window: ``limit`` requests (the one above among them) go at the reset...
    window = [ticket] + [await control.acquire() for _ in range(limit - 1)]
    assert [t.sent_at for t in window] == pytest.approx([reset] * limit)
    # ...and the next is held again.
    assert control.try_acquire() is None
    held = await control.acquire()
    assert held.sent_at > reset


async def test_the_budget_holds_until_the_earliest_arrival_plus_reset() -> None:
    """Rounded-up resets from later answers do not push the window's end back."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    tickets = [await control.acquire() for _ in range(3)]
    control.observe(Answer(200, RateLimitInfo(3, 2, 1.0), None), tickets[0])
    clock.advance(0.6)
    # The server rounds "0.4 s left" up to 1 s: the earlier estimate (t=1.0) must stand.
    control.observe(Answer(200, RateLimitInfo(3, 0, 1.0), None), tickets[2])
    await control.acquire()  # the probe, left unanswered
    nxt = await control.acquire()
    assert nxt.sent_at == pytest.approx(1.0)


async def test_a_probe_admitted_before_the_reset_makes_the_budget_untrusted() -> None:
    """A probe the server admits though the budget was spent ends the budget's hold for good."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    first = await control.acquire()
    control.observe(Answer(200, RateLimitInfo(10, 0, 30.0), None), first)
    probe = await control.acquire()
    assert probe.sent_at == pytest.approx(_gap(30.0))
    assert control.resets_overstate is False
    control.observe(Answer(200, RateLimitInfo(10, 0, 30.0 - probe.sent_at), None), probe)
    assert control.budget_trusted is False
    assert control.resets_overstate is True  # the retry policy no longer sleeps its resets
    more = [await control.acquire() for _ in range(5)]
    assert [t.sent_at for t in more] == pytest.approx([probe.sent_at] * 5)


@pytest.mark.parametrize(("budget_trusted", "cuts"), [(True, False), (False, True)])
async def test_a_429_with_window_headers_leaves_the_rate_to_a_trusted_budget(
    budget_trusted: bool, cuts: bool
) -> None:
    """A trusted budget, not the rate, answers a 429 that states the window; untrusted, the rate."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.budget_trusted = budget_trusted
    await _admit(control, clock, 100.0, 1.0)  # admissions for a cut to measure
    ticket = await control.acquire()
    control.observe(Answer(429, RateLimitInfo(100, 0, 1.0), 1.0), ticket)
    assert (control.send_rate_cap is not None) is cuts
    assert control.model.cuts == (1 if cuts else 0)


@pytest.mark.parametrize("reset", [3600.0, 61.0])
async def test_a_spent_budget_longer_than_max_wait_fails_fast(reset: float) -> None:
    """A spent budget whose window ends after max_wait fails a new request at once."""
    clock = dnx.VirtualClock()
    control = _control(clock, max_wait=60.0)
    first = await control.acquire()
    control.observe(Answer(200, RateLimitInfo(10, 0, reset), None), first)
    with pytest.raises(dnx.RateLimitError) as caught:
        await control.acquire()
    assert caught.value.retry_after == pytest.approx(reset)


# --- the adaptive rate -------------------------------------------------------------------------


async def test_one_rate_cut_per_run_of_refusals() -> None:
    """The first 429 of a run cuts the rate; the rest of the run, and echoes later, do not."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    await _admit(control, clock, 100.0, 2.0)
    in_flight = [await control.acquire() for _ in range(20)]
    clock.advance(0.01)
    control.observe(HINTED_429, in_flight[0])
    assert control.model.cuts == 1
    cap = control.send_rate_cap
    assert cap is not None
    for ticket in in_flight[1:-1]:
        control.observe(HINTED_429, ticket)
    assert control.model.cuts == 1
    assert control.send_rate_cap == cap
    # A request sent after the cut is admitted: the run is over.
    clock.advance(1.0)
    control.observe(OK, await control.acquire())
    # A late refusal of a request sent before the cut is its echo.
    control.observe(HINTED_429, in_flight[-1])
    assert control.model.cuts == 1
    control.observe(OK, await control.acquire())
    # A refusal of a request sent after the cut begins a new run and cuts again.
    control.observe(HINTED_429, await control.acquire())
    assert control.model.cuts == 2


@pytest.mark.parametrize(
    ("warm_up", "per_second", "seconds", "idle", "window", "admitted_per_second"),
    [
        (0.0, 100.0, 2.0, 0.0, None, 100.0),
        (0.0, 40.0, 3.0, 0.0, None, 40.0),
        (0.0, 250.0, 1.0, 0.0, None, 250.0),
        # A window of 10 s whose budget went in one second: its average over 10 s.
        (2.0, 200.0, 1.0, 8.0, 10.0, 20.0),
        # One admission in a stated window of 10 s: measured, and the rate is the floor.
        (0.0, 1.0, 1.0, 9.0, 10.0, 0.1),
    ],
)
async def test_the_rate_after_a_cut_is_never_below_margin_times_the_admissions_measured(
    warm_up: float,
    per_second: float,
    seconds: float,
    idle: float,
    window: float | None,
    admitted_per_second: float,
) -> None:
    """A bare 429 sets the rate to MARGIN times what the horizon admitted (MIN_RATE at least)."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    stated = OK if window is None else Answer(200, RateLimitInfo(None, None, None, window), None)
    if warm_up:
        control.observe(stated, await control.acquire())  # the client began long before
        clock.advance(warm_up)
    await _admit(control, clock, per_second, seconds, stated)
    clock.advance(idle)
    control.observe(BARE_429, await control.acquire())
    cap = control.send_rate_cap
    assert cap is not None
    # Measured within a bucket's quantisation of what was admitted...
    assert control.model.measured == pytest.approx(admitted_per_second, rel=0.05, abs=1e-9)
    # ...and the rate set from it exactly, never below.
    assert cap == pytest.approx(max(MIN_RATE, MARGIN * control.model.measured))


@pytest.mark.parametrize("admitted_before", [False, True])
async def test_a_bare_429_with_no_admissions_over_the_horizon_sets_no_rate(
    admitted_before: bool,
) -> None:
    """A bare 429 that measures nothing admitted sets no rate: only the bare hold holds back."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    if admitted_before:
        # A burst of 200 in one second, then a quiet spell longer than the horizon.
        await _admit(control, clock, 200.0, 1.0)
        clock.advance(8.0)
    control.observe(BARE_429, await control.acquire())
    assert control.model.cuts == 0
    assert control.model.rate is None
    assert control.send_rate_cap is None
    assert control.bare_hold.remaining(clock.monotonic()) == pytest.approx(BARE_HOLD_INITIAL)
    # Once the hold ends, requests go at once: nothing paces them.
    clock.advance(BARE_HOLD_INITIAL)
    start = clock.monotonic()
    assert [(await control.acquire()).sent_at for _ in range(3)] == [start] * 3


async def test_the_rate_regrows_after_a_cut() -> None:
    """After a run clears, the rate climbs back to the measured rate in RECOVERY s, then past it."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    await _admit(control, clock, 100.0, 2.0)
    cut_at = clock.monotonic()
    control.observe(HINTED_429, await control.acquire())
    cut = control.send_rate_cap
    measured = control.model.measured
    assert cut is not None
    caps: list[float] = []
    for share in (0.5, 0.9, 1.1, 3.0):
        clock.advance(cut_at + share * RECOVERY - clock.monotonic())
        control.observe(OK, await control.acquire())
        regrown = control.send_rate_cap
        assert regrown is not None
        caps.append(regrown)
    assert caps == sorted(caps)
    assert cut < caps[0]
    assert caps[1] < measured < caps[2] < caps[3]


async def test_a_fixed_cap_bounds_the_adaptive_rate() -> None:
    """rate_limit stays the ceiling however far the adaptive rate regrows."""
    cap = 20.0
    clock = dnx.VirtualClock()
    control = _control(clock, rate_limit=cap)
    control.observe(BARE_429, await control.acquire())
    assert control.send_rate_cap == cap  # nothing admitted yet: no adaptive rate, the cap paces
    clock.advance(1.0)
    control.observe(OK, await control.acquire())
    clock.advance(0.5)
    control.observe(BARE_429, await control.acquire())  # one admission measured: a slow rate
    cut = control.model.rate
    assert cut is not None
    assert cut < cap
    assert control.send_rate_cap == cut
    clock.advance(1000.0)
    control.observe(OK, await control.acquire())
    assert control.model.rate is not None
    assert control.model.rate > cap  # regrown far past the cap...
    assert control.send_rate_cap == cap  # ...which still bounds it


async def test_rate_limit_spaces_sends() -> None:
    """rate_limit=10 starts 21 concurrent requests over two seconds, one per slot."""
    clock = dnx.VirtualClock()
    control = _control(clock, rate_limit=10.0)
    starts: list[float] = []

    async def request() -> None:
        starts.append((await control.acquire()).sent_at)

    await asyncio.gather(*(request() for _ in range(21)))
    starts.sort()
    assert starts[0] == 0.0
    # No request starts before its slot k/10, and the last slot is not later than needed.
    assert all(start >= k * 0.1 - 1e-9 for k, start in enumerate(starts))
    assert starts[-1] == pytest.approx(2.0)


# --- the horizon -------------------------------------------------------------------------------


def _round_down(seconds: float) -> float:
    """The longest period limits are stated in that is no longer than ``seconds``."""
    return max((p for p in ROUND_PERIODS if p <= seconds), default=0.0)


@pytest.mark.parametrize("cleared", [0.5, 1.3, 3.0, 12.0, 100.0])
async def test_a_run_of_bare_refusals_lengthens_the_horizon_to_its_rounded_down_length(
    cleared: float,
) -> None:
    """A run that took ~1.3 s to clear measures over 1 s, ~12 s over 10 s: rounded down."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    control.observe(BARE_429, _now(clock, 1))
    clock.advance(cleared / 2)
    control.observe(BARE_429, _now(clock, 2))  # the run goes on
    clock.advance(cleared / 2)
    control.observe(OK, _now(clock, 3))
    expected = min(LOG_SECONDS, max(MIN_HORIZON, _round_down(cleared)))
    assert control.horizon == expected
    assert control.horizon <= max(MIN_HORIZON, cleared)


@pytest.mark.parametrize(
    ("answers", "horizon"),
    [
        ([], MIN_HORIZON),
        ([Answer(200, RateLimitInfo(None, None, None, 30.0), None)], 30.0),
        ([Answer(200, RateLimitInfo(10, 5, 7.0), None)], 7.0),
        ([Answer(200, RateLimitInfo(10, 5, 7.0, 20.0), None)], 20.0),  # the window, not the reset
        ([_after(4.0)], 4.0),
        ([_after(MIN_HORIZON / 2)], MIN_HORIZON),
        ([Answer(200, RateLimitInfo(None, None, None, 10 * LOG_SECONDS), None)], LOG_SECONDS),
        (
            [
                Answer(200, RateLimitInfo(None, None, None, 30.0), None),
                Answer(200, RateLimitInfo(None, None, None, 5.0), None),
            ],
            30.0,
        ),
    ],
)
async def test_stated_periods_lengthen_the_horizon(answers: list[Answer], horizon: float) -> None:
    """Stated windows, resets and trusted Retry-After lengthen the horizon, never shorten it."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    for n, answer in enumerate(answers, start=1):
        control.observe(answer, _now(clock, n))
    assert control.horizon == horizon


# --- try_acquire -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate_limit", "answers", "advance", "free"),
    [
        (None, [], 0.0, True),
        (10.0, [], 0.0, False),  # paced by the fixed cap
        (None, [_after(1.0)], 0.0, False),  # paused by the server
        (None, [OK, _after(1.0)], 1.0, False),  # paced by the rate the 429 cut
        (None, [_after(1.0)], 1.0, True),  # nothing admitted before: no rate was cut
        (None, [BARE_429], 0.0, False),  # held after a bare 429
        (None, [BARE_429], BARE_HOLD_INITIAL, True),  # the hold is over, and no rate was cut
        (None, [Answer(200, RateLimitInfo(10, 0, 5.0), None)], 0.0, False),  # budget spent
        (None, [Answer(200, RateLimitInfo(10, 5, 5.0), None)], 0.0, True),  # budget left
    ],
)
async def test_try_acquire_returns_none_while_paced_or_paused(
    rate_limit: float | None, answers: list[Answer], advance: float, free: bool
) -> None:
    """try_acquire gives a ticket only when nothing would make the request wait."""
    clock = dnx.VirtualClock()
    control = _control(clock, rate_limit=rate_limit)
    last = await control.acquire()
    for n, answer in enumerate(answers):
        if n:
            last = await control.acquire()
        control.observe(answer, last)
    clock.advance(advance)
    ticket = control.try_acquire()
    if free:
        assert ticket == Ticket(last.seq + 1, clock.monotonic())
    else:
        assert ticket is None


# --- penalties: refusals that last for seconds ------------------------------------------------


async def _blocked(clock: dnx.VirtualClock, control: ClientRateControl, seconds: float) -> float:
    """A burst of 200 admitted in 0.1 s, then every request refused for ``seconds`` (a block),
    then one admitted; returns when the block was cleared."""
    await _admit(control, clock, 2000.0, 0.1)
    control.observe(BARE_429, await control.acquire())
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        clock.advance(0.05)
        if control.bare_hold.wait(clock.monotonic()) <= 0:
            control.observe(BARE_429, await control.acquire())
    clock.advance(end - clock.monotonic())
    cleared = await control.acquire()
    control.observe(OK, cleared)
    return cleared.sent_at


@pytest.mark.parametrize("seconds", [COSTLY_SECONDS, 2 * COSTLY_SECONDS])
async def test_refusals_for_seconds_cap_the_rate_at_the_peak_second_before(seconds: float) -> None:
    """A block: the rate is held under MARGIN times the most admitted in a second before it, and
    regrowth does not pass that while the ceiling holds."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    await _blocked(clock, control, seconds)
    assert control.model.ceiling == pytest.approx(MARGIN * 200.0)
    assert control.send_rate_cap is not None
    assert control.send_rate_cap <= MARGIN * 200.0 + 1e-9
    await _admit(control, clock, 150.0, CEILING_HOLDS - 1.0)
    assert control.send_rate_cap == pytest.approx(MARGIN * 200.0)
    await _admit(control, clock, 150.0, 10 * RECOVERY)  # the ceiling held its time: it lifts
    assert control.model.ceiling == math.inf
    assert control.send_rate_cap > 200.0


async def test_a_penalty_cap_counts_the_best_second_of_the_whole_log() -> None:
    """A client held back before the block (other clients on the key took the window) was not
    shown what the server admits then: the cap is the best second it saw at all."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    await _admit(control, clock, 2000.0, 0.1)  # 200 in one second, early on
    clock.advance(1.0)
    await _admit(control, clock, 5.0, 10.0)  # then held back to 5 a second
    control.observe(BARE_429, await control.acquire())
    clock.advance(2 * COSTLY_SECONDS)
    control.observe(OK, await control.acquire())
    assert control.model.ceiling == pytest.approx(MARGIN * 200.0)


async def test_a_penalty_behind_a_slow_limit_caps_at_its_few_a_second() -> None:
    """A limit of 5 a second is a limit like any other: its block caps the rate at 97% of 5."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    await _admit(control, clock, 5.0, 4.0)
    control.observe(BARE_429, await control.acquire())
    clock.advance(2 * COSTLY_SECONDS)
    control.observe(OK, await control.acquire())
    # Five a second, counted in whole 50 ms buckets: one second's span can hold a sixth.
    assert MARGIN * 5.0 <= control.model.ceiling <= MARGIN * 6.0 + 1e-9


async def test_a_short_run_of_refusals_sets_no_ceiling() -> None:
    """Refusals that clear sooner than COSTLY_SECONDS (a window's rest) leave regrowth free."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    await _blocked(clock, control, COSTLY_SECONDS / 2)
    assert control.model.ceiling == math.inf
    await _admit(control, clock, 150.0, 20 * RECOVERY)
    assert control.send_rate_cap is not None
    assert control.send_rate_cap > 200.0


@pytest.mark.parametrize(("after", "cuts"), [(SETTLING / 2, 0), (2 * SETTLING, 1)])
async def test_a_refusal_just_after_a_long_run_ends_is_its_edge(after: float, cuts: int) -> None:
    """A refusal within SETTLING of a long run's end (a rounded wait, a log emptying by degrees)
    sets no new rate; a later one does."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    await _blocked(clock, control, COSTLY_SECONDS)
    before = control.model.cuts
    clock.advance(after)
    control.observe(BARE_429, await control.acquire())
    assert control.model.cuts - before == cuts
