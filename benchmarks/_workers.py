"""Scenario (w), many workers: a fleet of processes on one API key, sharing one limit or not.

Each run starts a fresh simulator (one limiter, as in the zoo), a fresh ``redis-server`` when
the fleet shares through Redis, and ``WORKERS`` processes (``benchmarks.worker``), each
fetching its own ``IDS_PER_WORKER`` ids told nothing about the limit. They start together on a
go line. Every row runs twice, the rate store in Redis and in memory, side by side, so the
table shows what sharing saves. Then:

- **Redis killed mid-run:** the first row again, Redis killed ``KILL_AT`` into the run and
  started again (empty) ``RESTART_AT`` in: no id may be lost and every process must finish.
- **Overhead:** one process, no limit, ``OVERHEAD_IDS`` ids, in memory and through Redis in
  alternating rounds: the leads/s the store costs when nothing is throttled. Once with no
  rate-limit headers (the client syncs once per ``REFRESH``) and once with headers on every
  answer that never run out (each request syncs once, for its place in the window budget).

Goodput is the zoo's: ``ok / (B + L * t)`` over the fleet's span, from the first worker's
start to the last one's end, summed over workers.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import time
from collections.abc import Iterator, Mapping
from typing import Any

from . import _runner
from ._redis import RedisServer, redis_binary
from ._zoo import ZooRow

__all__ = [
    "IDS_PER_WORKER",
    "MAX_OVERHEAD",
    "ROWS",
    "WORKERS",
    "fleet_numbers",
    "run",
    "summarize",
    "table_lines",
    "targets",
]

WORKERS = 4
"""Processes in a fleet."""

IDS_PER_WORKER = 5_000
"""Ids each worker fetches in a default run (``--quick``: ``QUICK_IDS_PER_WORKER``)."""

QUICK_IDS_PER_WORKER = 500

RATE = 500
"""The limit, in requests per second: 20,000 ids take a perfect fleet 40 s."""

BURST = 50
"""The token bucket's depth: a tenth of a second of the limit."""

KILL_AT = 0.25
"""Redis is killed this share of a perfect fleet's time into the killed run."""

RESTART_AT = 0.5
"""And started again, empty, at this share."""

OVERHEAD_IDS = 20_000
OVERHEAD_QUICK_IDS = 3_000
OVERHEAD_ROUNDS = 3
OVERHEAD_CONCURRENCY = 64

MAX_OVERHEAD = 0.10
"""Leads/s the Redis store may cost on the unthrottled hot path, as a share."""

STORE_TIMEOUT: float | None = None
"""The workers' ``RedisRateStore(timeout=)``; ``None``: the SDK's default."""

WORKER_TIMEOUT = 300.0
"""Seconds a worker may run before it is killed and its run reported crashed."""

STORES = ("redis", "memory")

ROWS: tuple[ZooRow, ...] = (
    ZooRow("fw-xrl", "fixed-window", limit=RATE, dialect="x-ratelimit", retry_after=True),
    ZooRow("fw-bare", "fixed-window", limit=RATE, body="html"),
    ZooRow(
        "tb-xrl", "token-bucket", limit=RATE, burst=BURST, dialect="x-ratelimit", retry_after=True
    ),
    ZooRow("tb-bare", "token-bucket", limit=RATE, burst=BURST, body="html"),
)
"""Window and token bucket, each with headers and Retry-After and with bare 429s."""

KILLED_ROW = ROWS[0]

_HEADERS_UNTHROTTLED = ("--rate-limit", "1000000", "--rate-window", "1")
"""A limit never reached: every answer states a window budget, none is ever spent."""


# --- running ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _redis(cores: _runner.Cores) -> Iterator[RedisServer]:
    binary = redis_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server")
    server = RedisServer(binary)
    server.start()
    assert server.process is not None
    del cores  # unpinned: on the simulator's core it would wait for it, which no deployment does
    try:
        yield server
    finally:
        server.stop()


