"""The fixed window inferred from hintless 429s: pure calls, then whole runs in virtual time."""

from __future__ import annotations

import math

import pytest

import dialnexa_async as dnx
from dialnexa_async._rate_control import Answer, ClientRateControl, Ticket
from dialnexa_async._sansio.headers import RateLimitInfo
from dialnexa_async._window_guess import (
    MIN_BUDGET,
    PRECISION,
    PROBE_EXPIRY,
    PROBE_POLL,
    WindowGuess,
)

REFUSED = Answer(429, None, None)
ADMITTED = Answer(200, None, None)


def _engaged(budget: int = 300, refused_at: float = 0.05) -> WindowGuess:
    """A guess that saw ``budget`` requests admitted from t=0, then the next one refused."""
    guess = WindowGuess()
    assert guess.throttled(Ticket(budget + 1, refused_at), calm_since=0.0, calm_seq=1)
    return guess


def test_the_first_refusal_sets_the_budget_and_a_lower_bound_of_the_length() -> None:
    guess = _engaged(300, refused_at=0.05)
    assert guess.engaged
    assert guess.budget == 300
    assert guess.length_bounds == pytest.approx((0.05, math.inf))


def test_too_few_admitted_is_not_a_window() -> None:
    """A 429 after fewer than MIN_BUDGET requests leaves the client's other reactions to it."""
    guess = WindowGuess()
    assert not guess.throttled(Ticket(MIN_BUDGET, 0.01), calm_since=0.0, calm_seq=1)
    assert not guess.engaged


def test_later_refusals_of_the_spent_window_are_absorbed_and_lower_the_budget() -> None:
    """Requests already on their way are refused too; the earliest refusal bounds the budget."""
    guess = _engaged(300)
    for seq in range(302, 360):
        assert guess.throttled(Ticket(seq, 0.05), calm_since=0.0, calm_seq=1)
    assert guess.budget == 300
    assert guess.throttled(Ticket(299, 0.05), calm_since=0.0, calm_seq=1)
    assert guess.budget == 298


def test_one_probe_at_a_time_then_the_budget_in_one_burst() -> None:
    """After the refusal, the next request waits for the first probe time and goes alone; once
    the probe is admitted, the window's budget goes out at once and then nothing more."""
    guess = _engaged(10, refused_at=0.05)
    first_probe = guess.wait(12, now=0.06)
    assert first_probe == pytest.approx(0.1 - 0.06)  # the shortest round length
    assert guess.wait(12, now=0.1) == 0.0  # this request is the probe
    assert guess.wait(13, now=0.1) == PROBE_POLL  # others wait for its answer
    guess.admitted(Ticket(12, 0.1))
    assert [guess.wait(seq, now=0.101) for seq in range(13, 22)] == [0.0] * 9
    assert guess.wait(22, now=0.101) > 0  # the eleventh request of the window waits
    assert guess.length_bounds == pytest.approx((0.05, 0.1))


def _probe(guess: WindowGuess, seq: int, opened_at: float) -> float:
    """Send the next probe at the first moment the guess allows; its offset from the opening."""
    now = opened_at
    while (wait := guess.wait(seq, now)) > 0:
        now += wait
    return now - opened_at


def test_the_search_tries_round_lengths_past_the_first_answers_delay() -> None:
    """While unbounded, each refused probe moves the next to the next round length, plus the
    delay before the first answer (the server's window opened when our request arrived)."""
    guess = WindowGuess()
    assert guess.throttled(Ticket(301, 0.05), calm_since=0.0, calm_seq=1, calm_delay=0.003)
    offsets = []
    for seq in range(302, 310):
        offsets.append(_probe(guess, seq, opened_at=0.0))
        assert guess.throttled(Ticket(seq, offsets[-1]), calm_since=0.0, calm_seq=1)
    expected = [length + 0.003 for length in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0)]
    assert offsets == pytest.approx(expected)
    assert guess.length_bounds[1] == math.inf


