"""The adaptive rate's pieces, pure and clock-driven: admission log, GCRA pacer, admission rate.

Expectations are derived from the module's named constants, so retuning a constant breaks
only the tests whose behaviour it really changes.
"""

from __future__ import annotations

import itertools
import math

import pytest

from dialnexa_async._rate_model import (
    BUCKET,
    CATCH_UP,
    CEILING_HOLDS,
    DOUBLING,
    FEW_ADMISSIONS,
    LOG_SECONDS,
    MARGIN,
    MIN_RATE,
    MIN_SPAN,
    RECOVERY,
    AdmissionLog,
    AdmissionRate,
    GcraPacer,
    covered,
)

SIZE = round(LOG_SECONDS / BUCKET)
"""Buckets in the admission log."""


def _mid(bucket: int) -> float:
    """The middle of bucket number ``bucket``: a send time no float rounding moves."""
    return (bucket + 0.5) * BUCKET


def _late(bucket: int) -> float:
    """A time late in bucket number ``bucket``: a count back to any earlier send includes it."""
    return (bucket + 0.9) * BUCKET


def _log(sends: list[float]) -> AdmissionLog:
    """A log that has recorded ``sends`` in order."""
    log = AdmissionLog()
    for when in sends:
        log.record(when)
    return log


def _steady(per_second: float, start: float, end: float) -> list[float]:
    """Send times at ``per_second``, evenly spaced over ``[start, end)``, off bucket edges."""
    n = round((end - start) * per_second)
    return [start + (i + 0.5) / per_second for i in range(n)]


# --- AdmissionLog ------------------------------------------------------------------------------

ONE_PER_BUCKET = [_mid(k) for k in range(20)]


@pytest.mark.parametrize(
    ("sends", "now", "span", "expected"),
    [
        ([], _mid(19), 20 * BUCKET, 0),
        (ONE_PER_BUCKET, _mid(19), 5 * BUCKET, 5),
        (ONE_PER_BUCKET, _mid(19), 2.5 * BUCKET, 3),  # part of a bucket counts it whole
        (ONE_PER_BUCKET, _mid(19), BUCKET / 2, 1),  # never less than the current bucket
        (ONE_PER_BUCKET, _mid(19), 20 * BUCKET, 20),
        (ONE_PER_BUCKET, _mid(19), LOG_SECONDS, 20),
        (ONE_PER_BUCKET, _mid(30), 20 * BUCKET, 9),  # buckets 11..30 hold sends 11..19
        ([_mid(3)] * 7, _mid(3), BUCKET, 7),
    ],
)
def test_log_counts_admissions_over_a_span(
    sends: list[float], now: float, span: float, expected: int
) -> None:
    """count(now, span) is the admissions sent in the whole buckets reaching span back."""
    assert _log(sends).count(now, span) == expected


