"""``python -m benchmarks``: run every scenario in alternating rounds and write the results.

Examples::

    python -m benchmarks                    # the default run (~13 minutes)
    python -m benchmarks --quick            # small counts, fewer rounds (~1 minute)
    python -m benchmarks --with-million     # also walk 1,000,000 ids in the memory scenario
    python -m benchmarks --scenarios a,e    # only some scenarios ("c" is both rate-limit ones)
    python -m benchmarks --scenarios z      # the limiter zoo (~35 minutes; --quick: ~3)
    python -m benchmarks --scenarios w      # many workers sharing a limit through Redis (~9 min)
    python -m benchmarks --profile sdk      # scenario (a) for one contender under pyinstrument
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _report, _runner, _workers, _zoo
from ._contenders import LOOPS, REGISTRY, is_known, split_name
from ._scenarios import (
    MEMORY_SIZES,
    MEMORY_SIZES_MILLION,
    MEMORY_SIZES_QUICK,
    SCENARIOS,
    Scenario,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCENARIO_ORDER = ("a", "b", "c-retry-after", "c-bare", "d", "e", "z", "w")
DEFAULT_SCENARIOS = tuple(name for name in SCENARIO_ORDER if name not in ("z", "w"))
"""What a run without ``--scenarios`` covers: everything but the zoo, which alone takes
longer than the rest together, and the many-workers fleets, which need redis-server."""
_ALIASES = {"c": ("c-retry-after", "c-bare"), "all": SCENARIO_ORDER}
_PACKAGES = (
    "dialnexa-async",
    "aiohttp",
    "multidict",
    "yarl",
    "attrs",
    "cattrs",
    "tenacity",
    "orjson",
    "httpx",
    "httpcore",
    "matplotlib",
    "pyinstrument",
    "uvloop",
)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _scenario_list(text: str) -> list[str]:
    chosen: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        names = _ALIASES.get(part, (part,))
        for name in names:
            if name not in SCENARIO_ORDER:
                raise argparse.ArgumentTypeError(
                    f"unknown scenario {name!r}; choose from {', '.join(SCENARIO_ORDER)}, c, all"
                )
            if name not in chosen:
                chosen.append(name)
    return [name for name in SCENARIO_ORDER if name in chosen]


def _name_list(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        if not is_known(name):
            raise argparse.ArgumentTypeError(
                f"unknown contender {name!r}; choose from {', '.join(REGISTRY)}, "
                f"each also as NAME@{'/'.join(LOOPS[1:])}"
            )
    return names


def _zoo_rows(text: str) -> list[str]:
    keys = [p.strip() for p in text.split(",") if p.strip()]
    known = [row.key for row in _zoo.ROWS]
    for key in keys:
        if key not in known:
            raise argparse.ArgumentTypeError(
                f"unknown zoo row {key!r}; choose from {', '.join(known)}"
            )
    return keys


def _size_list(text: str) -> list[int]:
    return [int(p.replace("_", "")) for p in text.split(",") if p.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark dialnexa_async against raw aiohttp, httpx and a quick SDK.",
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 2)")
    parser.add_argument("--quick", action="store_true", help="small counts: about a minute")
    parser.add_argument(
        "--scenarios",
        type=_scenario_list,
        default=list(DEFAULT_SCENARIOS),
        help="comma-separated: a, b, c-retry-after, c-bare (c: both), d, e, z (the limiter "
        "zoo, ~35 minutes), w (many workers through Redis, ~9 minutes), all (default: all but "
        "z and w)",
    )
    parser.add_argument(
        "--contenders",
        type=_name_list,
        default=None,
        help="only these contenders (also aiohttp-gather, aiohttp-pool, paced; NAME@uvloop)",
    )
    parser.add_argument(
        "--zoo-rows",
        type=_zoo_rows,
        default=None,
        help="only these rows of the zoo, comma-separated keys (default all; --quick: a subset)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every lead count (smoke tests)"
    )
    parser.add_argument(
        "--with-million", action="store_true", help="memory scenario also walks 1,000,000 ids"
    )
    parser.add_argument(
        "--memory-sizes", type=_size_list, default=None, help="ids for (d), e.g. 10000,100000"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where latest.* go")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-render the table, Markdown and chart from OUTPUT_DIR/latest.json; run nothing",
    )
    parser.add_argument(
        "--profile",
        metavar="CONTENDER",
        choices=sorted(REGISTRY),
        default=None,
        help="run scenario (a) once for CONTENDER under pyinstrument instead of the suite",
    )
    return parser


def machine_info() -> dict[str, Any]:
    """CPU, cores, Python and package versions, for the README and the JSON."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "allowed_cores": sorted(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": versions,
    }


