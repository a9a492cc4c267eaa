"""An asyncio worker: looks up each lead id it is given, until the ids end or it is told to stop.

The ids come from ``jobs()``, here the command line, in your code a queue. Each lead is printed
as one JSON line. SIGTERM or SIGINT stops it gracefully: it takes no new id, finishes the ids
it holds (each within DEADLINE), closes the client and exits 0.
"""

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator

import dialnexa_async as dnx

DEADLINE = 10.0
"""Seconds one lookup may take in all, retries and waits included."""

WORKERS = 8
"""Lookups in flight at once."""


async def jobs() -> AsyncIterator[str]:
    """The ids to look up: stands in for your queue (SQS, Redis, RabbitMQ, a database...)."""
    for lead_id in sys.argv[1:]:
        yield lead_id


async def work(client: dnx.AsyncDialNexa, queue: asyncio.Queue[str]) -> None:
    """Look up ids from the queue, one at a time, until cancelled."""
    while True:
        lead_id = await queue.get()
        try:
            lead = await asyncio.wait_for(client.get_lead(lead_id), DEADLINE)
            print(json.dumps(lead.to_dict()), flush=True)
        except dnx.DialNexaError as exc:  # after the SDK's retries
            print(f"{lead_id}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        except asyncio.TimeoutError:  # DEADLINE passed: the lookup was cancelled
            print(f"{lead_id}: no answer within {DEADLINE:g}s", file=sys.stderr, flush=True)
        finally:
            queue.task_done()


async def feed(queue: asyncio.Queue[str], stop: asyncio.Event) -> None:
    """Hand the workers each id from ``jobs()`` until they end or ``stop`` is set."""
    async for lead_id in jobs():
        if stop.is_set():
            return
        await queue.put(lead_id)


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=WORKERS)
    async with dnx.AsyncDialNexa() as client:  # one client for the process; key from the env
        workers = [asyncio.create_task(work(client, queue)) for _ in range(WORKERS)]
        feeder = asyncio.create_task(feed(queue, stop))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([feeder, stopped], return_when=asyncio.FIRST_COMPLETED)
        feeder.cancel()  # take no new id
        stopped.cancel()
        await queue.join()  # finish the ids already taken
        for task in workers:
            task.cancel()
        await asyncio.gather(stopped, *workers, return_exceptions=True)
        with contextlib.suppress(asyncio.CancelledError):
            await feeder  # raises what broke the job source, if anything did


if __name__ == "__main__":
    asyncio.run(main())
