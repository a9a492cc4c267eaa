"""The whole client behind every simulator limiter and header dialect, in virtual time.

Each row fetches 20 s of the limit's worth of ids through ``AsyncDialNexa`` told nothing about
the limit, behind the simulator's own ``RateGate`` (see ``tests/virtual_gateway.py``), so a
row costs a fraction of a second however long it runs in virtual time. The floors are what
the rate control achieves today less a margin for change, per limiter; the issue's targets and
the loopback figures live in ``benchmarks/`` (scenario ``z``), not here.
"""

from __future__ import annotations

import pytest

from tests.virtual_gateway import DIALECTS, LIMITERS, Row, matrix, run_row

# limiter: (goodput floor with bare 429s, with any hint, 429 share cap with bare, with a hint)
FLOORS: dict[str, tuple[float, float, float, float]] = {
    "fixed 200/1s": (0.85, 0.85, 0.05, 0.05),
    "fixed 1500/10s": (0.55, 0.80, 0.05, 0.05),
    "sliding-log 200/1s": (0.85, 0.85, 0.06, 0.05),
    "sliding-log 2000/10s": (0.55, 0.80, 0.06, 0.05),
    "sliding-counter 200/1s": (0.60, 0.70, 0.06, 0.06),
    "token-bucket 200/s b1": (0.70, 0.70, 0.05, 0.05),
    "token-bucket 200/s b20": (0.85, 0.85, 0.05, 0.05),
    "leaky-bucket 200/s b50": (0.75, 0.80, 0.05, 0.05),
    "concurrency 16, 20 ms": (0.55, 0.75, 0.05, 0.05),
    "block 200/1s, 2 s": (0.35, 0.35, 0.06, 0.15),
}


def test_every_limiter_has_a_floor() -> None:
    """The floors cover exactly the limiters the matrix runs."""
    assert set(FLOORS) == set(LIMITERS)


@pytest.mark.parametrize("row", matrix(), ids=lambda row: row.name)
def test_every_id_comes_back_behind_every_limiter_at_its_floor(row: Row) -> None:
    """No id is lost, goodput stays at the limiter's floor, 429s under its cap."""
    limiter = row.name.split(" | ")[0]
    bare_floor, hinted_floor, bare_cap, hinted_cap = FLOORS[limiter]
    result = row.run()
    assert result.ok == result.n
    assert result.failed == 0
    assert result.goodput >= (hinted_floor if row.hinted else bare_floor), result.goodput
    assert result.share_429 <= (hinted_cap if row.hinted else bare_cap), result.share_429


@pytest.mark.parametrize(
    ("limiter", "extra"),
    [("fixed-window", {}), ("token-bucket", {"burst": 20}), ("sliding-log", {})],
)
@pytest.mark.parametrize("dialect", ["bare", "x-ratelimit"])
def test_a_limit_that_halves_is_followed_within_two_periods(
    limiter: str, extra: dict[str, int], dialect: str
) -> None:
    """200/s halved 10 s into the run: from two periods later on, >= 90% of the new limit."""
    options = {"limiter": limiter, "rate_limit": 200, "limit_schedule": ((10.0, 0.5),), **extra}
    row = Row(
        name="halving",
        options={**options, **DIALECTS[dialect][0]},
        rate=150.0,
        hinted=DIALECTS[dialect][1],
        allowance=200,
    )
    result = row.run(seconds=20.0)
    assert result.ok == result.n
    end = min(result.elapsed, 20.0)
    assert result.goodput_between(12.0, end, 100.0) >= 0.90


def test_a_limit_that_doubles_is_found() -> None:
    """A token bucket whose rate doubles 5 s in: the client ends up sending above the old rate."""
    config = Row(
        name="doubling",
        options={
            "limiter": "token-bucket",
            "rate_limit": 100,
            "burst": 10,
            "limit_schedule": ((5.0, 2.0),),
            **DIALECTS["bare"][0],
        },
        rate=150.0,
        hinted=False,
    ).config()
    result = run_row(config, n=3000, rate=200.0)
    assert result.ok == result.n
    assert result.goodput_between(15.0, min(result.elapsed, 20.0), 100.0) > 1.3