def test_once_bounded_the_probes_bisect_the_length() -> None:
    """A probe that gets through bounds the length; the next probe goes at the midpoint, and
    each refused one moves the next to the new midpoint within the same window."""
    guess = _engaged(10, refused_at=0.5)
    assert _probe(guess, 12, opened_at=0.0) == pytest.approx(1.0)  # the round length near 2x
    guess.admitted(Ticket(12, 1.0))
    assert guess.length_bounds == pytest.approx((0.5, 1.0))
    for seq in range(13, 22):
        assert guess.wait(seq, now=1.001) == 0.0  # the budget
    for seq, offset in ((22, 0.75), (23, 0.875), (24, 0.9375)):
        assert _probe(guess, seq, opened_at=1.0) == pytest.approx(offset)
        assert guess.throttled(Ticket(seq, 1.0 + offset), calm_since=0.0, calm_seq=1)
    assert guess.length_bounds == pytest.approx((0.9375, 1.0))
    assert _probe(guess, 25, opened_at=1.0) == pytest.approx(0.96875)
    guess.admitted(Ticket(25, 1.96875))
    assert guess.length_bounds == pytest.approx((0.9375, 0.96875))


def test_crossed_bounds_widen_instead_of_starting_the_search_over() -> None:
    """A probe refused at the upper bound (trip-time noise) moves the bound 1% past it, then
    2% at the next crossing: no wait for the next round length."""
    guess = _engaged(10, refused_at=0.5)
    assert _probe(guess, 12, opened_at=0.0) == pytest.approx(1.0)
    guess.admitted(Ticket(12, 1.0))
    for seq in range(13, 22):
        guess.wait(seq, now=1.001)
    bisection = (0.75, 0.875, 0.9375, 0.96875, 0.984375, 0.9921875)
    for seq, offset in enumerate(bisection, start=22):
        assert _probe(guess, seq, opened_at=1.0) == pytest.approx(offset)
        guess.throttled(Ticket(seq, 1.0 + offset), calm_since=0.0, calm_seq=1)
    assert guess.length_bounds == pytest.approx((0.9921875, 1.0))  # within PRECISION
    steps = (  # probe offset, then the bounds after its refusal; all in the same window
        (1.0, (1.0, 1.01)),  # 1% past
        (1.01, (1.01, 1.01 * 1.02)),  # 2% past: the bounds are 2% apart now
        (1.01 * 1.01, (1.01 * 1.01, 1.01 * 1.02)),  # the midpoint, refused
    )
    for seq, (offset, bounds) in enumerate(steps, start=28):
        assert _probe(guess, seq, opened_at=1.0) == pytest.approx(offset)
        assert guess.throttled(Ticket(seq, 1.0 + offset), calm_since=0.0, calm_seq=1)
        assert guess.length_bounds == pytest.approx(bounds)
    assert _probe(guess, 31, opened_at=1.0) == pytest.approx(1.01 * 1.02)  # within PRECISION
    guess.admitted(Ticket(31, 1.0 + 1.01 * 1.02))
    assert guess.length_bounds == pytest.approx((1.01 * 1.01, 1.01 * 1.02))


def test_a_lost_probe_stops_blocking_after_its_expiry() -> None:
    """A probe that never gets an answer (a network failure) lets another go after a while."""
    guess = _engaged(10)
    guess.wait(12, now=1.0)
    assert guess.wait(13, now=1.0 + PROBE_EXPIRY / 2) == PROBE_POLL
    assert guess.wait(13, now=1.0 + PROBE_EXPIRY) == 0.0  # the new probe


def test_a_probe_let_in_by_a_window_with_room_left_is_taken_back() -> None:
    """A budget counted two short leaves room in the window; the probe then gets in early.
    When the next refusal comes two requests later, the window is the old one after all:
    its opening stands, its budget grows by two, and it is known to outlast the probe."""
    guess = _engaged(298, refused_at=0.05)  # the true window admits 300 and lasts 1 s
    guess.wait(300, now=0.2)
    guess.admitted(Ticket(300, 0.2))  # length now bounded by 0.2 (wrongly)
    for seq in range(301, 598):
        guess.wait(seq, now=0.21)
    guess.admitted(Ticket(301, 0.21))  # the old window's last place
    assert guess.throttled(Ticket(302, 0.21), calm_since=0.0, calm_seq=1)
    assert guess.engaged
    assert guess.budget == 300
    assert guess.length_bounds == pytest.approx((0.2, math.inf))
    assert guess.wait(598, now=0.21) > 0  # still the first window's budget, already spent


def test_a_window_far_smaller_than_the_last_disengages() -> None:
    """After a probe got through, a burst refused within half the budget is no fixed window."""
    guess = _engaged(100)
    guess.wait(102, now=0.2)
    guess.admitted(Ticket(102, 0.2))
    assert not guess.throttled(Ticket(110, 0.21), calm_since=0.0, calm_seq=1)
    assert not guess.engaged


