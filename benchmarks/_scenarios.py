"""The scenarios: what the server does, how many leads, which contenders, and the targets."""

from __future__ import annotations

import dataclasses
from typing import Literal

__all__ = [
    "API_KEY",
    "BASELINE",
    "CONTENDERS",
    "MAX_TRIES",
    "MEMORY_SIZES",
    "MEMORY_SIZES_MILLION",
    "MEMORY_SIZES_QUICK",
    "SCENARIOS",
    "UVLOOP_CONTENDERS",
    "ZOO_CONTENDERS",
    "Scenario",
    "lead_id",
]

API_KEY = "sk_test"
"""The simulator's default key; every contender sends it."""

BASELINE = "aiohttp"
"""Ratios are taken against this contender's median."""

CONTENDERS = ("sdk", "sdk-iter", "aiohttp", "httpx", "quick-sdk")
"""Every contender, in the order rounds run them and tables list them."""

MAX_TRIES = 10
"""Attempts per lead every contender gets in the rate-limit scenarios (the SDK: 9 retries)."""

MEMORY_SIZES = (10_000, 100_000)
"""Ids ``iter_leads`` walks in the memory scenario of a default run."""

MEMORY_SIZES_QUICK = (5_000, 20_000)
"""The same for ``--quick``."""

MEMORY_SIZES_MILLION = (10_000, 100_000, 1_000_000)
"""The same with ``--with-million``."""

UVLOOP_CONTENDERS = ("sdk@uvloop", "aiohttp@uvloop")
"""The same two clients under ``uvloop.run``: scenario (a)'s second event loop."""

ZOO_CONTENDERS = ("sdk", "aiohttp", "paced")
"""Who runs the limiter zoo: the SDK told nothing, the plain retry loop, and a paced loop."""

Kind = Literal["throughput", "ratelimit", "memory", "zoo", "workers"]


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One server set-up and the runs made against it.

    Args:
        name: short key used on the command line and in the results.
        title: one line for tables and the chart.
        kind: ``throughput`` (leads/s), ``ratelimit`` (goodput and 429s), ``memory`` (RSS),
            ``zoo`` (one run per row of ``_zoo.ZOO_ROWS``, each against a fresh simulator),
            ``workers`` (fleets of processes on one key, ``_workers``).
        n: leads per run in a default run (the zoo sizes each row itself).
        quick_n: leads per run with ``--quick``.
        concurrency: requests in flight per contender.
        server_flags: flags for ``python -m dialnexa_async.testing`` beyond port and ids.
        contenders: who runs here.
        max_rounds: caps ``--rounds`` for a scenario whose runs are long by nature.
        quick_max_rounds: the same cap with ``--quick``.
        rate_limit: the server's requests per window, for goodput.
        rate_window: the window length in seconds.
        caps: ``(contender, n, quick_n)`` for contenders too slow to run the full count in a
            reasonable time; leads/s is a rate, so a shorter run measures the same thing.
    """

    name: str
    title: str
    kind: Kind
    n: int
    quick_n: int
    concurrency: int = 64
    server_flags: tuple[str, ...] = ()
    contenders: tuple[str, ...] = CONTENDERS
    max_rounds: int | None = None
    quick_max_rounds: int | None = None
    rate_limit: int | None = None
    rate_window: float = 1.0
    caps: tuple[tuple[str, int, int], ...] = ()

    def n_for(self, contender: str, *, quick: bool) -> int:
        """Leads per run for ``contender``: a slow contender is capped so rounds stay short."""
        n = self.quick_n if quick else self.n
        for name, cap, quick_cap in self.caps:
            if name == contender:
                n = min(n, quick_cap if quick else cap)
        return n

    @property
    def retries(self) -> bool:
        """Whether the raw clients need their retry loop here."""
        return self.kind in ("ratelimit", "zoo")

    @property
    def pace(self) -> float | None:
        """The steady rate a paced contender is told here, in requests per second."""
        if self.rate_limit is None:
            return None
        return self.rate_limit / self.rate_window


_RATE = 300
# Twenty windows of the limit. Any client that learns the limit from 429s alone, with 64
# requests in flight, has all 64 refused when the first window fills, so the 429 share of a
# run falls with its length: 2.1% of 3,000 leads before any other 429.
_RATE_N = 20 * _RATE
_RATE_FLAGS = ("--rate-limit", str(_RATE), "--rate-window", "1")
_RATE_CONTENDERS = ("sdk", "aiohttp", "httpx", "quick-sdk")
# httpx runs at a few hundred leads/s here (its pool's cost grows with the connection count).
_HTTPX_CAP = (("httpx", 1_000, 300),)
_HTTPX_RATE_CAP = (("httpx", 1_500, 600),)


def _rate_scenario(name: str, title: str, *server_flags: str) -> Scenario:
    """A scenario behind the 300 req/s window; ``server_flags`` shape its 429s."""
    return Scenario(
        name=name,
        title=title,
        kind="ratelimit",
        n=_RATE_N,
        quick_n=600,
        server_flags=(*_RATE_FLAGS, *server_flags),
        contenders=_RATE_CONTENDERS,
        max_rounds=3,
        quick_max_rounds=1,
        rate_limit=_RATE,
        caps=_HTTPX_RATE_CAP,
    )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="a",
            title="(a) no added latency, c=64: client overhead",
            kind="throughput",
            n=20_000,
            quick_n=3_000,
            contenders=(*CONTENDERS, *UVLOOP_CONTENDERS),
            caps=_HTTPX_CAP,
        ),
        Scenario(
            name="b",
            title="(b) 20 ms server latency, c=64: latency-bound",
            kind="throughput",
            n=5_000,
            quick_n=1_500,
            server_flags=("--latency", "0.02"),
            caps=_HTTPX_CAP,
        ),
        _rate_scenario(
            "c-retry-after",
            "(c1) 300 req/s window, 429 + Retry-After + x-ratelimit-*",
        ),
        _rate_scenario(
            "c-bare",
            "(c2) 300 req/s window, bare 429: no Retry-After, no headers, HTML body",
            "--no-retry-after",
            "--no-rate-limit-headers",
            "--rate-limit-body",
            "html",
        ),
        Scenario(
            name="d",
            title="(d) iter_leads over many ids: peak RSS",
            kind="memory",
            n=MEMORY_SIZES[-1],
            quick_n=MEMORY_SIZES_QUICK[-1],
            contenders=("sdk-iter",),
            max_rounds=1,
        ),
        Scenario(
            name="w",
            title="(w) many workers: 4 processes on one key, rate control shared or not",
            kind="workers",
            n=0,
            quick_n=0,
            contenders=("sdk",),
            max_rounds=1,
            quick_max_rounds=1,
        ),
        Scenario(
            name="z",
            title="(z) limiter zoo: every kind of gateway limiter and header dialect",
            kind="zoo",
            n=0,
            quick_n=0,
            contenders=ZOO_CONTENDERS,
            max_rounds=1,
            quick_max_rounds=1,
        ),
    )
}
"""Every scenario by name; the micro benchmark (e) is separate (``_micro``)."""


def lead_id(index: int) -> str:
    """The id of the ``index``-th lead of a run: unique, and valid for the simulator."""
    return f"lead_{index:08d}"
