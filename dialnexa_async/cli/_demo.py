"""``demo``: a bulk fetch against an in-process simulator that misbehaves like a real API."""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
from collections import Counter

import dialnexa_async as dnx
from dialnexa_async.testing import Simulator, SimulatorConfig

from ._engine import run_bulk
from ._exit import EXIT_FAILED, EXIT_OK, exit_status_for_signal
from ._output import RecordFile, RecordSink, ResultWriter, StreamSink, format_for
from ._progress import make_reporter
from ._summary import Tally, render_summary

__all__ = ["demo_command", "demo_config", "demo_ids"]

DEMO_KEY = "sk_demo"
"""The key the demo's simulator accepts; it exists only inside the demo process."""

LATENCY = 0.005
LATENCY_JITTER = 0.015
"""Each answer takes 5 to 20 ms, like a nearby API under light load."""

RATE_LIMIT = 1000
"""Requests per one-second window before the simulator answers 429."""

RETRY_AFTER_SHARE = 0.5
"""Share of 429s that carry ``Retry-After``; the others say nothing about when to come back."""

ERROR_RATE = 0.03
RESET_RATE = 0.01
"""3% of answers are a 503 and 1% of connections are reset, all worth a retry."""

UNKNOWN_SHARE = 0.03
"""Share of ids that do not exist (``missing_*``), answered 404 and never retried."""

MAX_RETRIES = 5
"""Enough for a 503 or a reset to be outlasted every time in 10,000 fetches."""


def demo_config(seed: int) -> SimulatorConfig:
    """The simulator's settings for the demo.

    Args:
        seed: seed of its fault stream.
    """
    return SimulatorConfig(
        api_key=DEMO_KEY,
        latency=LATENCY,
        latency_jitter=LATENCY_JITTER,
        rate_limit=RATE_LIMIT,
        rate_window=1.0,
        # Like a gateway in front of the API: no x-ratelimit-* headers, so the client can only
        # learn the limit from 429s, the hard case worth watching.
        rate_limit_headers=False,
        retry_after=RETRY_AFTER_SHARE,
        error_rate=ERROR_RATE,
        error_statuses=(503,),
        reset_rate=RESET_RATE,
        seed=seed,
    )


def demo_ids(count: int, seed: int) -> list[str]:
    """``count`` distinct ids shaped like the API's, about 3% of them unknown.

    Args:
        count: how many.
        seed: the same seed gives the same ids.
    """
    rng = random.Random(seed)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    ids: dict[str, None] = {}
    while len(ids) < count:
        token = "".join(rng.choices(alphabet, k=12))
        prefix = "missing_" if rng.random() < UNKNOWN_SHARE else "lead_"
        ids[prefix + token] = None
    return list(ids)


def check_line(ids: list[str], counts: Counter[str]) -> tuple[str, bool]:
    """The closing check: every id got exactly one result.

    Args:
        ids: the ids asked for.
        counts: results received per id.
    """
    asked = set(ids)
    missing = sum(1 for i in asked if counts[i] == 0)
    duplicated = sum(1 for i in asked if counts[i] > 1)
    strays = sum(1 for i in counts if i not in asked)
    results = sum(counts.values())
    passed = missing == 0 and duplicated == 0 and strays == 0 and results == len(ids)
    line = f"check: {len(ids)} ids, {results} results, {missing} missing, {duplicated} duplicated"
    if strays:
        line += f", {strays} unknown"
    return line, passed


async def demo_command(ns: argparse.Namespace) -> int:
    """``demo``: fetch ``--count`` leads from a faulty local simulator and check the results.

    Args:
        ns: parsed flags.
    """
    ids = demo_ids(ns.count, ns.seed)
    out = sys.stderr
    print(
        f"demo: fetching {len(ids)} leads from a local simulator: {LATENCY * 1000:.0f}-"
        f"{(LATENCY + LATENCY_JITTER) * 1000:.0f} ms latency, {RATE_LIMIT} requests/s limit "
        f"(Retry-After on half the 429s, no x-ratelimit headers), {ERROR_RATE:.0%} 503s, "
        f"{RESET_RATE:.0%} connection resets, {UNKNOWN_SHARE:.0%} unknown ids",
        file=out,
        flush=True,
    )
    counts: Counter[str] = Counter()
    tally = Tally()
    with contextlib.ExitStack() as files:
        lead_format = format_for(ns.format, ns.output)
        writer = None
        if ns.output is not None:
            sink: RecordSink
            if ns.output == "-":
                sink = StreamSink(sys.stdout)
            else:
                records = RecordFile(ns.output, "output")
                files.callback(records.close)
                # A demo starts over: its output is a sample, not a job to resume.
                records.truncate(0)
                sink = records
            header = lead_format.header()
            if header is not None:
                sink.write(header)
            writer = ResultWriter(sink, lead_format, None, lambda _: None, lambda _: None)

        def on_result(result: dnx.LeadResult) -> None:
            counts[result.lead_id] += 1
            tally.add(result)
            if writer is not None:
                writer(result)

        async with Simulator(demo_config(ns.seed)) as sim:
            reporter = make_reporter(out, enabled=not ns.no_progress, grand_total=len(ids))
            client = dnx.AsyncDialNexa(
                api_key=DEMO_KEY, base_url=sim.base_url, max_retries=MAX_RETRIES
            )
            try:
                async with client:
                    outcome = await run_bulk(client, ids, on_result=on_result, reporter=reporter)
            finally:
                reporter.close()
    for line in render_summary(
        tally, client.stats, elapsed=outcome.elapsed, asked=len(ids), stopped_by=outcome.stopped_by
    ):
        print(line, file=out)
    line, passed = check_line(ids, counts)
    print(line, file=out, flush=True)
    if outcome.stopped_by is not None:
        return exit_status_for_signal(outcome.stopped_by)
    return EXIT_OK if passed else EXIT_FAILED
