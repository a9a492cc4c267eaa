"""Many worker processes, one API key, one rate limit: ids from a Redis list, results once each.

    python examples/redis_workers.py --redis redis://127.0.0.1:6379/0 --workers 4 --simulate

Every worker process pulls ids from the Redis list ``<job>:queue`` one at a time (``LMOVE`` into
its own ``<job>:claimed:<worker>`` list, so an id a crashed worker held is not lost: that worker
puts it back when it starts again), fetches them through ``AsyncDialNexa(rate_store=
RedisRateStore(...))`` so that all of them together keep under the key's limit, and writes each
result into the hash ``<job>:results`` with ``HSETNX``: an id's result is written exactly once,
even if the id were fetched twice. The parent seeds the queue, starts the workers, waits, writes
the results to a JSON Lines file and checks that every id has exactly one line.

``--simulate`` starts the SDK's local simulator with a rate limit (no key, no network); without
it, set ``DIALNEXA_API_KEY`` (and ``DIALNEXA_BASE_URL``) and pass real ids with ``--ids FILE``.
Needs ``pip install 'dialnexa-async[redis]'`` and a Redis server. ``examples/one_process.py`` is
the same job in one process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import redis
import redis.asyncio

import dialnexa_async as dnx

SIMULATOR_KEY = "key_demo:simulated-secret"


def result_line(result: dnx.LeadResult) -> str:
    """One id's outcome as a JSON object: the lead, or the error that ended it."""
    if result.lead is not None:
        return json.dumps({"id": result.lead_id, "lead": result.lead.to_dict()})
    error = result.error
    return json.dumps({"id": result.lead_id, "error": type(error).__name__, "message": str(error)})


async def claimed_ids(queue: redis.asyncio.Redis, job: str, worker: str) -> AsyncIterator[str]:
    """Ids taken from the queue one at a time; first those this worker held when it died."""
    claimed = f"{job}:claimed:{worker}"
    while await queue.lmove(claimed, f"{job}:queue", "RIGHT", "LEFT"):
        pass  # a previous run of this worker stopped mid-way: its ids go back to the queue
    while (lead_id := await queue.lmove(f"{job}:queue", claimed, "LEFT", "RIGHT")) is not None:
        yield lead_id.decode()


async def work(redis_url: str, job: str, worker: str, *, share: bool = True) -> dict[str, int]:
    """Fetch ids from the queue until it is empty; write each result once.

    Args:
        share: keep rate control in Redis, shared with every other worker on the key; a lone
            process needs no sharing.
    """
    queue = redis.asyncio.Redis.from_url(redis_url)
    store = dnx.RedisRateStore(redis_url, namespace=job) if share else None
    written = 0
    try:
        async with dnx.AsyncDialNexa(rate_store=store, max_retries=9) as client:
            async for result in client.iter_leads(claimed_ids(queue, job, worker)):
                if await queue.hsetnx(f"{job}:results", result.lead_id, result_line(result)):
                    written += 1
                await queue.lrem(f"{job}:claimed:{worker}", 1, result.lead_id)
            stats = client.stats
        return {"written": written, "requests": stats.requests, "429s": stats.rate_limited}
    finally:
        await queue.aclose()


def run_worker(redis_url: str, job: str, worker: str, out: multiprocessing.Queue[object]) -> None:
    """A worker process: one event loop, one client, until the queue is empty."""
    out.put((worker, asyncio.run(work(redis_url, job, worker))))


def start_simulator(rate_limit: int) -> tuple[subprocess.Popen[str], str]:
    """The SDK's simulator in its own process: a local API with a rate limit."""
    simulator = subprocess.Popen(
        [sys.executable, "-m", "dialnexa_async.testing", "--port", "0", "--api-key",
         SIMULATOR_KEY, "--rate-limit", str(rate_limit), "--no-track-ids"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert simulator.stdout is not None
    for line in simulator.stdout:
        if "listening on " in line:
            return simulator, line.rsplit("listening on ", 1)[1].strip()
    raise RuntimeError("the simulator did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", required=True, help="redis://host:port/db")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--job", default="leads-job", help="prefix of the job's Redis keys")
    parser.add_argument("--ids", help="a file of ids, one per line (default: --count made up)")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--output", default="results.jsonl")
    parser.add_argument("--simulate", action="store_true", help="run against a local simulator")
    parser.add_argument("--rate-limit", type=int, default=200, help="the simulator's limit")
    ns = parser.parse_args()

    if ns.ids:
        with open(ns.ids, encoding="utf-8") as lines:
            ids = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    else:
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
        spawn = multiprocessing.get_context("spawn")
        done = spawn.Queue()
        workers = [
            spawn.Process(target=run_worker, args=(ns.redis, ns.job, f"w{n}", done))
            for n in range(ns.workers)
        ]
        for process in workers:
            process.start()
        reports = dict(done.get() for _ in workers)
        for process in workers:
            process.join()
        elapsed = time.monotonic() - started
        results = queue.hgetall(f"{ns.job}:results")
    finally:
        queue.close()
        if simulator is not None:
            simulator.terminate()
            simulator.wait()

    with open(ns.output, "w", encoding="utf-8") as output:
        for lead_id in ids:
            if lead_id.encode() in results:
                output.write(results[lead_id.encode()].decode() + "\n")
    for worker, report in sorted(reports.items()):
        print(f"{worker}: {report['written']} written, {report['requests']} requests, "
              f"{report['429s']} rate-limited")  # fmt: skip
    missing = [lead_id for lead_id in ids if lead_id.encode() not in results]
    extra = len(results) - (len(ids) - len(missing))
    print(f"{len(ids)} ids in {elapsed:.1f}s ({len(ids) / elapsed:.0f} ids/s) by {ns.workers} "
          f"processes; check: {len(missing)} missing, {extra} unexpected, one line per id "
          f"in {ns.output}")  # fmt: skip
    return 0 if not missing and not extra else 1


if __name__ == "__main__":
    sys.exit(main())
