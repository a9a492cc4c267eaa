"""One worker of a fleet, reported as one JSON line on stdout.

``python -m benchmarks.worker --base-url URL --first I --n N [--rate-store URL]``

The worker fetches ids ``lead_id(I) .. lead_id(I + N - 1)`` with ``get_leads`` on one client
told nothing about the limit (``max_concurrency`` 64, 9 retries, as in the zoo), its rate
control in memory or, with ``--rate-store``, shared through Redis. It prints ``ready`` once
imported and waits for a line on stdin, so the fleet starts together; the clock starts just
before the client is created and stops once it is closed. Then it checks that every id came
back once, as itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

import dialnexa_async as dnx
from dialnexa_async._redis_store import DEFAULT_TIMEOUT

from ._scenarios import API_KEY, MAX_TRIES, lead_id


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def fetch(ns: argparse.Namespace) -> dict[str, Any]:
    """Fetch this worker's ids and describe the run."""
    ids = [lead_id(ns.first + i) for i in range(ns.n)]
    store = None
    latencies: list[float] = []
    if ns.rate_store is not None:
        store = dnx.RedisRateStore(ns.rate_store, timeout=ns.store_timeout)
        _time_syncs(store, latencies)
    started_wall = time.time()
    started = time.perf_counter()
    cpu = _cpu_seconds()
    async with dnx.AsyncDialNexa(
        api_key=API_KEY,
        base_url=ns.base_url,
        max_concurrency=ns.concurrency,
        max_retries=MAX_TRIES - 1,
        rate_store=store,
    ) as client:
        results = await client.get_leads(ids)
        shared = client._rate.shared
    elapsed = time.perf_counter() - started
    ok = failed = mismatched = 0
    errors: list[str] = []
    for want, result in zip(ids, results, strict=True):
        if result.lead is None:
            failed += 1
            if len(errors) < 3:
                errors.append(repr(result.error)[:300])
        elif result.lead.id == want:
            ok += 1
        else:
            mismatched += 1
    stats = client.stats
    return {
        "first": ns.first,
        "n": ns.n,
        "store": "memory" if store is None else "redis",
        "ok": ok,
        "failed": failed,
        "mismatched": mismatched,
        "missing": ns.n - len(results),
        "errors": errors,
        "requests": stats.requests,
        "rate_limited": stats.rate_limited,
        "started": started_wall,
        "ended": started_wall + elapsed,
        "elapsed": elapsed,
        "leads_per_s": ok / elapsed if elapsed > 0 else 0.0,
        "cpu_s": _cpu_seconds() - cpu,
        "store_syncs": None if shared is None else shared.syncs,
        "store_failures": None if shared is None else shared.failures,
        "store_outages": None if shared is None else shared.outages,
        "sync_ms": _percentiles(latencies),
        "store_joined": None if shared is None else shared.joined,
    }


def _time_syncs(store: dnx.RedisRateStore, latencies: list[float]) -> None:
    """Record how long each sync took, as this worker's event loop saw it."""
    sync = store.sync

    async def timed(key_id: str, report: Any) -> Any:
        started = time.perf_counter()
        try:
            return await sync(key_id, report)
        finally:
            latencies.append(time.perf_counter() - started)

    store.sync = timed  # type: ignore[method-assign]


def _percentiles(latencies: list[float]) -> dict[str, float] | None:
    if not latencies:
        return None
    ordered = sorted(latencies)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0)}


def main(argv: Sequence[str] | None = None) -> int:
    """Wait for the go line, run, print the JSON line; exit 1 if an id went missing."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate-store", default=None, metavar="URL")
    parser.add_argument("--store-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S")
    ns = parser.parse_args(argv)
    print("ready", flush=True)
    sys.stdin.readline()
    result = asyncio.run(fetch(ns))
    print(json.dumps(result), flush=True)
    return 0 if not (result["missing"] or result["mismatched"]) else 1


if __name__ == "__main__":
    sys.exit(main())
