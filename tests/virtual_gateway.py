"""The SDK behind a simulated gateway in virtual time: whole bulk runs in a fraction of a second.

A real ``AsyncDialNexa`` runs on an event loop whose clock jumps to the next timer whenever
nothing is ready, so every pause, pacing slot, retry wait and server latency costs no real
time, and the order of events is exactly what the waits say. Its transport is swapped for one
that asks the simulator's ``RateGate`` (the same limiter and header code the loopback server
runs) for each request's fate. Run ``python -m tests.virtual_gateway`` for the whole
limiter x dialect matrix as a table.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import selectors
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from multidict import CIMultiDict, CIMultiDictProxy

import dialnexa_async as dnx
from dialnexa_async._transport import RawResponse
from dialnexa_async.testing import RateGate, SimulatorConfig
from dialnexa_async.testing._leads import lead_body

T = TypeVar("T")

WALL_START = 1_800_000_000.0
"""The POSIX time at virtual zero, for epoch resets and HTTP dates."""

NETWORK_DELAY = 0.0002
"""Seconds each way between client and gateway (loopback-like); server time is ``latency``."""


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that, instead of blocking for ``timeout``, moves the loop's time forward."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if not events and timeout is not None and timeout > 0:
            self.now += timeout
        elif not events and timeout is None:
            events = super().select(None)  # nothing scheduled: only real I/O can wake us
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` jumps to the next timer when nothing is ready."""

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh ``VirtualTimeLoop``."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


class LoopClock:
    """The SDK's clock read from the running loop, so it follows virtual time."""

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def time(self) -> float:
        return WALL_START + asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class GatewayTransport:
    """Answers each request as the gate decides, after a one-way latency each way."""

    def __init__(
        self,
        gate: RateGate,
        *,
        latency: float,
        jitter: float,
        error_rate: float,
        seed: int,
        log: list[tuple[float, bool]],
    ) -> None:
        self._gate = gate
        self._latency = latency
        self._jitter = jitter
        self._error_rate = error_rate
        self._rng = random.Random(seed)
        self.log = log

    def _trip(self) -> float:
        return NETWORK_DELAY + self._rng.uniform(0.0, self._jitter / 2)

    async def get(self, url: str) -> RawResponse:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self._trip())
        now = loop.time()
        config = self._gate.config
        retry_after = config.retry_after
        send_retry_after = (
            retry_after if isinstance(retry_after, bool) else self._rng.random() < retry_after
        )
        answer = self._gate.check(now, WALL_START + now, send_retry_after)
        try:
            if answer.admitted:
                # A gateway refuses at once; an admitted request queues, then is served.
                await asyncio.sleep(answer.delay + self._latency)
        finally:
            self._gate.done(loop.time())
        self.log.append((now, answer.admitted))
        headers = CIMultiDict(answer.headers)
        if answer.admitted and self._error_rate and self._rng.random() < self._error_rate:
            status, body = 503, b'{"statusCode":503,"message":"Service Unavailable"}'
        elif answer.admitted:
            status, body = 200, lead_body(url.rsplit("/", 1)[1], 0.0)
        else:
            status, body = answer.status, answer.body or b""
        await asyncio.sleep(self._trip())
        return RawResponse(status, CIMultiDictProxy(headers), body)

    async def close(self) -> None:
        return None


@dataclasses.dataclass
class RowResult:
    """What one run behind a gateway achieved."""

    n: int
    ok: int
    failed: int
    requests: int
    refused: int
    elapsed: float
    rate: float
    allowance: int
    log: list[tuple[float, bool]]

    @property
    def goodput(self) -> float:
        """Correct ids per second over the long-run limit, the limiter's first allowance aside.

        A window or bucket admits its whole allowance at once when a run begins; a client
        that used it perfectly and then followed the rate exactly scores 100%.
        """
        if self.elapsed <= 0:
            return math.inf
        return max(0, self.ok - self.allowance) / (self.elapsed * self.rate)

    @property
    def share_429(self) -> float:
        """The share of requests the gateway refused."""
        return self.refused / self.requests if self.requests else 0.0

    def goodput_between(self, start: float, end: float, rate: float) -> float:
        """Admissions per second in ``[start, end)`` over ``rate``."""
        admitted = sum(1 for t, ok in self.log if ok and start <= t < end)
        return admitted / ((end - start) * rate)


def run_row(
    config: SimulatorConfig,
    *,
    n: int,
    rate: float,
    allowance: int = 0,
    latency: float = 0.002,
    jitter: float = 0.001,
    error_rate: float = 0.0,
    concurrency: int = 64,
    max_retries: int = 10,
    seed: int = 0,
    client_options: dict[str, Any] | None = None,
) -> RowResult:
    """Fetch ``n`` ids through a client told nothing, behind ``config``'s limiter, in virtual time.

    Args:
        config: the simulator config whose limiter and dialect the gateway runs.
        n: ids to fetch.
        rate: the limiter's long-run rate (requests per second) that goodput is measured on.
        allowance: requests the limiter admits at once at the start (a window's limit, a
            bucket's burst), left out of goodput.
        latency: the server's time to answer an admitted request, in seconds.
        jitter: an extra uniform round-trip delay bound.
        error_rate: the share of admitted requests answered with a 503.
        concurrency: the client's ``max_concurrency``.
        max_retries: the client's ``max_retries``.
        seed: seeds the jitter and the faults.
        client_options: more ``AsyncDialNexa`` arguments.
    """

    async def main() -> RowResult:
        loop = asyncio.get_running_loop()
        config.clock = loop.time
        config.wall_clock = lambda: WALL_START + loop.time()
        log: list[tuple[float, bool]] = []
        transport = GatewayTransport(
            RateGate(config),
            latency=latency,
            jitter=jitter,
            error_rate=error_rate,
            seed=seed,
            log=log,
        )
        client = dnx.AsyncDialNexa(
            api_key="sk_test",
            base_url="https://gateway.invalid/v1",
            max_concurrency=concurrency,
            max_retries=max_retries,
            clock=LoopClock(),
            **(client_options or {}),
        )
        client._transport = transport  # type: ignore[assignment]
        ids = [f"lead_{i:08d}" for i in range(n)]
        start = loop.time()
        async with client:
            results = await client.get_leads(ids)
        elapsed = loop.time() - start
        ok = sum(1 for r in results if r.ok and r.lead is not None and r.lead.id == r.lead_id)
        refused = sum(1 for _, admitted in log if not admitted)
        return RowResult(
            n=n,
            ok=ok,
            failed=sum(1 for r in results if not r.ok),
            requests=len(log),
            refused=refused,
            elapsed=elapsed,
            rate=rate,
            allowance=allowance,
            log=[(t - start, a) for t, a in log],
        )

    return run_virtual(main())


