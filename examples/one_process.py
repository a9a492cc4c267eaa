"""The job of ``examples/redis_workers.py`` in one process: the same queue, the same results.

    python examples/one_process.py --redis redis://127.0.0.1:6379/0 --simulate

One client pulls ids from the Redis list and writes each result once into the same hash, with
its rate control in its own memory: alone on the key, it has nothing to share. Compare its
ids/s and 429s with ``redis_workers.py --workers 4``: under a limit the fleet is no faster
(the limit is the key's), but it sends no more 429s either; without a limit, or when each id
costs the client real work, the fleet scales where one process stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import redis
from redis_workers import SIMULATOR_KEY, start_simulator, work


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", required=True, help="redis://host:port/db")
    parser.add_argument("--job", default="leads-job-one", help="prefix of the job's Redis keys")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--simulate", action="store_true", help="run against a local simulator")
    parser.add_argument("--rate-limit", type=int, default=200, help="the simulator's limit")
    ns = parser.parse_args()

    ids = [f"lead_{i:06d}" for i in range(ns.count)]
    simulator = None
    if ns.simulate:
        simulator, base_url = start_simulator(ns.rate_limit)
        os.environ["DIALNEXA_API_KEY"] = SIMULATOR_KEY
        os.environ["DIALNEXA_BASE_URL"] = base_url
    queue = redis.Redis.from_url(ns.redis)
    try:
        queue.delete(f"{ns.job}:queue", f"{ns.job}:results")
        queue.rpush(f"{ns.job}:queue", *ids)
        started = time.monotonic()
        report = asyncio.run(work(ns.redis, ns.job, "only", share=False))
        elapsed = time.monotonic() - started
        written = queue.hlen(f"{ns.job}:results")
    finally:
        queue.close()
        if simulator is not None:
            simulator.terminate()
            simulator.wait()
    print(f"{report['written']} written, {report['requests']} requests, "
          f"{report['429s']} rate-limited")  # fmt: skip
    print(f"{len(ids)} ids in {elapsed:.1f}s ({len(ids) / elapsed:.0f} ids/s) by 1 process; "
          f"check: {len(ids) - written} missing")  # fmt: skip
    return 0 if written == len(ids) else 1


if __name__ == "__main__":
    sys.exit(main())
