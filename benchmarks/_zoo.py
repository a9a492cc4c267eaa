"""The limiter zoo: one row per gateway limiter and header dialect, and how a row is judged.

A row is one simulator set-up: a limiter (``--limiter``), its limit, what its 429s say (a
header dialect, Retry-After or not, a body), and sometimes faults. Every contender runs every
row once, rows in turn, each run against a simulator started afresh for it, so every run
meets a new limiter.

Goodput compares the leads a run fetched with what a perfect client could have fetched in
the same time::

    capacity(t) = B + integral from 0 to t of L(s) ds
    goodput     = ok / capacity(elapsed)

``L(s)`` is the row's long-run rate at ``s`` seconds (requests per second: the limit over its
window, for a bucket its refill rate, for a concurrency limit the requests in flight over the
latency; a limit change multiplies it from then on). ``B`` is what the limiter admits at
once from a standing start: a whole window for the window limiters, the bucket's depth for a
token bucket, nothing for a queueing leaky bucket (it delays, so answers come at ``L``) or a
concurrency limit. A perfect client scores 100% for any count; ``ok / (elapsed * mean L)``
is also reported, as ``raw``.

A row with a limit change also reports the *tail*: goodput from ``TAIL_PERIODS`` windows
after the change to the end, over the new limit, ``done_in_tail / (B * f + L * f * tail)``.

This module is pure: rows, sizes, flags and the arithmetic of the summary. ``__main__`` runs
the rows and ``_report`` renders the table.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dialnexa_async.testing import LimiterKind, RateLimitBody, RateLimitDialect

__all__ = [
    "DEADLINE_FACTOR",
    "DEADLINE_MIN",
    "JUDGED",
    "PLAIN",
    "QUICK_ROWS",
    "ROWS",
    "ZOO_QUICK_SECONDS",
    "ZOO_SECONDS",
    "Plan",
    "ZooRow",
    "flags",
    "plan",
    "run_numbers",
    "summarize",
]

ZOO_SECONDS = 20.0
"""A perfect client needs this long for a row's leads in a default run: 20 s of the limit."""

DEADLINE_MIN = 20.0
"""Seconds a run gets at least whatever its length: a short (``--quick``, ``--scale``) run's
start-up costs weigh more than a long one's."""

DEADLINE_FACTOR = 2.0
"""A run is cut short after this many times a perfect client's time: the ids not done by then
are reported undone (a user's job has a deadline too), so one hopeless contender cannot hold
the zoo up for minutes."""

ZOO_QUICK_SECONDS = 3.0
"""The same with ``--quick``."""

CHANGE_AT_SHARE = 0.5
"""A limit change comes at this share of the row's nominal length (10 s of a 20 s row)."""

TAIL_PERIODS = 2
"""A limit change's tail starts this many windows after the change."""

TARGET_STATED = 0.95
"""The SDK's goodput target behind a limiter whose answers state the limit or the wait."""

TARGET_BARE = 0.90
"""The SDK's goodput target behind bare 429s: no rate-limit header, no Retry-After."""

MAX_429_STATED = 0.02
"""The largest share of the SDK's requests refused with 429 when the answers say enough."""

MAX_429_BARE = 0.05
"""The same behind bare 429s."""

MAX_GAP_TO_PLAIN = 0.02
"""How far (in goodput) the SDK may trail the plain retry loop before the row is flagged."""

MAX_PLAUSIBLE_GOODPUT = 1.10
"""Goodput above this means the limit did not hold: a defect of the row or the simulator."""

JUDGED = "sdk"
"""The contender the rows are judged and sorted on."""

PLAIN = "aiohttp"
"""The plain retry loop the judged contender is compared with."""

_WINDOWED = ("fixed-window", "sliding-log", "sliding-counter", "block")