class _FixedWindow:
    """A server admitting ``limit`` requests per window; a window opens at the first request
    after the last one ended, as the simulator's does."""

    def __init__(self, limit: int, length: float) -> None:
        self.limit, self.length = limit, length
        self.start = -math.inf
        self.count = 0

    def answer(self, now: float) -> Answer:
        if now - self.start >= self.length:
            self.start, self.count = now, 0
        if self.count < self.limit:
            self.count += 1
            return ADMITTED
        return REFUSED


class _TokenBucket:
    """A server refilling ``rate`` tokens a second up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.last = 0.0

    def answer(self, now: float) -> Answer:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return ADMITTED
        return REFUSED


async def _run(
    control: ClientRateControl,
    clock: dnx.VirtualClock,
    server: _FixedWindow | _TokenBucket,
    seconds: float,
    *,
    spacing: float = 0.001,
) -> tuple[int, int]:
    """One request at a time, ``spacing`` seconds apart, answered at once; (admitted, 429s)."""
    admitted = refused = 0
    while clock.monotonic() < seconds:
        ticket = await control.acquire()
        answer = server.answer(clock.monotonic())
        control.observe(answer, ticket)
        if answer.status == 429:
            refused += 1
            await clock.sleep(control.paused_for)  # what the retry policy waits after a bare 429
        else:
            admitted += 1
        clock.advance(spacing)
    return admitted, refused


def _control(clock: dnx.VirtualClock) -> ClientRateControl:
    return ClientRateControl(clock, rate_limit=None, max_wait=60.0, max_concurrency=64)


async def test_a_fixed_window_is_found_and_then_filled_without_429s() -> None:
    """Against 50 requests per 1 s window, a 30 s run admits nearly the whole limit, refuses
    little beyond the first window, and ends with the length bracketed within PRECISION."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    admitted, refused = await _run(control, clock, _FixedWindow(50, 1.0), 30.0)
    assert control.guess.engaged
    assert control.guess.budget == 50
    assert admitted >= 0.95 * 30 * 50
    assert refused <= 15
    lo, hi = control.guess.length_bounds
    assert lo <= 1.0 <= hi + 0.002  # one request's spacing of slack
    assert hi - lo <= 2 * PRECISION * hi


async def test_a_token_bucket_is_still_paced_near_its_rate() -> None:
    """A token bucket is no fixed window, but a budget per probe cycle equal to what the
    bucket refilled in that cycle paces it just as well: nearly the whole rate, few 429s."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    admitted, refused = await _run(control, clock, _TokenBucket(50.0, 50), 30.0)
    assert admitted >= 0.95 * (30 * 50 + 50)
    assert refused <= 0.02 * (admitted + refused)


async def test_window_headers_replace_the_guess() -> None:
    """An answer stating the window ends the guessing: the server's numbers take over."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    await _run(control, clock, _FixedWindow(50, 1.0), 3.0)
    assert control.guess.engaged
    control.observe(Answer(200, RateLimitInfo(50, 10, 0.5), None), await control.acquire())
    assert not control.guess.engaged


async def test_the_documented_sixty_second_window_is_followed_to_the_end() -> None:
    """The gateway window the API docs report, 150 requests per 60 s, with bare 429s: a 20
    minute run fills every window and never gives up on a probe wait longer than
    ``max_wait`` (a search that started over after crossed bounds once did)."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    admitted, refused = await _run(control, clock, _FixedWindow(150, 60.0), 1200.0, spacing=0.002)
    assert admitted >= 0.99 * 20 * 150
    assert refused <= 30
    lo, hi = control.guess.length_bounds
    assert lo <= 60.0 <= hi


async def test_the_first_probe_waits_for_the_round_length_after_the_first_answer() -> None:
    """The server opened its window when our first request arrived: the first probe goes a
    round length after the send time plus the delay before the first answer."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    first = await control.acquire()
    clock.advance(0.003)
    control.observe(ADMITTED, first)  # answered 3 ms after it was sent
    for _ in range(9):
        control.observe(ADMITTED, await control.acquire())
    clock.advance(0.05 - clock.monotonic())
    control.observe(REFUSED, await control.acquire())
    assert control.guess.engaged
    assert control.guess.budget == 10
    probe = await control.acquire()
    assert probe.sent_at == pytest.approx(0.1 + 0.003)