def sdk_revision() -> dict[str, Any]:
    """The commit the SDK was measured at, and whether its files differed from it."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "dialnexa_async")
    return {"commit": git("rev-parse", "--short", "HEAD"), "sdk_modified": bool(changed)}


def _scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale))


def _contenders_for(scenario: Scenario, ns: argparse.Namespace) -> list[str]:
    """The scenario's own contenders, narrowed by ``--contenders``, plus extra variants."""
    contenders = [c for c in scenario.contenders if ns.contenders is None or c in ns.contenders]
    if ns.contenders is not None and scenario.kind != "memory":
        # Extra variants asked for by name (aiohttp-gather, aiohttp-pool, paced, @uvloop)
        # join every throughput, rate-limit and zoo scenario where they can run.
        has_limit = scenario.kind == "zoo" or scenario.pace is not None
        contenders += [
            c
            for c in ns.contenders
            if c not in contenders
            and split_name(c)[0] != "sdk-iter"
            and (has_limit or not REGISTRY[split_name(c)[0]].needs_pace)
        ]
    return contenders


def _rounds_for(scenario: Scenario, ns: argparse.Namespace, rounds: int) -> int:
    cap = scenario.quick_max_rounds if ns.quick else scenario.max_rounds
    return rounds if cap is None else min(rounds, cap)


def _pace_for(name: str, pace: float | None) -> float | None:
    """The limit to tell ``name``: only a contender that paces itself is told it."""
    return pace if REGISTRY[split_name(name)[0]].needs_pace else None


def _run_scenario(
    scenario: Scenario,
    ns: argparse.Namespace,
    cores: _runner.Cores,
    rounds: int,
) -> dict[str, Any]:
    if scenario.kind == "zoo":
        return _run_zoo(scenario, ns, cores, rounds)
    if scenario.kind == "workers":
        _log(f"== {scenario.title}")
        return _workers.run(cores, quick=ns.quick, scale=ns.scale, log=_log)
    contenders = _contenders_for(scenario, ns)
    rounds = _rounds_for(scenario, ns, rounds)
    runs: list[dict[str, Any]] = []
    data: dict[str, Any] = {
        "title": scenario.title,
        "kind": scenario.kind,
        "concurrency": scenario.concurrency,
        "server_flags": list(scenario.server_flags),
        "rate_limit": scenario.rate_limit,
        "rate_window": scenario.rate_window,
        "rounds": rounds,
        "contenders": contenders,
        "runs": runs,
    }
    if not contenders:
        data["summary"] = {}
        return data
    _log(f"== {scenario.title}")
    with _runner.server(scenario.server_flags, cores) as srv:
        _log(f"   simulator at {srv.base_url} (pid {srv.process.pid})")
        if scenario.kind == "memory":
            sizes = ns.memory_sizes or (
                MEMORY_SIZES_MILLION
                if ns.with_million
                else MEMORY_SIZES_QUICK
                if ns.quick
                else MEMORY_SIZES
            )
            data["rounds"] = 1
            for size in sizes:
                for name in contenders:
                    n = _scaled(size, ns.scale) if ns.memory_sizes is None else size
                    result = _runner.run_contender(
                        name, scenario, srv.base_url, n, cores, server_cpu=srv.cpu_seconds
                    )
                    result["round"] = 1
                    runs.append(result)
                    _log_run(scenario, result, 1, 1)
        else:
            for round_index in range(1, rounds + 1):
                for name in contenders:
                    if scenario.kind == "ratelimit":
                        # Let the window the previous run opened expire, so every run starts
                        # with a fresh one.
                        time.sleep(scenario.rate_window)
                    n = _scaled(scenario.n_for(name, quick=ns.quick), ns.scale)
                    result = _runner.run_contender(
                        name,
                        scenario,
                        srv.base_url,
                        n,
                        cores,
                        server_cpu=srv.cpu_seconds,
                        pace=_pace_for(name, scenario.pace),
                    )
                    result["round"] = round_index
                    runs.append(result)
                    _log_run(scenario, result, round_index, rounds)
                if not srv.alive():
                    raise RuntimeError(f"the simulator died: {srv.log_tail()}")
    data["summary"] = _report.summarize(scenario.name, runs)
    return data