@dataclasses.dataclass(frozen=True)
class ZooRow:
    """One limiter set-up.

    Args:
        key: short name on the command line (``--zoo-rows``) and in the results.
        limiter: the simulator's ``--limiter``.
        limit: ``--rate-limit``: requests per window, or in flight for ``concurrency``.
        window: ``--rate-window`` in seconds; a bucket refills ``limit / window`` a second.
        burst: ``--burst``, a bucket's depth; ``None`` leaves the simulator's default (limit).
        dialect: ``--rate-limit-dialect``: which rate-limit headers answers carry.
        retry_after: whether 429s carry ``Retry-After``.
        body: ``--rate-limit-body``.
        latency: ``--latency`` in seconds.
        block_period: ``--block-period`` of the ``block`` limiter.
        error_rate: ``--error-rate``: the share of answers replaced by an error status.
        error_statuses: ``--error-statuses`` those errors are drawn from.
        change_factor: the limit is multiplied by this ``CHANGE_AT_SHARE`` into the run.
        quick: whether the row is in the ``--quick`` subset.
    """

    key: str
    limiter: LimiterKind
    limit: int = 200
    window: float = 1.0
    burst: int | None = None
    dialect: RateLimitDialect = "none"
    retry_after: bool = False
    body: RateLimitBody = "json"
    latency: float = 0.0
    block_period: float | None = None
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = ()
    change_factor: float | None = None
    quick: bool = False

    @property
    def rate(self) -> float:
        """The long-run limit before any change, in requests per second."""
        if self.limiter == "concurrency":
            return self.limit / self.latency
        return self.limit / self.window

    @property
    def credit(self) -> float:
        """Requests the limiter admits at once from a standing start (``B``)."""
        if self.limiter in _WINDOWED:
            return float(self.limit)
        if self.limiter == "token-bucket":
            return float(self.limit if self.burst is None else self.burst)
        return 0.0

    @property
    def states(self) -> bool:
        """Whether 429s state the limit or the wait (a header dialect or Retry-After)."""
        return self.retry_after or self.dialect != "none"

    @property
    def target(self) -> float:
        """The goodput the SDK should reach here."""
        return TARGET_STATED if self.states else TARGET_BARE

    @property
    def max_429(self) -> float:
        """The 429 share the SDK should stay under here."""
        return MAX_429_STATED if self.states else MAX_429_BARE

    def describe_limiter(self) -> str:
        """The limiter in a few words, e.g. ``token-bucket 200/1s, burst 1``."""
        if self.limiter == "concurrency":
            return f"concurrency {self.limit} in flight"
        window = f"{self.window:g}s"
        text = f"{self.limiter} {self.limit}/{window}"
        if self.limiter == "token-bucket":
            text += f", burst {self.limit if self.burst is None else self.burst}"
        elif self.limiter == "leaky-bucket":
            text += f", queue {self.limit if self.burst is None else self.burst}"
        elif self.limiter == "block" and self.block_period is not None:
            text += f", block {self.block_period:g}s"
        return text

    def describe_answers(self) -> str:
        """What a 429 says, e.g. ``draft7 + Retry-After`` or ``bare (text)``."""
        if not self.states:
            return f"bare ({self.body})"
        if self.dialect == "none":
            return "Retry-After only"
        return self.dialect + (" + Retry-After" if self.retry_after else "")

    def describe_faults(self, change_at: float | None) -> str:
        """Latency, injected errors and limit changes, or ``-``."""
        parts = []
        if self.latency:
            parts.append(f"{self.latency * 1000:g} ms latency")
        if self.error_rate:
            statuses = "/".join(str(s) for s in self.error_statuses) or "5xx"
            parts.append(f"{self.error_rate:.0%} {statuses}")
        if self.change_factor is not None and change_at is not None:
            parts.append(f"limit x{self.change_factor:g} at {change_at:g}s")
        return ", ".join(parts) or "-"

    def server_flags(self, change_at: float | None) -> tuple[str, ...]:
        """The simulator's flags for this row (beyond host, port and ``--no-track-ids``)."""
        flags = [
            "--limiter",
            self.limiter,
            "--rate-limit",
            str(self.limit),
            "--rate-window",
            f"{self.window:g}",
            "--rate-limit-dialect",
            self.dialect,
            "--rate-limit-body",
            self.body,
        ]
        if self.burst is not None:
            flags += ["--burst", str(self.burst)]
        if self.dialect == "none":
            flags.append("--no-rate-limit-headers")
        if not self.retry_after:
            flags.append("--no-retry-after")
        if self.block_period is not None:
            flags += ["--block-period", f"{self.block_period:g}"]
        if self.latency:
            flags += ["--latency", f"{self.latency:g}"]
        if self.error_rate:
            flags += ["--error-rate", f"{self.error_rate:g}"]
            if self.error_statuses:
                flags += ["--error-statuses", ",".join(str(s) for s in self.error_statuses)]
        if self.change_factor is not None and change_at is not None:
            flags += ["--limit-change", f"{change_at:g}:{self.change_factor:g}"]
        return tuple(flags)

    def capacity(self, elapsed: float, change_at: float | None) -> float:
        """What a perfect client fetches in ``elapsed`` seconds: ``B`` + the integral of L."""
        rate = self.rate
        if self.change_factor is None or change_at is None or elapsed <= change_at:
            return self.credit + rate * elapsed
        return self.credit + rate * change_at + rate * self.change_factor * (elapsed - change_at)

    def tail_start(self, change_at: float | None) -> float | None:
        """When a limit change's tail starts: ``TAIL_PERIODS`` windows after the change."""
        if self.change_factor is None or change_at is None:
            return None
        return change_at + TAIL_PERIODS * self.window


