"""Scenario (w)'s arithmetic on made-up fleets: goodput over the fleet's span, what it lost."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import _workers


def _worker(start: float, end: float, ok: int, **extra: Any) -> dict[str, Any]:
    return {
        "started": start,
        "ended": end,
        "ok": ok,
        "failed": 0,
        "missing": 0,
        "mismatched": 0,
        "requests": ok + 10,
        "rate_limited": 10,
        "store_failures": 0,
        "store_outages": 0,
        "store_syncs": ok,
        **extra,
    }


def test_goodput_counts_every_worker_over_the_fleets_whole_span() -> None:
    """Four workers from the first start to the last end: ok over B + L * span."""
    row = _workers.ROWS[0]  # a 500/s window: B = 500
    result = {
        "per_worker": 1000,
        "workers": [_worker(0.0, 7.0, 1000), _worker(0.5, 7.5, 1000)]
        + [_worker(0.2, 6.0, 1000) for _ in range(2)],
    }
    numbers = _workers.fleet_numbers(row, result)
    assert numbers["goodput"] == pytest.approx(4000 / (500 + 500 * 7.5))
    assert numbers["share_429"] == pytest.approx(40 / 4040)
    assert numbers["lost"] == 0
    assert numbers["finished"] == 4


def test_a_crashed_worker_loses_all_its_ids_and_flags_the_row() -> None:
    """A worker with no JSON line counts its every id lost; the shared row reports it."""
    row = _workers.ROWS[0]
    fleet = [_worker(0.0, 10.0, 1000) for _ in range(3)] + [{"crashed": True}]
    run = {"row": row.key, "store": "redis", "per_worker": 1000, "workers": fleet}
    summary = _workers.summarize({"per_worker": 1000, "runs": [run]})
    shared = summary["rows"][0]["stores"]["redis"]
    assert shared["lost"] == 1000
    assert "ids lost" in summary["rows"][0]["misses"]
    (target,) = [t for t in _workers.targets(summary) if row.key in t[0]]
    assert target[3] is False