@pytest.mark.parametrize(
    ("sends", "now", "span", "expected"),
    [
        # One full lap later the same slot of the ring is reused: the old send is gone.
        ([_mid(0), _mid(SIZE)], _mid(SIZE), BUCKET, 1),
        ([_mid(0), _mid(SIZE)], _mid(SIZE), LOG_SECONDS, 1),
        # A steady stream over one and a half laps: exactly the last lap is counted.
        ([_mid(k) for k in range(3 * SIZE // 2)], _mid(3 * SIZE // 2 - 1), LOG_SECONDS, SIZE),
        ([_mid(k) for k in range(3 * SIZE // 2)], _mid(3 * SIZE // 2 - 1), 1.0, round(1 / BUCKET)),
        # Idle longer than the log reaches: everything is forgotten.
        ([_mid(k) for k in range(10)], LOG_SECONDS + 10.0, LOG_SECONDS, 0),
        ([_mid(k) for k in range(10)], _mid(10 + SIZE), LOG_SECONDS, 0),
    ],
)
def test_log_forgets_what_is_older_than_log_seconds(
    sends: list[float], now: float, span: float, expected: int
) -> None:
    """Across the ring's wrap-around only admissions of the last LOG_SECONDS are counted."""
    assert _log(sends).count(now, span) == expected


@pytest.mark.parametrize(
    ("late_send", "counted_at"),
    [
        (_mid(3), _mid(10)),  # recorded after a newer send
        (_mid(0), _mid(10)),  # older than the span asked for
    ],
)
def test_log_counts_an_out_of_order_send_in_the_newest_bucket(
    late_send: float, counted_at: float
) -> None:
    """A send recorded after a newer one lands in the newest bucket, not in its own."""
    log = _log([_mid(10), late_send])
    assert log.count(counted_at, BUCKET) == 2
    assert log.first == _mid(10)


def test_log_counts_a_late_send_in_the_bucket_a_count_moved_to() -> None:
    """After count() moved the log to now, a late-recorded older send counts in now's bucket."""
    log = _log([_mid(10)])
    assert log.count(_mid(20), BUCKET) == 0
    log.record(_mid(15))
    assert log.count(_mid(20), BUCKET) == 1


@pytest.mark.parametrize(
    ("sends", "now", "horizon", "expected"),
    [
        (_steady(100.0, 0.0, 2.0), 2.0, 1.0, 100.0),
        (_steady(100.0, 0.0, 2.0), 2.0, 0.5, 100.0),
        (_steady(40.0, 0.0, 5.0), 5.0, 4.0, 40.0),
        # Younger than the horizon: the rate since the first admission, not diluted.
        (_steady(100.0, 9.5, 10.0), 10.0, 10.0, 100.0),
        # A burst in the first second of ten, measured since the first: its average...
        (_steady(200.0, 0.0, 1.0), _late(200), 20.0, 20.0),
        # ...and over the last second: nothing.
        (_steady(200.0, 0.0, 1.0), _late(200), 1.0, 0.0),
        # A horizon shorter than MIN_SPAN reads over MIN_SPAN.
        (_steady(100.0, 0.0, 2.0), 2.0, MIN_SPAN / 4, 100.0),
    ],
)
def test_log_rate_over_a_horizon(
    sends: list[float], now: float, horizon: float, expected: float
) -> None:
    """rate(now, horizon) is the admissions per second over the horizon or since the first."""
    assert _log(sends).rate(now, horizon) == pytest.approx(expected, rel=0.02, abs=1e-9)


@pytest.mark.parametrize(
    ("now", "span", "expected"),
    [
        (_mid(40), 1.0, (round(1.0 / BUCKET) - 1) * BUCKET + BUCKET / 2),
        (_mid(40), BUCKET, BUCKET / 2),
        (40 * BUCKET + BUCKET / 4, 3 * BUCKET, 2 * BUCKET + BUCKET / 4),
    ],
)
def test_covered_counts_whole_buckets_back_and_the_current_ones_past(
    now: float, span: float, expected: float
) -> None:
    """covered() is the time a count spans: whole buckets back plus the current one's past."""
    assert covered(now, span) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("sends", "now", "span", "measured"),
    [
        # The span reaches past the first admission, late in a bucket the whole-bucket count
        # misses: measured from the first admission, every one counts.
        ([_late(0)] * 5 + [_mid(10)], _mid(20), 20 * BUCKET, (6, _mid(20) - _late(0))),
        # The first admission within MIN_SPAN of now: the seconds are MIN_SPAN at least.
        ([_mid(20)] * 3, _mid(21), BUCKET, (3, MIN_SPAN)),
        # The span ends after the first admission: whole buckets, over the seconds they cover.
        ([_mid(k) for k in range(40)], _mid(39), 10 * BUCKET, (10, covered(_mid(39), 10 * BUCKET))),
        ([], _mid(20), 1.0, (0, 1.0)),
    ],
)
def test_measure_counts_back_to_the_first_admission_when_the_span_reaches_past_it(
    sends: list[float], now: float, span: float, measured: tuple[int, float]
) -> None:
    """measure() counts every admission since the first when the span reaches past it."""
    log = _log(sends)
    count, seconds = log.measure(now, span)
    assert count == measured[0]
    assert seconds == pytest.approx(measured[1])


def test_count_keeps_whole_buckets_where_measure_reaches_the_first_admission() -> None:
    """count() over a span still counts whole buckets; measure() over it counts from the first."""
    log = _log([_late(0)] * 5 + [_mid(10)])
    now, span = _mid(20), 20 * BUCKET
    assert now - _late(0) < span  # the span reaches past the first admission...
    assert log.count(now, span) == 1  # ...but bucket 0 is not among the last 20
    assert log.measure(now, span)[0] == 6


# --- GcraPacer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "burst", "nows", "waits"),
    [
        (2.0, 1, [0.0, 0.0, 0.0], [0.0, 0.5, 1.0]),
        (4.0, 1, [0.0, 0.0, 0.0, 0.0], [0.0, 0.25, 0.5, 0.75]),
        (2.0, 1, [0.0, 0.2, 0.6], [0.0, 0.3, 0.4]),
        (2.0, 2, [0.0, 0.0, 0.0], [0.0, 0.0, 0.5]),
        (2.0, 3, [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5]),
        (2.0, 1, [0.0, 10.0, 10.0], [0.0, 0.0, 0.5]),  # an idle spell is not saved up
        (2.0, 2, [0.0, 0.0, 10.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0, 0.5]),
    ],
)
def test_pacer_reserves_evenly_spaced_slots(
    rate: float, burst: int, nows: list[float], waits: list[float]
) -> None:
    """reserve() books slots 1/rate apart, lets ``burst`` go back to back, forgets idle time."""
    pacer = GcraPacer(rate, burst=burst)
    assert [pacer.reserve(now) for now in nows] == pytest.approx(waits)


def test_pacer_next_free_looks_without_booking() -> None:
    """next_free() books nothing however often it is asked; take() books the slot it saw."""
    pacer = GcraPacer(2.0)
    pacer.reserve(0.0)
    assert pacer.next_free(0.1) == pytest.approx(0.4)
    assert pacer.next_free(0.1) == pytest.approx(0.4)
    pacer.take(0.5)
    assert pacer.next_free(0.5) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("interval", "late_by"),
    [
        (10 * CATCH_UP, 0.0),
        (10 * CATCH_UP, CATCH_UP / 2),  # a timer's overshoot: made up
        (10 * CATCH_UP, CATCH_UP * 0.99),
        (10 * CATCH_UP, 5 * CATCH_UP),  # an idle gap: not made up
        (10 * CATCH_UP, math.inf),  # the first send
        (CATCH_UP / 2, math.inf),
    ],
)
def test_pacer_take_makes_up_a_timer_overshoot_but_not_an_idle_gap(
    interval: float, late_by: float
) -> None:
    """A slot taken late by under CATCH_UP keeps the schedule; later, a new one starts from now."""
    pacer = GcraPacer(1 / interval)
    if late_by == math.inf:
        now = 5.0  # nothing booked before
    else:
        pacer.reserve(0.0)  # the schedule's next slot is at ``interval``
        now = interval + late_by
    assert pacer.next_free(now) == 0.0
    pacer.take(now)
    made_up = late_by if late_by < CATCH_UP else 0.0
    assert pacer.next_free(now) == pytest.approx(interval - made_up)


@pytest.mark.parametrize(
    ("old", "new", "booked"),
    [
        (2.0, 4.0, 1),
        (4.0, 2.0, 1),
        (2.0, 4.0, 3),
        (1.0, 10.0, 5),
        (10.0, 1.0, 2),
    ],
)
def test_pacer_rate_change_moves_the_next_slot(old: float, new: float, booked: int) -> None:
    """A new rate puts the next slot one new interval after the last booked send."""
    pacer = GcraPacer(old)
    for _ in range(booked):
        pacer.reserve(0.0)
    last_send = (booked - 1) / old
    pacer.rate = new
    assert pacer.rate == new
    assert pacer.next_free(0.0) == pytest.approx(last_send + 1 / new)


def test_pacer_rate_change_before_any_send_leaves_the_first_slot_free() -> None:
    """Changing the rate of a pacer that booked nothing keeps its first slot free at once."""
    pacer = GcraPacer(2.0)
    pacer.rate = 0.5
    assert pacer.next_free(0.0) == 0.0
    assert pacer.reserve(0.0) == 0.0
    assert pacer.reserve(0.0) == pytest.approx(2.0)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan])
def test_pacer_rejects_a_rate_that_is_not_positive(rate: float) -> None:
    """A zero, negative or NaN rate is a ValueError, at creation and when set later."""
    with pytest.raises(ValueError, match="positive"):
        GcraPacer(rate)
    pacer = GcraPacer(1.0)
    with pytest.raises(ValueError, match="positive"):
        pacer.rate = rate
    assert pacer.rate == 1.0


# --- AdmissionRate -----------------------------------------------------------------------------


def _model(sends: list[float]) -> AdmissionRate:
    """An adaptive rate that has seen ``sends`` admitted."""
    model = AdmissionRate()
    for when in sends:
        model.admitted(when)
    return model


def test_rate_is_off_until_the_first_throttle() -> None:
    """Before any throttle there is no rate, and regrowing leaves it off."""
    model = _model(_steady(100.0, 0.0, 2.0))
    assert model.rate is None
    assert model.regrow(10.0) is None
    assert model.rate is None
    assert model.cuts == 0


@pytest.mark.parametrize(
    ("sends", "now", "horizon", "admitted_per_second"),
    [
        (_steady(100.0, 0.0, 2.0), 2.0, 1.0, 100.0),
        (_steady(100.0, 0.0, 2.0), 2.0, 10.0, 100.0),  # since the first admission
        (_steady(40.0, 0.0, 5.0), 5.0, 1.0, 40.0),
        # A window that admits 200 at the start of each 10 s: its period tells the truth.
        (_steady(200.0, 0.0, 1.0), _late(200), 20.0, 20.0),
        # One admission in ten seconds: measured, and the rate is the floor.
        ([0.0], 10.0, 10.0, 0.1),
    ],
)
def test_throttle_sets_the_rate_from_the_admissions_measured_over_the_horizon(
    sends: list[float], now: float, horizon: float, admitted_per_second: float
) -> None:
    """A throttle sets the rate to MARGIN times the admissions measured, never below MIN_RATE."""
    model = _model(sends)
    assert model.throttled(now, now, horizon) is True
    assert model.cuts == 1
    assert model.measured == pytest.approx(admitted_per_second, rel=0.02, abs=1e-9)
    assert model.rate is not None
    assert model.rate == pytest.approx(max(MIN_RATE, MARGIN * model.measured))
    assert model.rate >= MARGIN * admitted_per_second * 0.98


@pytest.mark.parametrize(
    ("sends", "now", "horizon"),
    [
        ([], 1.0, 1.0),  # a first 429 before any success
        # A window that admitted 200 at the start of its 10 s: one second of it sees nothing.
        (_steady(200.0, 0.0, 1.0), _late(200), 1.0),
        # Older than the log reaches: forgotten.
        (_steady(100.0, 0.0, 1.0), LOG_SECONDS + 2.0, LOG_SECONDS),
    ],
)
def test_a_throttle_that_measured_no_admissions_sets_no_rate(
    sends: list[float], now: float, horizon: float
) -> None:
    """With nothing admitted over the horizon a throttle returns False and sets no rate."""
    model = _model(sends)
    assert model.throttled(now, now, horizon) is False
    assert model.rate is None
    assert model.cuts == 0
    assert model.regrow(now + RECOVERY) is None  # nothing to pace by, so nothing regrows


def test_a_throttle_that_measured_no_admissions_leaves_an_earlier_cut_alone() -> None:
    """After a cut, a later throttle with nothing admitted since keeps the rate and the cut."""
    model = _model(_steady(100.0, 0.0, 2.0))
    assert model.throttled(2.0, 2.0, 1.0) is True
    rate, measured = model.rate, model.measured
    later = 5.0  # three seconds after the cut, nothing admitted over the last one
    assert model.log.measure(later, 1.0)[0] == 0
    assert model.throttled(later, later, 1.0) is False
    assert (model.rate, model.measured, model.cuts) == (rate, measured, 1)
    # No new cut was taken: a refusal of a request sent between the two still reacts.
    model.admitted(later)
    assert model.throttled(later + 0.5, 3.0, 1.0) is True
    assert model.cuts == 2


SLOWER = 20.0
"""Admissions per second after a cut, well apart from the 100 a second measured at it."""


@pytest.mark.parametrize(
    ("sent_before_cut", "reacts"),
    [(1.0, False), (1e-6, False), (0.0, True), (-0.5, True)],
)
def test_a_refusal_of_a_request_sent_before_the_cut_is_an_echo(
    sent_before_cut: float, reacts: bool
) -> None:
    """A 429 to a request sent before the last cut changes nothing; a later one cuts again."""
    model = _model(_steady(100.0, 0.0, 2.0))
    model.throttled(2.0, 2.0, 1.0)
    rate, measured = model.rate, model.measured
    later = 3.0
    for when in _steady(SLOWER, 2.0, later):
        model.admitted(when)
    assert model.throttled(later, 2.0 - sent_before_cut, 1.0) is reacts
    assert model.cuts == (2 if reacts else 1)
    if not reacts:
        assert (model.rate, model.measured) == (rate, measured)
    else:
        # Measured afresh over (2, 3], where the server admitted SLOWER a second.
        assert model.measured == pytest.approx(SLOWER, rel=0.05)
        assert model.rate == pytest.approx(MARGIN * model.measured)


@pytest.mark.parametrize(
    ("admissions", "slow_start"),
    [(1, True), (FEW_ADMISSIONS - 1, True), (FEW_ADMISSIONS, False)],
)
def test_a_throttle_that_measured_few_admissions_starts_a_slow_start(
    admissions: int, slow_start: bool
) -> None:
    """Fewer than FEW_ADMISSIONS measured: the rate doubles every DOUBLING seconds after the cut."""
    model = _model([(i + 0.5) / max(admissions, 1) for i in range(admissions)])
    now = _late(round(1.0 / BUCKET))
    model.throttled(now, now, now)
    cut = model.rate
    assert cut is not None
    for k in (1, 2, 3, 4):
        grown = model.regrow(now + k * DOUBLING)
        assert grown is not None
        if slow_start:
            assert grown == pytest.approx(cut * 2**k)
        else:
            assert grown < cut * 2  # the cubic curve, far slower


@pytest.mark.parametrize(("spread", "slow_start"), [(0.01, True), (0.5, False)])
def test_a_first_cut_read_off_a_burst_shorter_than_min_span_starts_a_slow_start(
    spread: float, slow_start: bool
) -> None:
    """Every admission so far within MIN_SPAN: the reading is floored, so the rate doubles
    every DOUBLING seconds to find the server's; spread wider, the cubic curve follows."""
    n = 4 * FEW_ADMISSIONS
    model = _model([0.001 + spread * i / n for i in range(n)])
    now = 0.001 + spread + 0.01
    assert model.throttled(now, now, 1.0) is True
    cut = model.rate
    assert cut is not None
    grown = model.regrow(now + 2 * DOUBLING)
    assert grown is not None
    if slow_start:
        assert grown == pytest.approx(cut * 4)
    else:
        assert grown < cut * 1.1


def test_the_cut_ending_a_slow_start_from_a_burst_has_no_floor_at_half_the_rate() -> None:
    """A window's budget sent in milliseconds reads far over the server's rate: the cut that
    ends the slow start takes what was measured, not half the rate the doubling reached."""
    model = _model([0.001 + 0.00005 * i for i in range(200)])
    assert model.throttled(0.02, 0.02, 1.0) is True
    for when in _steady(200.0, 1.0, 1.5):  # the next window's budget, paced by the holds
        model.admitted(when)
    reached = model.regrow(1.5)
    assert reached is not None
    assert model.throttled(1.5, 1.5, 1.0) is True
    assert model.measured < reached / 2
    assert model.measured == pytest.approx(max(model.log.rate(1.5, MIN_SPAN), 100.0), rel=0.05)


def test_a_throttle_after_a_lull_reads_the_busiest_period_since_the_last_cut() -> None:
    """Few admissions over the horizon after a cut (the client held itself back through most
    of it): the cut takes the most admitted in one horizon since the last cut began, no slow
    start from the lull's trickle."""
    model = _model(_steady(100.0, 0.0, 2.0))
    assert model.throttled(2.0, 2.0, 1.0) is True
    for when in (3.40, 3.42, 3.44):  # a hold's probe and two more got through
        model.admitted(when)
    assert 0 < model.log.measure(3.5, 1.0)[0] < FEW_ADMISSIONS
    assert model.throttled(3.5, 3.5, 1.0) is True
    assert model.measured == pytest.approx(100.0, rel=0.05)
    assert model.rate == pytest.approx(MARGIN * model.measured)
    grown = model.regrow(3.5 + 2 * DOUBLING)
    assert grown is not None
    assert grown < 1.1 * model.measured  # the cubic curve, not doubling


def test_a_throttle_after_a_lull_with_no_busy_period_since_the_cut_starts_slow() -> None:
    """The busiest horizon since the last cut counts only if it held FEW_ADMISSIONS or more:
    a server that has admitted a trickle all along is found by a slow start."""
    model = _model([0.5, 0.9])
    assert model.throttled(1.0, 1.0, 1.0) is True
    for when in (3.4, 3.45):
        model.admitted(when)
    assert model.throttled(3.5, 3.5, 1.0) is True
    cut = model.rate
    assert cut is not None
    assert model.regrow(3.5 + 2 * DOUBLING) == pytest.approx(cut * 4)


@pytest.mark.parametrize("after_slow_start", [True, False])
def test_the_cut_after_a_slow_start_also_reads_the_recent_rate(after_slow_start: bool) -> None:
    """The first cut after a slow start takes the MIN_SPAN rate when it beats the horizon's."""
    first = FEW_ADMISSIONS - 1 if after_slow_start else 4 * FEW_ADMISSIONS
    sends = [(i + 0.5) / first for i in range(first)]  # in [0, 1)
    model = _model(sends)
    model.throttled(1.0, 1.0, 10.0)
    for when in _steady(100.0, 1.5, 2.0):  # the ramp to 100/s
        model.admitted(when)
    horizon_rate = model.log.rate(2.0, 10.0)
    recent_rate = model.log.rate(2.0, MIN_SPAN)
    assert recent_rate > horizon_rate  # the two readings differ, so the test can tell them apart
    model.throttled(2.0, 2.0, 10.0)
    expected = max(recent_rate, horizon_rate) if after_slow_start else horizon_rate
    assert model.measured == pytest.approx(expected)
    assert model.rate == pytest.approx(MARGIN * expected)


@pytest.mark.parametrize(
    ("share_of_recovery", "below_measured"),
    [(0.0, True), (0.25, True), (0.5, True), (0.9, True), (1.1, False), (2.0, False)],
)
def test_cubic_regrowth_passes_the_measured_rate_only_after_recovery(
    share_of_recovery: float, below_measured: bool
) -> None:
    """After a cut the rate climbs back to the measured rate in RECOVERY seconds, then above."""
    model = _model(_steady(100.0, 0.0, 2.0))
    model.throttled(2.0, 2.0, 1.0)
    cut, measured = model.rate, model.measured
    assert cut is not None
    grown = model.regrow(2.0 + share_of_recovery * RECOVERY)
    assert grown is not None
    assert grown >= cut
    assert (grown < measured) is below_measured
    if not below_measured:
        assert grown > measured


def test_cubic_regrowth_never_lowers_the_rate_and_meets_the_measured_rate() -> None:
    """Regrowth is monotone in time, equals the measured rate at RECOVERY, and keeps climbing."""
    model = _model(_steady(100.0, 0.0, 2.0))
    model.throttled(2.0, 2.0, 1.0)
    measured = model.measured
    rates = [model.regrow(2.0 + t * RECOVERY / 8) for t in range(25)]
    assert all(a is not None and b is not None and a <= b for a, b in itertools.pairwise(rates))
    assert rates[8] == pytest.approx(measured)
    assert model.regrow(2.0) == rates[-1]  # an earlier time does not undo growth


def test_rate_never_below_min_rate_however_often_throttled() -> None:
    """With one admission per horizon, every throttle sets MIN_RATE and regrowth stays above."""
    horizon = 10.0
    assert MARGIN / horizon < MIN_RATE  # one admission per horizon measures under the floor
    model = AdmissionRate()
    for n in range(10):
        start = n * horizon
        model.admitted(start + BUCKET / 2)
        now = start + horizon - BUCKET / 2
        assert model.throttled(now, now, horizon) is True
        assert model.cuts == n + 1
        assert model.measured * MARGIN < MIN_RATE
        assert model.rate == MIN_RATE
        grown = model.regrow(now + BUCKET)
        assert grown is not None
        assert grown >= MIN_RATE


def test_reset_lifts_the_rate_until_the_next_throttle() -> None:
    """reset() turns pacing off; regrowth leaves it off, and the next throttle measures again."""
    model = _model(_steady(100.0, 0.0, 2.0))
    model.throttled(2.0, 2.0, 1.0)
    model.reset()
    assert model.rate is None
    assert model.regrow(3.0) is None
    for when in _steady(50.0, 3.0, 5.0):
        model.admitted(when)
    assert model.throttled(5.0, 5.0, 1.0) is True
    assert model.measured == pytest.approx(50.0, rel=0.02)


@pytest.mark.parametrize(
    ("first_share", "now_share"),
    [
        (0.8, 0.9),
        (0.0, 0.5),
        (0.8, 0.4),
    ],
)
def test_a_throttle_counts_every_admission_since_the_first(
    first_share: float, now_share: float
) -> None:
    """A start-up burst counts at the first throttle, wherever now lies in its bucket."""
    first = first_share * BUCKET
    now = (8 + now_share) * BUCKET
    model = _model([first] * 30)
    assert model.log.measure(now, now - first)[0] == 30
    model.throttled(now, now, 1.0)
    assert model.measured == pytest.approx(30 / (now - first), rel=0.15)


# --- a penalty's ceiling -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bursts", "span", "peak"),
    [
        ([(0.0, 200)], 1.0, 200),  # one burst: all of it fits one span
        ([(0.0, 100), (2.0, 150)], 1.0, 150),  # the larger of two bursts far apart
        ([(0.0, 100), (0.5, 100), (1.5, 100)], 1.0, 200),  # two within one span, not three
        ([(0.0, 100), (0.5, 100), (1.5, 100)], 2.0, 300),
    ],
)
def test_log_peak_is_the_most_admissions_within_any_span(
    bursts: list[tuple[float, int]], span: float, peak: int
) -> None:
    """``peak`` slides a span over the interval: bursts a span apart never add up."""
    log = AdmissionLog()
    for at, count in bursts:
        for _ in range(count):
            log.record(at + BUCKET / 2)
    end = bursts[-1][0] + BUCKET
    assert log.peak(end + 5.0, -1.0, end, span) == peak
    # An interval that leaves out the largest burst does not count it.
    assert log.peak(end + 5.0, end + 1.0, end + 2.0, span) == 0


