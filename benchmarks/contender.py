"""One contender run in this process, reported as one JSON line on stdout.

``python -m benchmarks.contender NAME[@LOOP] --scenario S --base-url URL --n N --concurrency C
[--pace RATE]``

The clock and CPU counters start just before the client or session is created and stop once
it is closed with every result in hand; checking the results happens after that. ``@uvloop``
runs the same contender under ``uvloop.run`` instead of ``asyncio.run``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import functools
import gc
import json
import math
import resource
import sys
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ._contenders import LOOPS, REGISTRY, Check, Run, Tally, Verify, is_known, split_name
from ._scenarios import SCENARIOS

TIMELINE_STEP = 0.1
"""Seconds between two points of a run's ``ok_timeline``."""

_T = TypeVar("_T")


def _maxrss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _gc_collections() -> int:
    return sum(stat["collections"] for stat in gc.get_stats())


async def _timed(
    name: str, run: Run, tally: Tally, deadline: float | None = None
) -> tuple[Verify, float, float, int, float]:
    contender = REGISTRY[split_name(name)[0]].run
    gc_before = _gc_collections()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    try:
        verify = await asyncio.wait_for(contender(run, tally), deadline)
    except asyncio.TimeoutError:
        # Out of time: what arrived counts, the rest is undone (as a run cut short by a user).
        done = tally.marks[-1][1] if tally.marks else 0
        verify = functools.partial(Check, ok=done, missing=run.n - done, errors=["deadline"])
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    return verify, elapsed, cpu, _gc_collections() - gc_before, started


def _run_on(loop: str, coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on a fresh event loop of the kind named."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def ok_timeline(
    marks: Sequence[tuple[float, int]], started: float, elapsed: float, ok: int
) -> list[int]:
    """Leads received by each multiple of ``TIMELINE_STEP`` since the start, up to the end.

    Between two marks the count is interpolated linearly: exact for the raw clients (a mark
    per lead), within one progress interval for the SDK (a mark per report).
    """
    times = [0.0, *(t - started for t, _ in marks), elapsed]
    counts = [0, *(count for _, count in marks), ok]
    points = []
    for step in range(math.ceil(elapsed / TIMELINE_STEP) + 1):
        at = min(step * TIMELINE_STEP, elapsed)
        right = min(bisect.bisect_right(times, at), len(times) - 1)
        left = right - 1
        span = times[right] - times[left]
        share = (at - times[left]) / span if span > 0 else 1.0
        points.append(round(counts[left] + share * (counts[right] - counts[left])))
    return points