def _run_zoo(
    scenario: Scenario,
    ns: argparse.Namespace,
    cores: _runner.Cores,
    rounds: int,
) -> dict[str, Any]:
    """Every row in turn, each contender once per round, each run on a fresh simulator."""
    contenders = _contenders_for(scenario, ns)
    rounds = _rounds_for(scenario, ns, rounds)
    if ns.zoo_rows is not None:
        rows = [row for row in _zoo.ROWS if row.key in ns.zoo_rows]
    else:
        rows = list(_zoo.QUICK_ROWS if ns.quick else _zoo.ROWS)
    plans = {row.key: _zoo.plan(row, quick=ns.quick, scale=ns.scale) for row in rows}
    runs: list[dict[str, Any]] = []
    data: dict[str, Any] = {
        "title": scenario.title,
        "kind": scenario.kind,
        "concurrency": scenario.concurrency,
        "rounds": rounds,
        "contenders": contenders,
        "plans": {key: planned.as_dict() for key, planned in plans.items()},
        "runs": runs,
    }
    if not contenders or not rows:
        data["summary"] = {}
        return data
    _log(f"== {scenario.title}: {len(rows)} rows x {len(contenders)} contenders x {rounds}")
    for round_index in range(1, rounds + 1):
        for key, planned in plans.items():
            for name in contenders:
                # A fresh simulator per run: every run meets a limiter with no history.
                with _runner.server(planned.server_flags, cores) as srv:
                    result = _runner.run_contender(
                        name,
                        scenario,
                        srv.base_url,
                        planned.n,
                        cores,
                        server_cpu=srv.cpu_seconds,
                        pace=_pace_for(name, planned.pace),
                        deadline=max(_zoo.DEADLINE_FACTOR * planned.seconds, _zoo.DEADLINE_MIN),
                    )
                    if not srv.alive():
                        raise RuntimeError(f"the simulator died: {srv.log_tail()}")
                result["round"] = round_index
                result["row"] = key
                runs.append(result)
                _log_run(scenario, result, round_index, rounds, planned)
    data["summary"] = _zoo.summarize(data["plans"], runs)
    return data


def _log_run(
    scenario: Scenario,
    result: dict[str, Any],
    index: int,
    rounds: int,
    planned: _zoo.Plan | None = None,
) -> None:
    row = f" {planned.row.key:<15}" if planned is not None else ""
    prefix = f"   [{scenario.name} {index}/{rounds}]{row} {result['contender']:<14}"
    if result.get("crashed"):
        _log(f"{prefix} CRASHED (exit {result.get('returncode')}): {result.get('stderr', '')}")
        return
    parts = [
        f"{result['leads_per_s']:>9,.0f} leads/s",
        f"ok {result['ok']}/{result['n']}",
        f"{result['elapsed']:.2f}s",
        f"cpu {result['cpu_us_per_lead']:.0f}us/lead",
        f"rss {result['peak_rss_mb']:.1f}MB",
    ]
    if result.get("server_util") is not None:
        parts.append(f"server {result['server_util']:.0%}")
    if scenario.retries:
        parts.append(f"429s {result['rate_limited']}/{result['requests']}")
    if planned is not None:
        numbers = _zoo.run_numbers(planned.row, planned.change_at, result)
        parts.insert(0, f"goodput {numbers['goodput']:.1%}")
        if numbers["tail_goodput"] is not None:
            parts.insert(1, f"tail {numbers['tail_goodput']:.1%}")
    if not result.get("intact"):
        parts.append(f"CHECK FAILED {result.get('errors')}")
    elif not result.get("passed"):
        parts.append(f"{result['failed']} id(s) failed: {result.get('errors')}")
    _log(f"{prefix} " + ", ".join(parts))