@dataclasses.dataclass(frozen=True)
class Row:
    """One gateway of the matrix: a limiter, a dialect, and how goodput is judged."""

    name: str
    options: dict[str, Any]
    rate: float
    hinted: bool
    allowance: int = 0
    latency: float = 0.002
    error_rate: float = 0.0
    seconds: float = 20.0

    def config(self) -> SimulatorConfig:
        """A fresh simulator config for this row."""
        return SimulatorConfig(**self.options)

    def run(self, seed: int = 0, seconds: float | None = None) -> RowResult:
        """Run the row for ``seconds`` of the limit (default its own)."""
        n = self.allowance + round(self.rate * (self.seconds if seconds is None else seconds))
        return run_row(
            self.config(),
            n=n,
            rate=self.rate,
            allowance=self.allowance,
            latency=self.latency,
            error_rate=self.error_rate,
            seed=seed,
        )


_BARE: dict[str, Any] = {"rate_limit_headers": False, "retry_after": False}
_RA_ONLY: dict[str, Any] = {"rate_limit_headers": False, "retry_after": True}


def _dialect(name: str) -> dict[str, Any]:
    return {"rate_limit_dialect": name, "retry_after": True}


LIMITERS: dict[str, tuple[dict[str, Any], float, int, float]] = {
    # name: (options, long-run rate, first allowance, server time)
    "fixed 200/1s": ({"limiter": "fixed-window", "rate_limit": 200}, 200.0, 200, 0.002),
    "fixed 1500/10s": (
        {"limiter": "fixed-window", "rate_limit": 1500, "rate_window": 10.0},
        150.0,
        1500,
        0.002,
    ),
    "sliding-log 200/1s": ({"limiter": "sliding-log", "rate_limit": 200}, 200.0, 200, 0.002),
    "sliding-log 2000/10s": (
        {"limiter": "sliding-log", "rate_limit": 2000, "rate_window": 10.0},
        200.0,
        2000,
        0.002,
    ),
    "sliding-counter 200/1s": (
        {"limiter": "sliding-counter", "rate_limit": 200},
        200.0,
        200,
        0.002,
    ),
    "token-bucket 200/s b1": (
        {"limiter": "token-bucket", "rate_limit": 200, "burst": 1},
        200.0,
        1,
        0.002,
    ),
    "token-bucket 200/s b20": (
        {"limiter": "token-bucket", "rate_limit": 200, "burst": 20},
        200.0,
        20,
        0.002,
    ),
    "leaky-bucket 200/s b50": (
        {"limiter": "leaky-bucket", "rate_limit": 200, "burst": 50},
        200.0,
        50,
        0.002,
    ),
    "concurrency 16, 20 ms": ({"limiter": "concurrency", "rate_limit": 16}, 800.0, 0, 0.02),
    "block 200/1s, 2 s": (
        {"limiter": "block", "rate_limit": 200, "block_period": 2.0},
        200.0,
        200,
        0.002,
    ),
}

DIALECTS: dict[str, tuple[dict[str, Any], bool]] = {
    "bare": (_BARE, False),
    "retry-after": (_RA_ONLY, True),
    "x-ratelimit": (_dialect("x-ratelimit"), True),
    "x-ratelimit-epoch": (_dialect("x-ratelimit-epoch"), True),
    "draft6": (_dialect("draft6"), True),
    "draft7": (_dialect("draft7"), True),
    "draft8": (_dialect("draft8"), True),
}


def matrix() -> list[Row]:
    """Every limiter with every dialect."""
    rows = []
    for lname, (options, rate, allowance, latency) in LIMITERS.items():
        for dname, (dialect, hinted) in DIALECTS.items():
            rows.append(
                Row(
                    name=f"{lname} | {dname}",
                    options={**options, **dialect},
                    rate=rate,
                    hinted=hinted,
                    allowance=allowance,
                    latency=latency,
                )
            )
    return rows


def main(argv: list[str]) -> int:
    """Print the matrix as a table, worst goodput first; ``argv`` filters rows by substring."""
    rows = [r for r in matrix() if all(part in r.name for part in argv)]
    results: list[tuple[Row, RowResult]] = []
    for row in rows:
        result = row.run()
        results.append((row, result))
        print(
            f"{row.name:45s} goodput {result.goodput:6.1%}  429s {result.share_429:5.1%}  "
            f"failed {result.failed:4d}  {result.elapsed:6.1f}s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