def test_a_window_longer_than_max_length_ends_the_guess_for_good() -> None:
    """A probe refused 65 s after the opening with ``max_length=60``: the 429 is left to the
    client's other reactions, and no later refusal engages the guess again."""
    guess = WindowGuess(max_length=60.0)
    assert guess.throttled(Ticket(11, 59.0), calm_since=0.0, calm_seq=1)  # longer than 59 s
    assert guess.wait(12, now=59.0) == pytest.approx(6.0)  # the search's next: 65 s
    assert guess.wait(12, now=65.0) == 0.0
    assert not guess.throttled(Ticket(12, 65.0), calm_since=0.0, calm_seq=1)
    assert guess.too_long
    assert not guess.engaged
    assert not guess.throttled(Ticket(40, 70.0), calm_since=66.0, calm_seq=13)
    assert not guess.engaged


def test_a_calm_spell_longer_than_max_length_is_no_windows_budget() -> None:
    """An hour of requests under the limit, then a 429: the hour held many windows, so its
    count is left alone; the calm spell after the client's reaction is counted instead."""
    guess = WindowGuess(max_length=60.0)
    assert not guess.throttled(Ticket(72_001, 3600.0), calm_since=0.0, calm_seq=1)
    assert not guess.engaged
    assert not guess.too_long
    assert guess.throttled(Ticket(72_052, 3600.6), calm_since=3600.5, calm_seq=72_002)
    assert guess.budget == 50


async def test_a_long_calm_spell_then_a_burst_is_paced_at_the_limit() -> None:
    """A client polling under a 50-per-second window for an hour, then fetching in bulk, is
    at the limit within a few windows, as a fresh client is."""
    clock = dnx.VirtualClock()
    control = _control(clock)
    server = _FixedWindow(50, 1.0)
    calm_admitted, calm_refused = await _run(control, clock, server, 3600.0, spacing=0.05)
    assert (calm_admitted, calm_refused) == (72_000, 0)
    admitted, refused = await _run(control, clock, server, 3630.0)
    assert admitted >= 0.9 * 30 * 50
    assert refused <= 15
    assert control.guess.engaged
    assert control.guess.budget == 50


async def test_an_inferred_wait_past_max_retry_wait_is_slept_not_raised() -> None:
    """``max_retry_wait`` bounds waits the server gives. The guess's own wait of 63 s, with
    ``max_retry_wait=60``, while it narrows a window known to be 59.95-66 s long, is slept
    (it once raised ``RateLimitError``)."""
    clock = dnx.VirtualClock()
    control = ClientRateControl(clock, rate_limit=None, max_wait=60.0, max_concurrency=64)
    first = await control.acquire()
    clock.advance(1.0)
    control.observe(ADMITTED, first)  # the first answer 1 s after the first send
    for _ in range(9):
        control.observe(ADMITTED, await control.acquire())
    clock.advance(59.95 - clock.monotonic())
    control.observe(REFUSED, await control.acquire())  # the window is over 59.95 s long
    probe = await control.acquire()
    assert probe.sent_at == pytest.approx(66.0)  # 65 s, a round length, past the 1 s delay
    control.observe(ADMITTED, probe)
    assert control.guess.length_bounds == pytest.approx((59.95, 66.0))
    for _ in range(9):
        control.observe(ADMITTED, await control.acquire())  # the window's budget
    after = await control.acquire()
    assert after.sent_at == pytest.approx(66.0 + (59.95 + 66.0) / 2)  # the midpoint
    assert max(clock.sleeps) > 62.0
    assert control.guess.engaged


async def test_a_window_just_over_max_retry_wait_gives_way_without_raising() -> None:
    """A bare-429 window of 60.4 s with ``max_retry_wait=60``: once a probe is refused over
    60 s after the opening the guess gives up, and the run goes on through the usual
    reactions, raising nothing."""
    clock = dnx.VirtualClock()
    control = ClientRateControl(clock, rate_limit=None, max_wait=60.0, max_concurrency=64)
    admitted, _ = await _run(control, clock, _FixedWindow(10, 60.4), 600.0, spacing=0.002)
    assert control.guess.too_long
    assert not control.guess.engaged
    assert admitted >= 9 * 10  # the ten of nearly every window of the run