def test_stay_under_paces_at_once_below_the_rate_and_caps_regrowth() -> None:
    """A penalty's ceiling: the rate drops to MARGIN times it at once, and never regrows past."""
    model = _model(_steady(400.0, 0.0, 2.0))
    model.throttled(2.0, 2.0, 1.0)
    assert model.rate is not None
    assert model.rate > MARGIN * 200.0
    model.stay_under(200.0, 2.0)
    assert model.rate == pytest.approx(MARGIN * 200.0)
    assert model.regrow(2.0 + CEILING_HOLDS - 0.1) == pytest.approx(MARGIN * 200.0)
    # A higher ceiling later does not lift the lower one; a lower one lowers it.
    model.stay_under(300.0, 3.0)
    assert model.ceiling == pytest.approx(MARGIN * 200.0)
    model.stay_under(100.0, 4.0)
    assert model.rate == pytest.approx(MARGIN * 100.0)


def test_stay_under_leaves_a_lower_rate_to_regrow_up_to_the_ceiling() -> None:
    """A rate already under the ceiling is kept, and regrows to the ceiling, not past it."""
    model = _model(_steady(50.0, 0.0, 2.0))
    model.throttled(2.0, 2.0, 1.0)
    cut = model.rate
    assert cut is not None
    assert cut < MARGIN * 200.0
    model.stay_under(200.0, 2.0)
    assert model.rate == cut
    assert model.regrow(2.0 + CEILING_HOLDS - 0.1) == pytest.approx(MARGIN * 200.0)


