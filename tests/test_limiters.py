"""Tests of the simulator's limiter zoo, header dialects and rate gate, mostly without HTTP."""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
import shlex
import time
from collections.abc import AsyncIterator, Sequence

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialnexa_async.testing import (
    BlockPenalty,
    ChangingLimit,
    ConcurrencyLimit,
    FixedWindow,
    GateAnswer,
    LeakyBucket,
    Limiter,
    LimiterKind,
    RateGate,
    RateLimitBody,
    RateLimitDialect,
    Simulator,
    SimulatorConfig,
    SlidingWindowCounter,
    SlidingWindowLog,
    TokenBucket,
    Verdict,
    build_parser,
    config_from_args,
    make_limiter,
    render_headers,
)
from dialnexa_async.testing._limiters import CONCURRENCY_RETRY_AFTER, LIMITER_KINDS

from .test_simulator import AUTH, FakeClock, lead_url

# Tolerance on stated seconds: covers float noise and the sliding counter's 1 us nudge.
SECONDS = 1e-5
# A moment `t` counts as "before" another only if earlier by more than this.
SLACK = 1e-6
WALL = 1_700_000_000.25  # Tue, 14 Nov 2023 22:13:20.25 GMT

# (now, admitted, remaining, reset, retry_after)
Row = tuple[float, bool, int, float, float]


def check_rows(limiter: Limiter, rows: Sequence[Row]) -> list[Verdict]:
    """Feed the arrival times of ``rows`` to ``limiter`` and compare every verdict."""
    verdicts = []
    for now, admitted, remaining, reset, retry_after in rows:
        verdict = limiter.admit(now)
        assert (verdict.admitted, verdict.remaining) == (admitted, remaining), (now, verdict)
        assert verdict.reset == pytest.approx(reset, abs=SECONDS), (now, verdict)
        assert verdict.retry_after == pytest.approx(retry_after, abs=SECONDS), (now, verdict)
        verdicts.append(verdict)
    return verdicts


# --- each limiter against a table of arrivals ------------------------------------------------


def test_fixed_window_counts_per_window_and_restarts_on_a_clock_going_back() -> None:
    """A fixed window admits ``limit`` from its first request, refuses until it ends, reopens."""
    check_rows(
        FixedWindow(3, 10.0),
        [
            (1000.0, True, 2, 10.0, 0.0),
            (1000.0, True, 1, 10.0, 0.0),
            (1000.0, True, 0, 10.0, 0.0),
            (1002.5, False, 0, 7.5, 7.5),
            (1009.9, False, 0, 0.1, 0.1),
            (1010.0, True, 2, 10.0, 0.0),
            (1005.0, True, 2, 10.0, 0.0),
            (1014.9, True, 1, 0.1, 0.0),
        ],
    )


def test_sliding_log_retry_after_frees_exactly_one_slot() -> None:
    """The log refuses until its oldest entry leaves the window, and admits exactly then."""
    check_rows(
        SlidingWindowLog(2, 10.0),
        [
            (0.0, True, 1, 10.0, 0.0),
            (4.0, True, 0, 6.0, 0.0),
            (5.0, False, 0, 5.0, 5.0),
            (9.99, False, 0, 0.01, 0.01),
            (10.0, True, 0, 4.0, 0.0),
            (10.5, False, 0, 3.5, 3.5),
            (14.0, True, 0, 6.0, 0.0),
        ],
    )


def test_sliding_counter_weights_the_previous_window() -> None:
    """The estimate is previous * (1 - elapsed/window) + current, and retry_after solves it."""
    check_rows(
        SlidingWindowCounter(10, 1.0),
        [
            *((0.0, True, 9 - n, 2.0, 0.0) for n in range(10)),
            # Full window: only the next one helps, where the 10 weigh (1 - t) after t seconds.
            (0.0, False, 0, 2.0, 1.0),
            # 0.25 into the next window the ten weigh 7.5: three more fit (8.5, 9.5, 10.5).
            (1.25, True, 2, 1.75, 0.0),
            (1.25, True, 1, 1.75, 0.0),
            (1.25, True, 0, 1.75, 0.0),
            # 10 * (1 - 0.25 - d) + 3 < 10 needs d > 0.05.
            (1.25, False, 0, 1.75, 0.05),
            (1.29, False, 0, 1.71, 0.01),
            (1.31, True, 0, 1.69, 0.0),
        ],
    )


def test_sliding_counter_admits_at_its_own_retry_after() -> None:
    """A refusal's retry_after, even one reaching into the next window, ends in an admission."""
    counter = SlidingWindowCounter(10, 1.0)
    for _ in range(10):
        counter.admit(0.0)
    refusal = counter.admit(0.0)
    assert not refusal.admitted
    assert counter.admit(refusal.retry_after).admitted