def _fleet(
    base_url: str,
    cores: _runner.Cores,
    *,
    workers: int,
    per_worker: int,
    concurrency: int = 64,
    redis: RedisServer | None = None,
    outage: tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """Start the workers, let them go together, and collect their JSON lines.

    Args:
        outage: ``(kill, restart)`` seconds after the go line to kill Redis and start it again.
    """
    processes = []
    for number in range(workers):
        command = [_runner.PYTHON, "-m", "benchmarks.worker", "--base-url", base_url]
        command += ["--first", str(number * per_worker), "--n", str(per_worker)]
        command += ["--concurrency", str(concurrency)]
        if redis is not None:
            command += ["--rate-store", redis.url]
            if STORE_TIMEOUT is not None:
                command += ["--store-timeout", repr(STORE_TIMEOUT)]
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_runner._env(),
            cwd=_runner._root(),
        )
        processes.append(process)  # unpinned: one core for four would starve their loops
    results: list[dict[str, Any]] = []
    try:
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("a worker did not start")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        if outage is not None and redis is not None:
            time.sleep(outage[0])
            redis.kill()
            time.sleep(outage[1] - outage[0])
            redis.start()
        for number, process in enumerate(processes):
            try:
                out, err = process.communicate(timeout=WORKER_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            line = next((x for x in reversed(out.splitlines()) if x.startswith("{")), None)
            if line is None:
                results.append({"worker": number, "crashed": True, "stderr": err[-2000:]})
            else:
                result = json.loads(line)
                result["worker"] = number
                if "WARNING" in err or "unavailable" in err:
                    result["stderr"] = err[-1000:]
                results.append(result)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def _run_row(
    row: ZooRow, store: str, cores: _runner.Cores, per_worker: int, *, killed: bool = False
) -> dict[str, Any]:
    seconds = (WORKERS * per_worker - row.credit) / row.rate
    outage = (KILL_AT * seconds, RESTART_AT * seconds) if killed else None
    with _runner.server(row.server_flags(None), cores) as srv, contextlib.ExitStack() as stack:
        redis = stack.enter_context(_redis(cores)) if store == "redis" else None
        started = time.monotonic()
        workers = _fleet(
            srv.base_url,
            cores,
            workers=WORKERS,
            per_worker=per_worker,
            redis=redis,
            outage=outage,
        )
        wall = time.monotonic() - started
    return {
        "row": row.key,
        "store": store,
        "killed": killed,
        "outage": outage,
        "per_worker": per_worker,
        "wall_s": wall,
        "workers": workers,
    }


def _run_overhead(
    cores: _runner.Cores, n: int, rounds: int, *, headers: bool, log: Any
) -> dict[str, Any]:
    flags = _HEADERS_UNTHROTTLED if headers else ()
    runs: list[dict[str, Any]] = []
    with _runner.server(flags, cores) as srv:
        for round_index in range(1, rounds + 1):
            for store in STORES[::-1]:  # memory first in each round
                with contextlib.ExitStack() as stack:
                    redis = stack.enter_context(_redis(cores)) if store == "redis" else None
                    (result,) = _fleet(
                        srv.base_url,
                        cores,
                        workers=1,
                        per_worker=n,
                        concurrency=OVERHEAD_CONCURRENCY,
                        redis=redis,
                    )
                result["round"] = round_index
                runs.append(result)
                log(
                    f"   [w overhead{' headers' if headers else ''} {round_index}/{rounds}] "
                    f"{store:<6} {result.get('leads_per_s', 0):>8,.0f} leads/s, "
                    f"syncs {result.get('store_syncs')}"
                )
    return {"headers": headers, "n": n, "runs": runs}


def run(cores: _runner.Cores, *, quick: bool, scale: float, log: Any) -> dict[str, Any]:
    """Every row with both stores, the killed run, and the overhead runs."""
    per_worker = max(1, round((QUICK_IDS_PER_WORKER if quick else IDS_PER_WORKER) * scale))
    runs = []
    for row in ROWS:
        for store in STORES:
            result = _run_row(row, store, cores, per_worker)
            runs.append(result)
            log(_describe(row, result))
    killed = _run_row(KILLED_ROW, "redis", cores, per_worker, killed=True)
    log(_describe(KILLED_ROW, killed))
    n = max(1, round((OVERHEAD_QUICK_IDS if quick else OVERHEAD_IDS) * scale))
    rounds = 1 if quick else OVERHEAD_ROUNDS
    overhead = [
        _run_overhead(cores, n, rounds, headers=headers, log=log) for headers in (False, True)
    ]
    data = {
        "title": "(w) many workers: 4 processes on one key, rate control shared or not",
        "kind": "workers",
        "rounds": 1,
        "workers": WORKERS,
        "per_worker": per_worker,
        "rate": RATE,
        "runs": runs,
        "killed": killed,
        "overhead": overhead,
    }
    data["summary"] = summarize(data)
    return data


def _describe(row: ZooRow, result: Mapping[str, Any]) -> str:
    numbers = fleet_numbers(row, result)
    killed = " (Redis killed)" if result["killed"] else ""
    return (
        f"   [w] {row.key:<8} {result['store']:<6}{killed} goodput {_pct(numbers['goodput'])}, "
        f"429s {_pct(numbers['share_429'])}, lost {numbers['lost']}, failed "
        f"{numbers['failed']}, {numbers['elapsed']:.1f}s, finished "
        f"{numbers['finished']}/{WORKERS}, store outages {numbers['store_outages']} "
        f"({numbers['store_failures']} failed syncs of {numbers['store_syncs']})"
    )


# --- numbers ---------------------------------------------------------------------------------


def fleet_numbers(row: ZooRow, result: Mapping[str, Any]) -> dict[str, Any]:
    """Goodput and 429 share of a whole fleet, and what it lost."""
    done = [w for w in result["workers"] if not w.get("crashed")]
    finished = len(done)
    asked = result["per_worker"] * WORKERS
    if not done:
        return {
            "goodput": None,
            "share_429": None,
            "lost": asked,
            "failed": 0,
            "elapsed": 0.0,
            "finished": 0,
            "store_failures": None,
            "store_outages": None,
            "store_syncs": None,
        }
    elapsed = max(w["ended"] for w in done) - min(w["started"] for w in done)
    ok = sum(w["ok"] for w in done)
    requests = sum(w["requests"] for w in done)
    limited = sum(w["rate_limited"] for w in done)
    failures = [w["store_failures"] for w in done if w.get("store_failures") is not None]
    outages = [w["store_outages"] for w in done if w.get("store_outages") is not None]
    syncs = [w["store_syncs"] for w in done if w.get("store_syncs") is not None]
    crashed_ids = (WORKERS - finished) * result["per_worker"]
    return {
        "goodput": ok / row.capacity(elapsed, None),
        "share_429": limited / requests if requests else None,
        "lost": sum(w["missing"] + w["mismatched"] for w in done) + crashed_ids,
        "failed": sum(w["failed"] for w in done),
        "elapsed": elapsed,
        "finished": finished,
        "requests": requests,
        "store_failures": sum(failures) if failures else None,
        "store_outages": sum(outages) if outages else None,
        "store_syncs": sum(syncs) if syncs else None,
    }


def _overhead_numbers(entry: Mapping[str, Any]) -> dict[str, Any]:
    medians: dict[str, float | None] = {}
    syncs: dict[str, float | None] = {}
    for store in STORES:
        mine = [r for r in entry["runs"] if r.get("store") == store and not r.get("crashed")]
        rates = [r["leads_per_s"] for r in mine]
        medians[store] = statistics.median(rates) if rates else None
        per = [r["store_syncs"] / r["requests"] for r in mine if r.get("store_syncs") is not None]
        syncs[store] = statistics.median(per) if per else None
    memory, redis = medians["memory"], medians["redis"]
    cost = None if not memory or redis is None else 1 - redis / memory
    return {
        "headers": entry["headers"],
        "n": entry["n"],
        "rounds": len(entry["runs"]) // len(STORES),
        "memory": memory,
        "redis": redis,
        "overhead": cost,
        "syncs_per_request": syncs["redis"],
    }


def summarize(data: Mapping[str, Any]) -> dict[str, Any]:
    """Per row, both stores' fleet numbers and what the shared one misses; the killed run;
    the overhead."""
    by_key = {row.key: row for row in ROWS}
    rows = []
    for row in ROWS:
        stores = {}
        for result in data["runs"]:
            if result["row"] == row.key:
                stores[result["store"]] = fleet_numbers(row, result)
        shared = stores.get("redis")
        misses = []
        if shared is not None:
            if shared["goodput"] is None or shared["goodput"] < row.target:
                misses.append(f"goodput < {row.target:.0%}")
            if shared["share_429"] is not None and shared["share_429"] > row.max_429:
                misses.append(f"429s > {row.max_429:.0%}")
            if shared["lost"] or shared["finished"] < WORKERS:
                misses.append("ids lost")
        rows.append(
            {
                "row": row.key,
                "limiter": row.describe_limiter(),
                "answers": row.describe_answers(),
                "target": row.target,
                "max_429": row.max_429,
                "stores": stores,
                "misses": misses,
            }
        )
    killed = data.get("killed")
    killed_numbers = None
    if killed is not None:
        killed_numbers = fleet_numbers(by_key[killed["row"]], killed)
        killed_numbers["outage"] = killed["outage"]
        killed_numbers["row"] = killed["row"]
    return {
        "per_worker": data["per_worker"],
        "rows": rows,
        "killed": killed_numbers,
        "overhead": [_overhead_numbers(entry) for entry in data.get("overhead", ())],
    }


def targets(summary: Mapping[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """The issue's targets: ``(name, wanted, measured, met)``."""
    found = []
    for row in summary["rows"]:
        shared = row["stores"].get("redis")
        if shared is None:
            continue
        found.append(
            (
                f"(w) {row['row']}: {row['limiter']}, {row['answers']}, shared through Redis",
                f">= {row['target']:.0%} of the limit, 429s <= {row['max_429']:.0%}",
                f"goodput {_pct(shared['goodput'])}, 429s {_pct(shared['share_429'])}",
                not row["misses"],
            )
        )
    killed = summary.get("killed")
    if killed is not None:
        found.append(
            (
                "(w) Redis killed mid-run",
                "no id lost, every process finishes",
                f"lost {killed['lost']}, {killed['finished']}/{WORKERS} finished",
                killed["lost"] == 0 and killed["finished"] == WORKERS,
            )
        )
    for entry in summary.get("overhead", ()):
        if entry["headers"]:
            continue  # the target is the unthrottled hot path; the headers line is shown
        cost = entry["overhead"]
        found.append(
            (
                "(w) Redis store on the unthrottled hot path",
                f"<= {MAX_OVERHEAD:.0%} of get_leads leads/s in memory",
                f"{_pct(cost)} ({_rate(entry['redis'])} vs {_rate(entry['memory'])} leads/s)",
                None if cost is None else cost <= MAX_OVERHEAD,
            )
        )
    return found


# --- text ------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table_lines(summary: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The scenario's tables: ``(note, header, rows)`` each, for ``_report`` to render."""
    header = ["row", "limiter", "429s say", "target"]
    for store in STORES:
        name = "shared (Redis)" if store == "redis" else "each alone (memory)"
        header += [f"{name} goodput", f"{name} 429s", f"{name} lost/failed", f"{name} time"]
    header += ["Redis outages seen", "misses"]
    rows = []
    for row in summary["rows"]:
        cells = [row["row"], row["limiter"], row["answers"], _pct(row["target"])]
        for store in STORES:
            numbers = row["stores"].get(store)
            if numbers is None:
                cells += ["-"] * 4
                continue
            cells += [
                _pct(numbers["goodput"]),
                _pct(numbers["share_429"]),
                f"{numbers['lost']}/{numbers['failed']}",
                f"{numbers['elapsed']:.1f} s",
            ]
        outages = row["stores"].get("redis", {}).get("store_outages")
        cells += ["-" if outages is None else str(outages), "; ".join(row["misses"]) or "-"]
        rows.append(cells)
    tables = [
        (
            f"{WORKERS} processes x {summary['per_worker']:,} ids, each told nothing; goodput = "
            "ok / (B + L t) over the fleet's span, 429s over all its requests.",
            header,
            rows,
        )
    ]
    killed = summary.get("killed")
    if killed is not None:
        kill, restart = killed["outage"]
        tables.append(
            (
                f"Redis killed {kill:.1f} s into a run of row {killed['row']} and started again "
                f"(empty) at {restart:.1f} s:",
                ["goodput", "429s", "lost/failed", "processes finished", "outages seen", "time"],
                [
                    [
                        _pct(killed["goodput"]),
                        _pct(killed["share_429"]),
                        f"{killed['lost']}/{killed['failed']}",
                        f"{killed['finished']}/{WORKERS}",
                        str(killed["store_outages"]),
                        f"{killed['elapsed']:.1f} s",
                    ]
                ],
            )
        )
    overhead = summary.get("overhead", ())
    if overhead:
        tables.append(
            (
                "The store on the unthrottled hot path: one process, no limit, get_leads "
                "(medians of alternating rounds):",
                ["answers", "ids", "rounds", "in memory", "Redis", "cost", "syncs per request"],
                [
                    [
                        "x-ratelimit headers, never spent" if e["headers"] else "no headers",
                        f"{e['n']:,}",
                        str(e["rounds"]),
                        f"{_rate(e['memory'])} leads/s",
                        f"{_rate(e['redis'])} leads/s",
                        _pct(e["overhead"]),
                        "-" if e["syncs_per_request"] is None else f"{e['syncs_per_request']:.3f}",
                    ]
                    for e in overhead
                ],
            )
        )
    return tables