def measure(
    name: str,
    scenario: str,
    run: Run,
    profile: Path | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Run one contender once and describe the run as a JSON-ready dict.

    With ``deadline`` (seconds) a run still going then is cut short: the ids that arrived by
    then count, the rest are reported ``missing`` (undone).
    """
    base, loop = split_name(name)
    REGISTRY[base].load(loop)
    start_rss = _maxrss_mb()
    tally = Tally()
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        # "disabled" samples whatever runs on the thread: every task and the loop itself.
        profiler = Profiler(async_mode="disabled")
        profiler.start()
    verify, elapsed, cpu, collections, started = _run_on(loop, _timed(name, run, tally, deadline))
    if profiler is not None and profile is not None:
        profiler.stop()
        _write_profile(profiler, profile)
    check = verify()
    extra: dict[str, Any] = {}
    if run.timeline:
        extra["timeline_step"] = TIMELINE_STEP
        extra["ok_timeline"] = ok_timeline(tally.marks, started, elapsed, check.ok)
    if run.pace is not None:
        extra["pace"] = run.pace
    return {
        "contender": name,
        "scenario": scenario,
        "loop": loop,
        "n": run.n,
        "concurrency": run.concurrency,
        "elapsed": elapsed,
        "leads_per_s": check.ok / elapsed if elapsed > 0 else 0.0,
        "ok": check.ok,
        "failed": check.failed,
        "mismatched": check.mismatched,
        "missing": check.missing,
        "passed": check.passed,
        "intact": check.intact,
        "errors": check.errors,
        "requests": tally.requests,
        "rate_limited": tally.rate_limited,
        "cpu_s": cpu,
        "cpu_us_per_lead": cpu / run.n * 1e6 if run.n else 0.0,
        "gc_collections": collections,
        "start_rss_mb": start_rss,
        "peak_rss_mb": _maxrss_mb(),
        "profiled": profile is not None,
        **extra,
    }


def _write_profile(profiler: Any, prefix: Path) -> None:
    from pyinstrument.renderers import ConsoleRenderer

    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".html").write_text(profiler.output_html(), encoding="utf-8")
    tree = profiler.output(ConsoleRenderer(unicode=True, color=False, show_all=False))
    prefix.with_suffix(".txt").write_text(tree, encoding="utf-8")
    flat = profiler.output(ConsoleRenderer(unicode=True, color=False, flat=True))
    prefix.with_name(prefix.name + "-flat.txt").write_text(flat, encoding="utf-8")
    top = _heaviest(profiler.last_session.root_frame())
    prefix.with_name(prefix.name + "-top.txt").write_text(top, encoding="utf-8")


SDK_CODE = ("dialnexa_async/", "tenacity/", "cattrs", "attr/", "attrs/")
"""Paths of the code the SDK adds over raw aiohttp, for the profile's SDK-only list."""


def _heaviest(root: Any, count: int = 25, sdk_count: int = 15) -> str:
    """Self time by package, the ``count`` heaviest functions, and the heaviest SDK ones.

    Self time is the time a function's own code ran, callees excluded (pyinstrument's
    ``[self]`` leaves), summed over every call site.
    """
    by_function: dict[tuple[str, str, int], float] = {}
    by_package: dict[str, float] = {}
    stack = [root]
    while stack:
        frame = stack.pop()
        own = sum(child.time for child in frame.children if child.is_synthetic_leaf)
        stack.extend(child for child in frame.children if not child.is_synthetic_leaf)
        if own <= 0:
            continue
        path = frame.file_path_short or "?"
        key = (frame.function or "?", path, frame.line_no or 0)
        by_function[key] = by_function.get(key, 0.0) + own
        package = "cattrs (generated)" if "cattrs generated" in path else path.split("/", 1)[0]
        by_package[package] = by_package.get(package, 0.0) + own
    total = sum(by_package.values()) or 1.0
    lines = [f"Self time by package ({total:.3f} s sampled):"]
    for package, seconds in sorted(by_package.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {seconds:7.3f} s {seconds / total:6.1%}  {package}")
    ranked = sorted(by_function.items(), key=lambda kv: -kv[1])
    lines += ["", f"The {count} heaviest functions by self time:"]
    for (function, path, line), seconds in ranked[:count]:
        lines.append(f"  {seconds:7.3f} s {seconds / total:6.1%}  {function}  {path}:{line}")
    sdk = [item for item in ranked if any(part in item[0][1] for part in SDK_CODE)]
    lines += [
        "",
        f"The {sdk_count} heaviest in SDK code (dialnexa_async, tenacity, attrs, cattrs):",
    ]
    for (function, path, line), seconds in sdk[:sdk_count]:
        lines.append(f"  {seconds:7.3f} s {seconds / total:6.1%}  {function}  {path}:{line}")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The contender command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.contender")
    parser.add_argument("name", type=_contender_name, help="NAME or NAME@LOOP")
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument(
        "--pace",
        type=float,
        default=None,
        metavar="RATE",
        help="the server's long-run limit in requests per second, as the paced contender is told",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="write a pyinstrument profile to PREFIX.*"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        metavar="SECONDS",
        help="cut the run short after this long; ids not done by then are reported undone",
    )
    return parser


def _contender_name(text: str) -> str:
    if not is_known(text):
        raise argparse.ArgumentTypeError(
            f"unknown contender {text!r}; choose from {', '.join(sorted(REGISTRY))}, "
            f"optionally @{'/@'.join(LOOPS[1:])}"
        )
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, run once, print the JSON line; exit 1 if the check failed.

    Under a rate limit, ids a client gave up on are an outcome, not a failure of the run.
    """
    ns = build_parser().parse_args(argv)
    scenario = SCENARIOS[ns.scenario]
    run = Run.build(
        ns.base_url.rstrip("/"),
        ns.n,
        ns.concurrency,
        retries=scenario.retries,
        streaming=scenario.kind == "memory",
        timeline=scenario.kind == "zoo",
        pace=ns.pace,
    )
    result = measure(ns.name, ns.scenario, run, ns.profile, ns.deadline)
    print(json.dumps(result), flush=True)
    ok = result["intact"] if scenario.retries else result["passed"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