def run_profile(ns: argparse.Namespace, cores: _runner.Cores) -> int:
    """Scenario (a) once for one contender under pyinstrument; print the heaviest frames."""
    scenario = SCENARIOS["a"]
    name = ns.profile
    prefix = ns.output_dir / f"profile-{name}"
    n = _scaled(scenario.n_for(name, quick=ns.quick), ns.scale)
    _log(f"== profiling {name} in {scenario.title}, {n:,} leads")
    with _runner.server(scenario.server_flags, cores) as srv:
        result = _runner.run_contender(
            name, scenario, srv.base_url, n, cores, server_cpu=srv.cpu_seconds, profile=prefix
        )
    _log_run(scenario, result, 1, 1)
    if result.get("crashed"):
        return 1
    top = prefix.with_name(prefix.name + "-top.txt")
    written = [prefix.with_suffix(".html"), prefix.with_suffix(".txt"), top]
    _log("   wrote " + ", ".join(str(path) for path in written))
    print(f"Profile of {name}, scenario (a), {n:,} leads, under pyinstrument:")
    print(top.read_text(encoding="utf-8"))
    return 0


def _write_outputs(results: dict[str, Any], ns: argparse.Namespace) -> None:
    ns.output_dir.mkdir(parents=True, exist_ok=True)
    _report.write_json(results, ns.output_dir / "latest.json")
    _report.write_markdown(results, ns.output_dir / "latest.md")
    if not ns.no_chart:
        _report.write_chart(results, ns.output_dir / "latest.png")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite (or the profile) and write ``latest.json``, ``latest.md``, ``latest.png``."""
    ns = build_parser().parse_args(argv)
    cores = _runner.pick_cores(not ns.no_pin)
    if cores.server is not None:
        # This process mostly waits; keep it off the clients' core.
        os.sched_setaffinity(0, cores.server)
    if ns.profile is not None:
        return run_profile(ns, cores)
    if ns.report_only:
        results = json.loads((ns.output_dir / "latest.json").read_text(encoding="utf-8"))
        results["targets"] = _report.evaluate_targets(results)
        _write_outputs(results, ns)
        print(_report.render_tables(results))
        return 0
    rounds = ns.rounds if ns.rounds is not None else (2 if ns.quick else 5)
    started = time.time()
    results: dict[str, Any] = {
        "meta": {
            "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "command": shlex.join(
                ["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)]
            ),
            "rounds": rounds,
            "quick": ns.quick,
            "scale": ns.scale,
            "pinning": cores.describe(),
            "load_average_start": os.getloadavg(),
            "machine": machine_info(),
            "revision": sdk_revision(),
        },
        "scenarios": {},
    }
    for name in ns.scenarios:
        if name == "e":
            _log("== (e) micro benchmark")
            results["micro"] = _runner.run_micro(cores, quick=ns.quick)
            continue
        results["scenarios"][name] = _run_scenario(SCENARIOS[name], ns, cores, rounds)
    results["meta"]["duration_s"] = time.time() - started
    results["meta"]["load_average_end"] = os.getloadavg()
    results["targets"] = _report.evaluate_targets(results)
    _write_outputs(results, ns)
    print(_report.render_tables(results))
    print(
        f"\n{results['meta']['duration_s']:.0f} s; {cores.describe()}; "
        f"results in {ns.output_dir}/latest.{{json,md{'' if ns.no_chart else ',png'}}}"
    )
    failed = [
        run
        for name, data in results["scenarios"].items()
        if SCENARIOS[name].kind != "workers"
        for run in data["runs"]
        if not run.get("intact" if SCENARIOS[name].retries else "passed")
    ]
    workers = results["scenarios"].get("w", {}).get("summary", {})
    killed = workers.get("killed")
    failed += [row for row in workers.get("rows", ()) if "ids lost" in row["misses"]]
    if killed is not None and (killed["lost"] or killed["finished"] < _workers.WORKERS):
        failed.append(killed)
    if failed or results.get("micro", {}).get("crashed"):
        print(f"{len(failed)} run(s) failed their check or crashed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