def _row(key: str, limiter: LimiterKind, **fields: Any) -> ZooRow:
    return ZooRow(key, limiter, **fields)


ROWS: tuple[ZooRow, ...] = (
    # Strict spacing: nginx nodelay / GCRA with no burst, one request every 5 ms.
    _row("tb1-bare", "token-bucket", burst=1, quick=True),
    _row("tb1-xrl-ra", "token-bucket", burst=1, dialect="x-ratelimit", retry_after=True),
    # nginx limit_req without nodelay: up to 50 queued (answers delayed), then refused.
    _row("leaky50-ra", "leaky-bucket", burst=50, retry_after=True),
    _row("leaky50-draft6", "leaky-bucket", burst=50, dialect="draft6", quick=True),
    _row("tb20-bare-text", "token-bucket", burst=20, body="text"),
    _row("tb20-draft7-ra", "token-bucket", burst=20, dialect="draft7", retry_after=True),
    _row(
        "tb300-503-xrl",
        "token-bucket",
        limit=300,
        burst=30,
        dialect="x-ratelimit",
        error_rate=0.03,
        error_statuses=(503,),
        quick=True,
    ),
    _row("sc1-bare", "sliding-counter", body="html"),
    _row("sc1-draft8", "sliding-counter", dialect="draft8", quick=True),
    _row("sl1-xrl-ra", "sliding-log", dialect="x-ratelimit", retry_after=True),
    _row("sl10-1500-xrl", "sliding-log", limit=1_500, window=10.0, dialect="x-ratelimit"),
    _row("sl10-2000-ra", "sliding-log", limit=2_000, window=10.0, retry_after=True),
    _row("fw1-draft7-ra", "fixed-window", dialect="draft7", retry_after=True),
    _row("fw1-bare-text", "fixed-window", body="text", quick=True),
    _row("fw1-epoch-ra", "fixed-window", dialect="x-ratelimit-epoch", retry_after=True),
    _row(
        "fw10-draft8-ra",
        "fixed-window",
        limit=2_000,
        window=10.0,
        dialect="draft8",
        retry_after=True,
    ),
    # 16 in flight at 20 ms each: 800 requests per second at best.
    _row("conc16-bare", "concurrency", limit=16, latency=0.02, body="empty"),
    _row("conc16-ra", "concurrency", limit=16, latency=0.02, retry_after=True, quick=True),
    _row("block-ra", "block", block_period=2.0, retry_after=True, quick=True),
    _row("block-bare", "block", block_period=2.0, body="html"),
    _row("halve-xrl", "fixed-window", dialect="x-ratelimit", change_factor=0.5),
    _row("halve-bare", "fixed-window", change_factor=0.5, quick=True),
)
"""Every row of a full zoo run, in the order they run."""

QUICK_ROWS = tuple(row for row in ROWS if row.quick)
"""The rows of ``--quick``: one or two per limiter."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one row is run: its size and, for a limit change, when it comes.

    Args:
        row: the row.
        n: leads per run: what a perfect client fetches in ``seconds``.
        seconds: the row's nominal length.
        change_at: seconds after the first request at which the limit changes, if it does.
    """

    row: ZooRow
    n: int
    seconds: float
    change_at: float | None

    @property
    def server_flags(self) -> tuple[str, ...]:
        """The simulator's flags for this run."""
        return self.row.server_flags(self.change_at)

    @property
    def pace(self) -> float:
        """The long-run limit the paced contender is told: the row's rate at the start."""
        return self.row.rate

    def as_dict(self) -> dict[str, Any]:
        """The plan as the results JSON keeps it."""
        return {
            "n": self.n,
            "seconds": self.seconds,
            "change_at": self.change_at,
            "rate": self.row.rate,
            "credit": self.row.credit,
            "server_flags": list(self.server_flags),
        }


def plan(row: ZooRow, *, quick: bool, scale: float) -> Plan:
    """Size a row: ``n = capacity(seconds)`` for ``seconds`` of the limit, times ``scale``."""
    seconds = (ZOO_QUICK_SECONDS if quick else ZOO_SECONDS) * scale
    change_at = None if row.change_factor is None else round(seconds * CHANGE_AT_SHARE, 3)
    n = max(1, round(row.capacity(seconds, change_at)))
    return Plan(row, n, seconds, change_at)


# --- the summary -----------------------------------------------------------------------------


def _ok_at(timeline: Sequence[int], step: float, at: float) -> float:
    """Leads received ``at`` seconds in, from a run's ``ok_timeline``."""
    position = at / step
    index = math.floor(position)
    if index >= len(timeline) - 1:
        return float(timeline[-1])
    share = position - index
    return timeline[index] + share * (timeline[index + 1] - timeline[index])