def test_token_bucket_of_one_is_strict_spacing() -> None:
    """``burst=1`` admits one request per ``1/rate`` and refuses anything closer."""
    check_rows(
        TokenBucket(rate=10.0, burst=1),
        [
            (0.0, True, 0, 0.1, 0.0),
            (0.05, False, 0, 0.05, 0.05),
            (0.1, True, 0, 0.1, 0.0),
            (0.15, False, 0, 0.05, 0.05),
            (0.2, True, 0, 0.1, 0.0),
            (0.35, True, 0, 0.1, 0.0),
            (0.4, False, 0, 0.05, 0.05),
        ],
    )


def test_token_bucket_bursts_then_refills() -> None:
    """A full bucket admits ``burst`` at once, then one token per ``1/rate``; reset is 'full'."""
    bucket = TokenBucket(rate=1.0, burst=3)
    check_rows(
        bucket,
        [
            (0.0, True, 2, 1.0, 0.0),
            (0.0, True, 1, 2.0, 0.0),
            (0.0, True, 0, 3.0, 0.0),
            (0.0, False, 0, 3.0, 1.0),
            (1.0, True, 0, 3.0, 0.0),
            (10.0, True, 2, 1.0, 0.0),
        ],
    )
    assert (bucket.limit, bucket.window) == (3, 3.0)


def test_leaky_bucket_delays_then_refuses() -> None:
    """The leaky bucket admits what fits but holds each request until the queue ahead drains."""
    bucket = LeakyBucket(rate=2.0, burst=3)
    verdicts = check_rows(
        bucket,
        [
            (0.0, True, 2, 0.5, 0.0),
            (0.0, True, 1, 1.0, 0.0),
            (0.0, True, 0, 1.5, 0.0),
            (0.0, False, 0, 1.5, 0.5),
            (0.5, True, 0, 1.5, 0.0),
            (0.75, False, 0, 1.25, 0.25),
            (5.0, True, 2, 0.5, 0.0),
        ],
    )
    assert [v.delay for v in verdicts] == pytest.approx([0.0, 0.5, 1.0, 0.0, 1.0, 0.0, 0.0])


def test_concurrency_limit_counts_requests_in_flight() -> None:
    """At most ``limit`` are admitted and unreleased; a release frees one slot, never more."""
    limiter = ConcurrencyLimit(2)
    assert limiter.admit(0.0).remaining == 1
    assert limiter.admit(0.0).remaining == 0
    refusal = limiter.admit(0.0)
    assert not refusal.admitted
    assert refusal.retry_after == refusal.reset == CONCURRENCY_RETRY_AFTER
    limiter.release(0.1)
    assert limiter.admit(0.1).admitted
    assert not limiter.admit(0.1).admitted
    for _ in range(5):
        limiter.release(0.2)
    assert [limiter.admit(0.2).admitted for _ in range(3)] == [True, True, False]


def test_block_penalty_refuses_under_the_limit_during_the_block() -> None:
    """One refusal blocks everything for ``block`` seconds, then a fresh window opens."""
    arrivals: list[Row] = [
        (0.0, True, 1, 10.0, 0.0),
        (1.0, True, 0, 9.0, 0.0),
        (2.0, False, 0, 30.0, 30.0),
        (15.0, False, 0, 17.0, 17.0),
        (31.9, False, 0, 0.1, 0.1),
        (32.0, True, 1, 10.0, 0.0),
        (33.0, True, 0, 9.0, 0.0),
        (34.0, False, 0, 30.0, 30.0),
    ]
    check_rows(BlockPenalty(2, 10.0, block=30.0), arrivals)
    # The same arrivals at 15 s would pass a plain fixed window: only the block refuses it.
    plain = FixedWindow(2, 10.0)
    assert [plain.admit(t).admitted for t, *_ in arrivals[:4]] == [True, True, False, True]
    # A block shorter than the window ends in a fresh window, not in the full one.
    check_rows(
        BlockPenalty(2, 10.0, block=3.0),
        [
            (0.0, True, 1, 10.0, 0.0),
            (0.0, True, 0, 10.0, 0.0),
            (2.0, False, 0, 3.0, 3.0),
            (5.0, True, 1, 10.0, 0.0),
        ],
    )


