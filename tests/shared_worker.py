"""A worker process for the shared-store tests: one client on a Redis store fetches some ids.

``python -m tests.shared_worker --redis URL --base-url URL [--wait] ID ...``

The API key comes from ``DIALNEXA_API_KEY``. With ``--wait`` the worker builds its client,
prints ``ready`` and waits for a line on stdin before it sends anything, so the test starts
the clock, not the interpreter. It prints one JSON line: ok, errors by class, requests, 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter

import dialnexa_async as dnx


async def main(ns: argparse.Namespace) -> dict[str, object]:
    store = dnx.RedisRateStore(ns.redis, timeout=1.0)
    async with dnx.AsyncDialNexa(
        base_url=ns.base_url, rate_store=store, max_retries=ns.max_retries
    ) as client:
        if ns.wait:
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        results = await client.get_leads(ns.ids)
        errors = Counter(type(r.error).__name__ for r in results if r.error is not None)
        return {
            "ok": sum(r.ok for r in results),
            "errors": dict(errors),
            "requests": client.stats.requests,
            "rate_limited": client.stats.rate_limited,
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--max-retries", type=int, default=5)
    parser.add_argument("ids", nargs="+")
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
    sys.exit(0)