def run_numbers(row: ZooRow, change_at: float | None, run: Mapping[str, Any]) -> dict[str, Any]:
    """Goodput, raw goodput, tail goodput, 429 share and losses of one run."""
    elapsed = run["elapsed"]
    ok = run["ok"]
    capacity = row.capacity(elapsed, change_at)
    paced = capacity - row.credit
    numbers: dict[str, Any] = {
        "goodput": ok / capacity if capacity > 0 else None,
        "goodput_raw": ok / paced if paced > 0 else None,
        "share_429": run["rate_limited"] / run["requests"] if run["requests"] else None,
        "lost": run.get("missing", 0) + run.get("mismatched", 0),
        "failed": run.get("failed", 0),
        "elapsed": elapsed,
        "requests": run["requests"],
        "tail_goodput": None,
    }
    start = row.tail_start(change_at)
    timeline = run.get("ok_timeline")
    if start is not None and row.change_factor is not None and timeline and elapsed > start:
        done = ok - _ok_at(timeline, run["timeline_step"], start)
        factor = row.change_factor
        numbers["tail_goodput"] = done / (
            row.credit * factor + row.rate * factor * (elapsed - start)
        )
    return numbers


def _median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _contender_summary(numbers: Sequence[Mapping[str, Any]], crashed: int) -> dict[str, Any]:
    return {
        "runs": len(numbers) + crashed,
        "crashed": crashed,
        "goodput": _median(n["goodput"] for n in numbers),
        "goodput_raw": _median(n["goodput_raw"] for n in numbers),
        "tail_goodput": _median(n["tail_goodput"] for n in numbers),
        "share_429": _median(n["share_429"] for n in numbers),
        "lost": sum(n["lost"] for n in numbers),
        "failed": sum(n["failed"] for n in numbers),
        "elapsed": _median(n["elapsed"] for n in numbers),
        "requests": _median(n["requests"] for n in numbers),
    }


def flags(row: ZooRow, contenders: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What is wrong with the judged contender's runs of ``row``; empty when all is well."""
    judged = contenders.get(JUDGED)
    if judged is None:
        return []
    found = []
    if judged["crashed"]:
        found.append("crashed")
    goodput = judged["goodput"]
    if goodput is None or goodput < row.target:
        found.append(f"goodput < {row.target:.0%}")
    elif goodput > MAX_PLAUSIBLE_GOODPUT:
        found.append("above the limit: did it bind?")
    plain = contenders.get(PLAIN, {}).get("goodput")
    if goodput is not None and plain is not None and plain - goodput > MAX_GAP_TO_PLAIN:
        found.append(f"{(plain - goodput) * 100:.1f} pts below {PLAIN}")
    share = judged["share_429"]
    if share is not None and share > row.max_429:
        found.append(f"429s > {row.max_429:.0%}")
    if judged["lost"] or judged["failed"]:
        found.append("ids lost" if judged["lost"] else "ids failed")
    return found


def summarize(
    plans: Mapping[str, Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]],
    rows: Sequence[ZooRow] = ROWS,
) -> dict[str, Any]:
    """Per row and contender, the medians of ``run_numbers``; rows worst first for the SDK.

    A row's ``margin`` is the judged contender's goodput minus its target; rows sort by it,
    lowest first, with a row whose judged contender has no goodput (crashed, not run) first.

    Args:
        plans: ``Plan.as_dict()`` of each row run, by key.
        runs: every run's result, each with its ``row`` key.
        rows: the row table the keys refer to.
    """
    by_key = {row.key: row for row in rows}
    table = []
    for key, planned in plans.items():
        row = by_key[key]
        change_at = planned.get("change_at")
        mine = [run for run in runs if run.get("row") == key]
        names = list(dict.fromkeys(run["contender"] for run in mine))
        contenders = {}
        for name in names:
            theirs = [run for run in mine if run["contender"] == name]
            good = [run_numbers(row, change_at, run) for run in theirs if not run.get("crashed")]
            contenders[name] = _contender_summary(good, len(theirs) - len(good))
        judged = contenders.get(JUDGED, {}).get("goodput")
        table.append(
            {
                "row": key,
                "limiter": row.describe_limiter(),
                "answers": row.describe_answers(),
                "faults": row.describe_faults(change_at),
                "states": row.states,
                "target": row.target,
                "max_429": row.max_429,
                "rate": row.rate,
                "n": planned["n"],
                "change_at": change_at,
                "margin": None if judged is None else judged - row.target,
                "contenders": contenders,
                "flags": flags(row, contenders),
            }
        )
    table.sort(key=lambda entry: -math.inf if entry["margin"] is None else entry["margin"])
    flagged = sum(1 for entry in table if entry["flags"])
    return {"rows": table, "flagged": flagged, "judged": JUDGED, "plain": PLAIN}