def test_changing_limit_halves_then_doubles_a_window() -> None:
    """A scheduled factor rescales the limit at its moment, keeping the window's count."""
    limiter = ChangingLimit(FixedWindow(4, 10.0), [(20.0, 2.0), (5.0, 0.5)])
    verdicts = check_rows(
        limiter,
        [
            (100.0, True, 3, 10.0, 0.0),
            (100.0, True, 2, 10.0, 0.0),
            # Halved to 2 at 5 s: the two already admitted fill the window.
            (105.0, False, 0, 5.0, 5.0),
            (110.0, True, 1, 10.0, 0.0),
            (110.0, True, 0, 10.0, 0.0),
            (110.0, False, 0, 10.0, 10.0),
            # Doubled to 8 at 20 s.
            *((120.0, True, 7 - n, 10.0, 0.0) for n in range(8)),
            (120.0, False, 0, 10.0, 10.0),
        ],
    )
    assert [v.limit for v in verdicts] == [4, 4, 2, 2, 2, 2, *[8] * 9]


def test_changing_limit_scales_a_buckets_rate_and_depth() -> None:
    """For a bucket the factor scales both the refill rate and the depth."""
    limiter = ChangingLimit(TokenBucket(rate=1.0, burst=2), [(10.0, 2.0)])
    assert [limiter.admit(0.0).admitted for _ in range(3)] == [True, True, False]
    verdicts = [limiter.admit(10.0) for _ in range(5)]
    assert [v.admitted for v in verdicts] == [True] * 4 + [False]
    assert (verdicts[-1].limit, verdicts[-1].window) == (4, 2.0)
    assert verdicts[-1].retry_after == pytest.approx(0.5)


def test_limiters_reject_nonsense_parameters() -> None:
    """A zero limit, a non-positive window, rate or factor is a ValueError, not a silent hang."""
    for build in (
        lambda: FixedWindow(0, 1.0),
        lambda: SlidingWindowLog(1, 0.0),
        lambda: TokenBucket(rate=-1.0, burst=1),
        lambda: LeakyBucket(rate=1.0, burst=0),
        lambda: BlockPenalty(1, 1.0, block=0.0),
        lambda: ChangingLimit(FixedWindow(1, 1.0), [(1.0, 0.0)]),
        lambda: ChangingLimit(FixedWindow(1, 1.0), [(-1.0, 2.0)]),
    ):
        with pytest.raises(ValueError, match="must be"):
            build()


# --- properties over any arrival sequence ----------------------------------------------------

# Times on a 1/8 s grid keep the arithmetic exact enough that no arrival sits on a boundary.
gaps = st.lists(st.integers(0, 24).map(lambda k: k / 8), min_size=1, max_size=60)
windows = st.sampled_from([1.0, 2.5, 10.0])
limits = st.integers(1, 6)
PROPERTY = settings(max_examples=120, deadline=None)


def arrivals(steps: Sequence[float], start: float = 1000.0) -> list[float]:
    """Cumulative arrival times from gaps."""
    times, now = [], start
    for gap in steps:
        now += gap
        times.append(now)
    return times


def build(kind: LimiterKind, limit: int, window: float) -> Limiter:
    """One limiter of each kind from the config fields, as the simulator builds it.

    The block is shorter than the window, so a block can end inside the window it began in.
    """
    config = SimulatorConfig(
        limiter=kind, rate_limit=limit, rate_window=window, block_period=window / 2
    )
    return make_limiter(config)


def run(limiter: Limiter, times: Sequence[float]) -> list[tuple[float, Verdict, Limiter]]:
    """Admit each arrival; keep a copy of the limiter as it was right after each decision."""
    out = []
    for now in times:
        verdict = limiter.admit(now)
        out.append((now, verdict, copy.deepcopy(limiter)))
    return out


def admitted_times(trace: Sequence[tuple[float, Verdict, Limiter]]) -> list[float]:
    return [now for now, verdict, _ in trace if verdict.admitted]


TIMED_KINDS = [kind for kind in LIMITER_KINDS if kind != "concurrency"]


@pytest.mark.parametrize("kind", TIMED_KINDS)
@PROPERTY
@given(steps=gaps, limit=limits, window=windows)
def test_retry_after_is_exact(
    kind: LimiterKind, steps: list[float], limit: int, window: float
) -> None:
    """After a refusal nothing is admitted before ``retry_after``, and a request then is."""
    trace = run(build(kind, limit, window), arrivals(steps))
    for index, (now, verdict, after) in enumerate(trace):
        assert min(verdict.remaining, verdict.reset, verdict.delay) >= 0
        if verdict.admitted:
            assert verdict.retry_after == 0.0
            continue
        assert verdict.retry_after > 0
        assert verdict.reset >= verdict.retry_after - SLACK
        due = now + verdict.retry_after
        assert after.admit(due).admitted, (now, verdict)
        early = [t for t in admitted_times(trace[index:]) if t < due - 10 * SLACK]
        assert early == [], (now, verdict)


