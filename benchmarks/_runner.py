"""Processes: the simulator, one subprocess per contender run, alternating rounds.

The simulator runs in its own process, pinned to the first allowed core; each contender run
and the micro benchmark get their own process, pinned to the second. Between two contender
runs nothing is shared but the simulator, whose CPU time is read from ``/proc`` around each
run to tell whether it, rather than the client, was the bottleneck.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ._scenarios import Scenario

__all__ = ["Cores", "Server", "pick_cores", "run_contender", "run_micro", "server"]

SERVER_START_TIMEOUT = 20.0
"""Seconds the simulator may take to print its "listening" line."""

SERVER_STOP_TIMEOUT = 5.0
"""Seconds between SIGTERM and SIGKILL for the simulator."""

PYTHON = sys.executable
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Cores:
    """Which cores the server and the clients are pinned to; ``None``: not pinned."""

    server: frozenset[int] | None
    client: frozenset[int] | None

    def describe(self) -> str:
        """One line for the report."""
        if self.server is None or self.client is None:
            return "not pinned"
        return f"server on core {sorted(self.server)}, clients on core {sorted(self.client)}"


def pick_cores(pin: bool) -> Cores:
    """Server on the first allowed core, clients on the second, when there are two."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return Cores(None, None)
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return Cores(None, None)
    return Cores(frozenset({allowed[0]}), frozenset({allowed[1]}))


def _pin(pid: int, cores: frozenset[int] | None) -> None:
    if cores is None:
        return
    # The child may already have exited; pinning is best effort.
    with contextlib.suppress(OSError):
        os.sched_setaffinity(pid, cores)


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of a live process, from ``/proc``; ``None`` if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The benchmarks package lives next to dialnexa_async at the repository root.
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Server:
    """A running simulator process."""

    def __init__(self, process: subprocess.Popen[str], base_url: str, log: IO[str]) -> None:
        self.process = process
        self.base_url = base_url
        self._log = log

    def cpu_seconds(self) -> float | None:
        """CPU seconds the simulator has used so far."""
        return process_cpu_seconds(self.process.pid)

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def log_tail(self, limit: int = 2000) -> str:
        """The end of what the simulator wrote to stderr."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()[-limit:]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


@contextmanager
def server(flags: Sequence[str], cores: Cores) -> Iterator[Server]:
    """Start ``python -m dialnexa_async.testing`` on a free port; stop it on exit."""
    # Closed by Server.stop(), which the finally below always reaches.
    log = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
    command = [
        PYTHON,
        "-m",
        "dialnexa_async.testing",
        "--host",
        "127.0.0.1",
        "--port",
        "0",  # the OS picks a free port; the "listening" line says which
        "--no-track-ids",
        *flags,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log, text=True, env=_env(), cwd=_root()
    )
    _pin(process.pid, cores.server)
    running = Server(process, "", log)
    try:
        running.base_url = _await_listening(process, log)
        yield running
    finally:
        running.stop()


def _root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def _await_listening(process: subprocess.Popen[str], log: IO[str]) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                break
            line = process.stdout.readline()
            if not line:
                break
            if "listening on " in line:
                return line.rsplit("listening on ", 1)[1].strip()
    process.kill()
    process.wait()
    log.seek(0)
    raise RuntimeError(f"the simulator did not start: {log.read()[-2000:]}")


def run_contender(
    name: str,
    scenario: Scenario,
    base_url: str,
    n: int,
    cores: Cores,
    *,
    server_cpu: Callable[[], float | None] | None = None,
    profile: Path | None = None,
    timeout: float | None = None,
    pace: float | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Run one contender in a fresh pinned subprocess and return its JSON result.

    A run that crashed or printed no JSON is returned as ``{"crashed": True, ...}`` with the
    end of its stderr, so one bad run does not end the suite. ``pace`` is the limit a paced
    contender is told, in requests per second.
    """
    command = [
        PYTHON,
        "-m",
        "benchmarks.contender",
        name,
        "--scenario",
        scenario.name,
        "--base-url",
        base_url,
        "--n",
        str(n),
        "--concurrency",
        str(scenario.concurrency),
    ]
    if profile is not None:
        command += ["--profile", str(profile)]
    if pace is not None:
        command += ["--pace", repr(pace)]
    if deadline is not None:
        command += ["--deadline", repr(deadline)]
    limit = timeout if timeout is not None else max(300.0, n / 50)
    before = server_cpu() if server_cpu is not None else None
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=_root(),
    )
    _pin(process.pid, cores.client)
    try:
        out, err = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        err += f"\n[benchmarks] killed after {limit:.0f}s"
    after = server_cpu() if server_cpu is not None else None
    result = _last_json(out)
    if result is None:
        return {
            "contender": name,
            "scenario": scenario.name,
            "n": n,
            "crashed": True,
            "passed": False,
            "returncode": process.returncode,
            "stderr": err[-2000:],
        }
    if before is not None and after is not None:
        result["server_cpu_s"] = after - before
        elapsed = result.get("elapsed") or 0.0
        result["server_util"] = (after - before) / elapsed if elapsed > 0 else None
    if err.strip():
        result["stderr"] = err[-2000:]
    return result


def run_micro(cores: Cores, *, quick: bool) -> dict[str, Any]:
    """Run ``benchmarks._micro`` in a pinned subprocess and return its JSON result."""
    command = [PYTHON, "-m", "benchmarks._micro"]
    if quick:
        command += ["--repeat", "3", "--min-time", "0.05"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=_root()
    )
    _pin(process.pid, cores.client)
    out, err = process.communicate(timeout=600)
    result = _last_json(out)
    if result is None:
        return {"crashed": True, "stderr": err[-2000:]}
    return result


def _last_json(out: str) -> dict[str, Any] | None:
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None