def test_a_ceiling_lifts_after_it_held_its_time_and_holds_twice_as_long_next() -> None:
    """A ceiling read off one bad episode (another client since gone) does not hold for good:
    after ``CEILING_HOLDS`` the rate climbs past it from where it was, slowly at first; the
    next ceiling holds twice as long."""
    model = _model(_steady(400.0, 0.0, 2.0))
    model.throttled(2.0, 2.0, 1.0)
    model.stay_under(100.0, 2.0)
    held = MARGIN * 100.0
    lifted_at = 2.0 + CEILING_HOLDS
    assert model.regrow(lifted_at) == pytest.approx(held)
    assert model.ceiling == math.inf
    # The cubic's plateau first: within a few per cent a RECOVERY later, then well past it.
    assert model.regrow(lifted_at + RECOVERY) == pytest.approx(held * (1 + (1 - MARGIN)), rel=0.01)
    assert model.regrow(lifted_at + 6 * RECOVERY) > 2 * held
    # A second penalty: its ceiling holds twice as long.
    again = lifted_at + 10.0
    model.stay_under(150.0, again)
    assert model.regrow(again + 2 * CEILING_HOLDS - 0.1) == pytest.approx(MARGIN * 150.0)
    assert model.regrow(again + 2 * CEILING_HOLDS) == pytest.approx(MARGIN * 150.0)
    assert model.ceiling == math.inf