@PROPERTY
@given(steps=gaps, limit=limits, window=windows)
def test_fixed_window_never_exceeds_its_limit_per_window(
    steps: list[float], limit: int, window: float
) -> None:
    """Per window at most ``limit``; any window-long span at most twice that (the edge burst)."""
    for kind in ("fixed-window", "block"):
        trace = run(build(kind, limit, window), arrivals(steps))
        per_window: dict[float, int] = {}
        for now, verdict, _ in trace:
            if verdict.admitted:
                end = round(now + verdict.reset, 6)
                per_window[end] = per_window.get(end, 0) + 1
        assert max(per_window.values(), default=0) <= limit
        admitted = admitted_times(trace)
        for t in admitted:
            assert sum(t <= u < t + window for u in admitted) <= 2 * limit


@PROPERTY
@given(steps=gaps, limit=limits, window=windows)
def test_sliding_log_never_exceeds_its_limit_in_any_window(
    steps: list[float], limit: int, window: float
) -> None:
    """No span ``(t - window, t]`` ever holds more than ``limit`` admissions."""
    admitted = admitted_times(run(SlidingWindowLog(limit, window), arrivals(steps)))
    for t in admitted:
        assert sum(t - window < u <= t for u in admitted) <= limit


@PROPERTY
@given(steps=gaps, limit=limits, window=windows)
def test_sliding_counter_bounds_each_window_and_any_span(
    steps: list[float], limit: int, window: float
) -> None:
    """Each window from the first request holds at most ``limit``; any span at most twice."""
    times = arrivals(steps)
    admitted = admitted_times(run(SlidingWindowCounter(limit, window), times))
    per_window: dict[int, int] = {}
    for t in admitted:
        index = math.floor((t - times[0]) / window)
        per_window[index] = per_window.get(index, 0) + 1
    assert max(per_window.values(), default=0) <= limit
    for t in admitted:
        assert sum(t <= u < t + window for u in admitted) <= 2 * limit


@PROPERTY
@given(steps=gaps, burst=limits, rate=st.sampled_from([0.5, 1.0, 3.0, 8.0]))
def test_token_bucket_admits_at_most_burst_plus_rate_times_span(
    steps: list[float], burst: int, rate: float
) -> None:
    """Between any two admissions at most ``burst + rate * span`` requests got through."""
    admitted = admitted_times(run(TokenBucket(rate, burst), arrivals(steps)))
    for i, first in enumerate(admitted):
        for j in range(i, len(admitted)):
            assert j - i + 1 <= burst + (admitted[j] - first) * rate + SLACK


@PROPERTY
@given(steps=gaps, burst=limits, rate=st.sampled_from([0.5, 1.0, 3.0, 8.0]))
def test_leaky_bucket_admits_as_the_token_bucket_and_answers_at_its_rate(
    steps: list[float], burst: int, rate: float
) -> None:
    """The leaky bucket admits the token bucket's requests, answered in order ``1/rate`` apart."""
    times = arrivals(steps)
    leaky = run(LeakyBucket(rate, burst), times)
    tokens = run(TokenBucket(rate, burst), times)
    assert [v.admitted for _, v, _ in leaky] == [v.admitted for _, v, _ in tokens]
    for (_, mine, _), (_, theirs, _) in zip(leaky, tokens, strict=True):
        assert mine.retry_after == pytest.approx(theirs.retry_after, abs=SLACK)
    answers = [now + v.delay for now, v, _ in leaky if v.admitted]
    for before, after in itertools.pairwise(answers):
        assert after - before >= 1 / rate - SLACK
    assert all(v.delay <= (burst - 1) / rate + SLACK for _, v, _ in leaky)


@PROPERTY
@given(ops=st.lists(st.booleans(), max_size=80), limit=limits)
def test_concurrency_never_exceeds_its_limit_in_flight(ops: list[bool], limit: int) -> None:
    """Over any mix of arrivals and answers, admitted-and-unreleased never exceeds the limit."""
    limiter = ConcurrencyLimit(limit)
    in_flight = 0
    for arrive in ops:
        if arrive:
            verdict = limiter.admit(0.0)
            # Refused exactly when every slot is taken.
            assert verdict.admitted == (in_flight < limit)
            in_flight += verdict.admitted
            assert verdict.remaining == limit - in_flight
        elif in_flight:
            limiter.release(0.0)
            in_flight -= 1
        assert in_flight <= limit


@PROPERTY
@given(
    steps=gaps,
    limit=limits,
    window=windows,
    schedule=st.lists(
        st.tuples(st.integers(0, 40).map(float), st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0])),
        max_size=4,
    ),
)
def test_changing_limit_never_exceeds_the_limit_in_force(
    steps: list[float], limit: int, window: float, schedule: list[tuple[float, float]]
) -> None:
    """Over a sliding log, each admission leaves at most the limit then stated in its window."""
    trace = run(ChangingLimit(SlidingWindowLog(limit, window), schedule), arrivals(steps))
    admitted = admitted_times(trace)
    for now, verdict, _ in trace:
        if verdict.admitted:
            assert sum(now - window < u <= now for u in admitted) <= verdict.limit


@pytest.mark.parametrize("kind", TIMED_KINDS)
@PROPERTY
@given(
    steps=gaps,
    limit=limits,
    window=windows,
    raises=st.lists(
        st.tuples(st.integers(0, 40).map(float), st.sampled_from([1.5, 2.0, 3.0])), max_size=3
    ),
)
def test_changing_limit_keeps_retry_after_when_limits_only_grow(
    kind: LimiterKind,
    steps: list[float],
    limit: int,
    window: float,
    raises: list[tuple[float, float]],
) -> None:
    """With a non-decreasing schedule a request sent at ``now + retry_after`` is admitted."""
    factors = sorted(factor for _, factor in raises)
    schedule = [(at, factors[i]) for i, (at, _) in enumerate(sorted(raises))]
    inner = build(kind, limit, window)
    assert not isinstance(inner, ChangingLimit)
    limiter = ChangingLimit(inner, schedule)  # type: ignore[arg-type]
    for now, verdict, after in run(limiter, arrivals(steps)):
        if not verdict.admitted:
            assert after.admit(now + verdict.retry_after).admitted, (now, verdict)


# --- today's fixed window, byte for byte -------------------------------------------------------


class OldWindow:
    """The simulator's fixed window before the zoo (``_SimulatorState._admit``), verbatim."""

    def __init__(self) -> None:
        self.window_start: float | None = None
        self.window_count = 0

    @staticmethod
    def _format_seconds(value: float, fractional: bool) -> str:
        if fractional:
            return f"{max(value, 0.001):.3f}".rstrip("0").rstrip(".")
        return str(max(1, math.ceil(round(value, 6))))

    def admit(
        self, cfg: SimulatorConfig, now: float, headers: dict[str, str], send_retry_after: bool
    ) -> bool:
        limit = cfg.rate_limit
        assert limit is not None
        start = self.window_start
        elapsed = 0.0 if start is None else now - start
        if start is None or elapsed >= cfg.rate_window or elapsed < 0:
            self.window_start = now
            self.window_count = 0
            elapsed = 0.0
        admitted = self.window_count < limit
        if admitted:
            self.window_count += 1
        reset = self._format_seconds(cfg.rate_window - elapsed, cfg.fractional_reset)
        if cfg.rate_limit_headers:
            headers["x-ratelimit-limit"] = str(limit)
            headers["x-ratelimit-remaining"] = str(limit - self.window_count)
            headers["x-ratelimit-reset"] = reset
        if not admitted and send_retry_after:
            headers["Retry-After"] = reset
        return admitted


@PROPERTY
@given(
    steps=st.lists(st.integers(-16, 40).map(lambda k: k / 8), min_size=1, max_size=60),
    limit=limits,
    window=st.sampled_from([0.75, 1.0, 2.5, 10.0]),
    fractional=st.booleans(),
    with_headers=st.booleans(),
    send_retry_after=st.booleans(),
)
def test_default_gate_matches_the_old_fixed_window_header_for_header(
    steps: list[float],
    limit: int,
    window: float,
    fractional: bool,
    with_headers: bool,
    send_retry_after: bool,
) -> None:
    """With the default limiter and dialect, every decision and header equals the old code's."""
    cfg = SimulatorConfig(
        rate_limit=limit,
        rate_window=window,
        fractional_reset=fractional,
        rate_limit_headers=with_headers,
    )
    gate, old = RateGate(cfg), OldWindow()
    for now in arrivals(steps):
        expected: dict[str, str] = {}
        admitted = old.admit(cfg, now, expected, send_retry_after)
        answer = gate.check(now, WALL, send_retry_after)
        gate.done(now)
        assert answer.admitted == admitted
        assert list(answer.headers.items()) == list(expected.items())


# --- header dialects ---------------------------------------------------------------------------


def render(
    dialect: RateLimitDialect,
    verdict: Verdict,
    *,
    retry_after: bool = True,
    fractional: bool = False,
    retry_after_date: bool = False,
) -> dict[str, str]:
    """``render_headers`` at the fixed wall time ``WALL``."""
    return render_headers(
        dialect,
        verdict,
        wall_now=WALL,
        fractional=fractional,
        retry_after=retry_after,
        retry_after_date=retry_after_date,
    )


ADMITTED = Verdict(admitted=True, limit=20, remaining=19, reset=0.4, retry_after=0.0, window=1.0)
REFUSED = Verdict(admitted=False, limit=20, remaining=0, reset=2.3, retry_after=2.3, window=2.5)


@pytest.mark.parametrize(
    ("dialect", "admitted", "refused"),
    [
        ("none", {}, {}),
        (
            "x-ratelimit",
            {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "19", "x-ratelimit-reset": "1"},
            {"x-ratelimit-limit": "20", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "3"},
        ),
        (
            "x-ratelimit-epoch",
            {
                "x-ratelimit-limit": "20",
                "x-ratelimit-remaining": "19",
                "x-ratelimit-reset": "1700000001",
            },
            {
                "x-ratelimit-limit": "20",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": "1700000003",
            },
        ),
        (
            "draft6",
            {
                "RateLimit-Limit": "20",
                "RateLimit-Remaining": "19",
                "RateLimit-Reset": "1",
                "RateLimit-Policy": "20;w=1",
            },
            {
                "RateLimit-Limit": "20",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": "3",
                "RateLimit-Policy": "20;w=2.5",
            },
        ),
        (
            "draft7",
            {"RateLimit": "limit=20, remaining=19, reset=1", "RateLimit-Policy": "20;w=1"},
            {"RateLimit": "limit=20, remaining=0, reset=3", "RateLimit-Policy": "20;w=2.5"},
        ),
        (
            "draft8",
            {"RateLimit": '"default";r=19;t=1', "RateLimit-Policy": '"default";q=20;w=1'},
            {"RateLimit": '"default";r=0;t=3', "RateLimit-Policy": '"default";q=20;w=2.5'},
        ),
    ],
)
def test_each_dialect_renders_its_exact_header_set(
    dialect: RateLimitDialect, admitted: dict[str, str], refused: dict[str, str]
) -> None:
    """Each dialect sends exactly its headers, plus Retry-After in seconds on a refusal only."""
    assert render(dialect, ADMITTED, retry_after=True) == admitted
    assert render(dialect, REFUSED, retry_after=False) == refused
    assert render(dialect, REFUSED, retry_after=True) == {**refused, "Retry-After": "3"}


def test_fractional_seconds_and_http_date_retry_after() -> None:
    """Fractional mode sends millisecond decimals; the date form rounds the moment up."""
    assert render("draft8", REFUSED, fractional=True) == {
        "RateLimit": '"default";r=0;t=2.3',
        "RateLimit-Policy": '"default";q=20;w=2.5',
        "Retry-After": "2.3",
    }
    # 22:13:20.25 + 2.3 s = 22:13:22.55, rounded up so a client is never early.
    dated = render("x-ratelimit", REFUSED, retry_after_date=True)
    assert dated["Retry-After"] == "Tue, 14 Nov 2023 22:13:23 GMT"
    assert "Retry-After" not in render("draft7", ADMITTED, retry_after_date=True)


def test_an_unknown_dialect_is_an_error() -> None:
    """A dialect name outside the known set raises instead of sending nothing silently."""
    with pytest.raises(ValueError, match="draft99"):
        render("draft99", ADMITTED)  # type: ignore[arg-type]


# --- the rate gate, without HTTP ---------------------------------------------------------------

JSON_429 = b'{"statusCode":429,"message":"Too Many Requests","error":"Too Many Requests"}'
GATEWAY_429 = (
    b"<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
    b"<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def test_gate_without_a_limit_admits_everything_silently() -> None:
    """With ``rate_limit=None`` the gate admits every request and adds no header."""
    gate = RateGate(SimulatorConfig())
    answers = [gate.check(0.0, WALL, True) for _ in range(100)]
    assert all(a == GateAnswer(admitted=True, status=200, delay=0.0, headers={}) for a in answers)
    assert gate.limiter is None


@pytest.mark.parametrize(
    ("body", "payload", "content_type", "server"),
    [
        ("json", JSON_429, "application/json", None),
        ("text", b"Too Many Requests", "text/plain", None),
        ("html", GATEWAY_429, "text/html", "nginx"),
        ("empty", None, None, "nginx"),
    ],
)
def test_gate_refusal_bodies(
    body: RateLimitBody, payload: bytes | None, content_type: str | None, server: str | None
) -> None:
    """A refusal is a 429 with the configured body; gateway-style ones name nginx."""
    gate = RateGate(SimulatorConfig(rate_limit=1, rate_limit_body=body))
    assert gate.check(0.0, WALL, True).admitted
    answer = gate.check(0.0, WALL, True)
    assert (answer.admitted, answer.status) == (False, 429)
    assert (answer.body, answer.content_type) == (payload, content_type)
    assert answer.headers.get("Server") == server
    assert answer.headers["Retry-After"] == "1"


def test_gate_rebuilds_its_limiter_only_when_a_limiter_field_changes() -> None:
    """Changing an unrelated field keeps the counts; changing the limit starts a new limiter."""
    cfg = SimulatorConfig(rate_limit=2, rate_window=60.0)
    gate = RateGate(cfg)
    assert [gate.check(0.0, WALL, True).admitted for _ in range(3)] == [True, True, False]
    cfg.error_rate = 0.5
    assert not gate.check(1.0, WALL, True).admitted
    cfg.rate_limit = 3
    answer = gate.check(2.0, WALL, True)
    assert answer.admitted
    assert answer.headers["x-ratelimit-limit"] == "3"
    cfg.limiter = "token-bucket"
    assert isinstance(gate.check(3.0, WALL, True), GateAnswer)
    assert isinstance(gate.limiter, TokenBucket)
    gate.reset()
    assert gate.limiter is None


def test_gate_done_after_a_refusal_frees_no_concurrency_slot() -> None:
    """``done`` is called for every check; a refusal's ``done`` never frees an admitted slot."""
    gate = RateGate(SimulatorConfig(limiter="concurrency", rate_limit=1))
    assert gate.check(0.0, WALL, True).admitted
    assert not gate.check(0.0, WALL, True).admitted
    gate.done(0.0)
    assert not gate.check(0.0, WALL, True).admitted
    gate.done(0.0)
    gate.done(0.0)
    assert gate.check(0.0, WALL, True).admitted


def test_gate_carries_requests_in_flight_into_a_rebuilt_concurrency_limit() -> None:
    """A concurrency limit changed mid-run still counts the requests already in flight."""
    cfg = SimulatorConfig(limiter="concurrency", rate_limit=2)
    gate = RateGate(cfg)
    assert gate.check(0.0, WALL, True).admitted
    assert gate.check(0.0, WALL, True).admitted
    cfg.rate_limit = 3
    assert [gate.check(0.0, WALL, True).admitted for _ in range(2)] == [True, False]


def test_make_limiter_maps_config_fields_onto_limiters() -> None:
    """Buckets take rate ``rate_limit / rate_window`` and ``burst``; a schedule wraps any kind."""
    bucket = make_limiter(
        SimulatorConfig(limiter="leaky-bucket", rate_limit=30, rate_window=60.0, burst=4)
    )
    assert isinstance(bucket, LeakyBucket)
    assert (bucket.rate, bucket.burst) == (0.5, 4)
    block = make_limiter(SimulatorConfig(limiter="block", rate_limit=5, block_period=7.0))
    assert isinstance(block, BlockPenalty)
    assert block.block == 7.0
    changing = make_limiter(
        SimulatorConfig(limiter="sliding-log", rate_limit=5, limit_schedule=((3.0, 0.5),))
    )
    assert isinstance(changing, ChangingLimit)
    assert isinstance(changing.inner, SlidingWindowLog)
    with pytest.raises(ValueError, match="rate_limit"):
        make_limiter(SimulatorConfig())


def test_config_rejects_bad_limiter_fields() -> None:
    """Unknown kinds and dialects, a zero burst or block and a bad schedule are ValueErrors."""
    for bad in (
        {"limiter": "bogus"},
        {"rate_limit_dialect": "draft99"},
        {"rate_limit_body": "xml"},
        {"burst": 0},
        {"block_period": 0.0},
        {"limit_schedule": ((1.0, 0.0),)},
        {"limit_schedule": ((-1.0, 2.0),)},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SimulatorConfig(**bad)
    assert SimulatorConfig(limit_schedule=((9, 2), (1, 0.5))).limit_schedule == (
        (1.0, 0.5),
        (9.0, 2.0),
    )


def test_limiter_flags_map_onto_config_fields() -> None:
    """``--limiter``, ``--burst``, ``--limit-change`` and the dialect flags set their fields."""
    ns = build_parser().parse_args(
        shlex.split(
            "--rate-limit 20 --limiter leaky-bucket --burst 5 --block-period 3 "
            "--limit-change 10:0.5 --limit-change 5:2 --rate-limit-dialect draft8 "
            "--retry-after-date --rate-limit-body text"
        )
    )
    config = config_from_args(ns)
    assert (config.limiter, config.burst, config.block_period) == ("leaky-bucket", 5, 3.0)
    assert config.limit_schedule == ((5.0, 2.0), (10.0, 0.5))
    assert (config.rate_limit_dialect, config.retry_after_date) == ("draft8", True)
    assert config.rate_limit_body == "text"
    for bad in (["--limit-change", "10"], ["--limit-change", "1:0"], ["--limiter", "nope"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


# --- over loopback -------------------------------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client."""
    async with aiohttp.ClientSession() as s:
        yield s


# kind -> (dialect, a header that dialect always sends, window); the leaky bucket's short
# window makes its second answer wait 10 ms rather than 5 s.
LOOPBACK: dict[LimiterKind, tuple[RateLimitDialect, str, float]] = {
    "fixed-window": ("x-ratelimit", "x-ratelimit-reset", 10.0),
    "sliding-log": ("draft6", "RateLimit-Reset", 10.0),
    "sliding-counter": ("draft7", "RateLimit", 10.0),
    "token-bucket": ("draft8", "RateLimit-Policy", 10.0),
    "leaky-bucket": ("x-ratelimit-epoch", "x-ratelimit-reset", 0.02),
    "block": ("draft8", "RateLimit", 10.0),
}


@pytest.mark.parametrize("kind", list(LOOPBACK))
async def test_each_limiter_refuses_over_http_in_its_dialect(
    session: aiohttp.ClientSession, kind: LimiterKind
) -> None:
    """Past its quota each limiter answers 429 with its dialect's headers and Retry-After."""
    dialect, header, window = LOOPBACK[kind]
    async with Simulator(
        limiter=kind,
        rate_limit=2,
        rate_window=window,
        burst=2,
        rate_limit_dialect=dialect,
        clock=FakeClock(),
        wall_clock=lambda: WALL,
    ) as sim:
        statuses = []
        for _ in range(3):
            async with session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp:
                await resp.read()
                statuses.append(resp.status)
                assert header in resp.headers
                assert ("Retry-After" in resp.headers) == (resp.status == 429)
        assert statuses == [200, 200, 429]
        assert sim.stats.rate_limited == 1


async def test_concurrency_limit_refuses_while_a_request_is_in_flight(
    session: aiohttp.ClientSession,
) -> None:
    """A second request during a slow answer gets 429; once the answer ends, one gets 200."""
    async with Simulator(
        limiter="concurrency",
        rate_limit=1,
        slow_body_rate=1.0,
        slow_body_delay=0.05,
        rate_limit_body="text",
    ) as sim:
        url = lead_url(sim, "lead_1")
        async with session.get(url, headers=AUTH) as slow:
            assert slow.status == 200
            async with session.get(url, headers=AUTH) as refused:
                assert refused.status == 429
                assert await refused.text() == "Too Many Requests"
                assert refused.content_type == "text/plain"
                assert refused.headers["x-ratelimit-remaining"] == "0"
            await slow.read()
        sim.config.slow_body_rate = 0.0
        # The client can hold the whole body a moment before the handler has returned.
        for _ in range(100):
            if sim.stats.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        async with session.get(url, headers=AUTH) as resp:
            assert resp.status == 200


async def test_leaky_bucket_holds_answers_over_http(session: aiohttp.ClientSession) -> None:
    """Requests arriving together are answered ``1/rate`` apart, and the overflow is refused."""
    async with Simulator(
        limiter="leaky-bucket", rate_limit=10, rate_window=1.0, burst=2, clock=FakeClock()
    ) as sim:
        url = lead_url(sim, "lead_1")

        async def timed() -> tuple[int, float]:
            async with session.get(url, headers=AUTH) as resp:
                await resp.read()
                return resp.status, time.monotonic() - started

        started = time.monotonic()
        results = sorted(await asyncio.gather(timed(), timed(), timed()))
    assert [status for status, _ in results] == [200, 200, 429]
    # The second admitted request waited for the first to drain: 1 / rate = 0.1 s.
    assert results[1][1] >= 0.095


async def test_http_date_retry_after_and_epoch_reset_use_the_wall_clock(
    session: aiohttp.ClientSession,
) -> None:
    """An injected wall clock drives both the epoch reset and the HTTP-date Retry-After."""
    async with Simulator(
        rate_limit=1,
        rate_window=10.0,
        rate_limit_dialect="x-ratelimit-epoch",
        retry_after_date=True,
        clock=FakeClock(),
        wall_clock=lambda: WALL,
    ) as sim:
        async with session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp:
            assert resp.headers["x-ratelimit-reset"] == "1700000011"
        async with session.get(lead_url(sim, "lead_1"), headers=AUTH) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "Tue, 14 Nov 2023 22:13:31 GMT"


async def test_limit_change_applies_over_http(session: aiohttp.ClientSession) -> None:
    """A scheduled halving lowers the stated limit and refuses at the new one."""
    clock = FakeClock()
    async with Simulator(
        limiter="sliding-log",
        rate_limit=4,
        rate_window=10.0,
        limit_schedule=((5.0, 0.5),),
        clock=clock,
    ) as sim:
        url = lead_url(sim, "lead_1")
        async with session.get(url, headers=AUTH) as resp:
            assert resp.headers["x-ratelimit-limit"] == "4"
        clock.now += 5
        statuses = []
        for _ in range(2):
            async with session.get(url, headers=AUTH) as resp:
                statuses.append(resp.status)
                assert resp.headers["x-ratelimit-limit"] == "2"
        assert statuses == [200, 429]
