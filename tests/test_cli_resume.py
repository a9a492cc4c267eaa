"""The CLI as a real process: stopped part-way (SIGINT, SIGTERM, SIGKILL), then resumed."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from dialnexa_async.testing import Simulator

pytestmark = pytest.mark.integration

KEY = "sk_resume_0123456789_never_print_me"
ROOT = Path(__file__).resolve().parents[1]
IDS = [f"missing_{i}" if i % 10 == 3 else f"lead_{i}" for i in range(300)]
STOP_AFTER = 40
"""Records on disk before the test stops the first run."""


async def start_cli(*argv: str, base_url: str) -> asyncio.subprocess.Process:
    """``python -m dialnexa_async ARGV`` with the key and base URL in its environment."""
    env = {**os.environ, "DIALNEXA_API_KEY": KEY, "DIALNEXA_BASE_URL": base_url}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dialnexa_async",
        *argv,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Wait for the process; return its status, stdout and stderr, checked for leaks."""
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    text_out, text_err = out.decode(), err.decode()
    assert KEY not in text_out + text_err
    assert "Traceback" not in text_err
    assert process.returncode is not None
    return process.returncode, text_out, text_err


def records(path: Path, fmt: str) -> list[str]:
    """The ids of a file's records, failing on a torn or invalid line."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    if fmt == "csv":
        return [row["id"] for row in csv.DictReader(io.StringIO(text))]
    return [json.loads(line)["id"] for line in text.splitlines()]


def line_count(path: Path) -> int:
    """Newlines in ``path`` so far; 0 before it exists."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def wait_for_records(path: Path, count: int) -> None:
    """Poll until ``path`` holds at least ``count`` lines."""
    for _ in range(1000):
        if line_count(path) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never reached {count} lines")


@pytest.mark.parametrize(
    ("signum", "fmt"),
    [
        (signal.SIGINT, "jsonl"),
        (signal.SIGTERM, "jsonl"),
        (signal.SIGKILL, "jsonl"),
        (signal.SIGKILL, "csv"),
    ],
    ids=["SIGINT-jsonl", "SIGTERM-jsonl", "SIGKILL-jsonl", "SIGKILL-csv"],
)
async def test_stopped_fetch_resumes_with_exactly_one_line_per_id(
    tmp_path: Path, signum: signal.Signals, fmt: str
) -> None:
    """A run stopped part-way leaves whole lines; rerunning fetches only the rest, once each."""
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(IDS + IDS[:20]) + "\n", encoding="utf-8")
    out, errs = tmp_path / f"leads.{fmt}", tmp_path / "errors.jsonl"
    argv = ("fetch", "--input", str(ids_file), "--output", str(out), "--errors", str(errs))
    async with Simulator(api_key=KEY, latency=0.02) as sim:
        first = await start_cli(*argv, "--concurrency", "4", base_url=sim.base_url)
        await wait_for_records(out, STOP_AFTER)
        first.send_signal(signum)
        code, _, err = await finish(first)
        settled = records(out, fmt) + records(errs, "jsonl")
        assert len(set(settled)) == len(settled)
        assert STOP_AFTER - (1 if fmt == "csv" else 0) <= len(settled) < len(IDS)
        assert set(settled) <= set(IDS)
        if signum == signal.SIGKILL:
            assert code == -signal.SIGKILL
            # SIGKILL cannot tear our single-write lines, so tear one by hand, as a full disk
            # or a crash of the machine would.
            with out.open("ab") as file:
                file.write(b'lead_torn,cmp_x,"+9' if fmt == "csv" else b'{"id":"lead_torn","ca')
        else:
            assert code == 128 + signum
            assert f"stopped by {signum.name} after " in err
            assert "run the same command again to fetch the rest" in err

        sim.stats.reset()
        second = await start_cli(*argv, base_url=sim.base_url)
        code, _, err = await finish(second)
        assert code == 1  # the missing_* ids failed
        if signum == signal.SIGKILL:
            assert "ended with an incomplete line" in err
        asked_again = sim.stats.attempts_by_id
        assert set(asked_again) == set(IDS) - set(settled)
        assert set(asked_again.values()) == {1}

    leads, failures = records(out, fmt), records(errs, "jsonl")
    assert sorted(leads + failures) == sorted(IDS)
    assert sorted(failures) == sorted(i for i in IDS if i.startswith("missing_"))


async def test_simulate_serves_until_sigint(tmp_path: Path) -> None:
    """``simulate --port 0`` announces its URL, answers the CLI, and exits 0 on Ctrl-C."""
    sim = await start_cli(
        "simulate", "--port", "0", "--api-key", KEY, "--rate-limit", "50", base_url="unused"
    )
    assert sim.stdout is not None
    line = (await asyncio.wait_for(sim.stdout.readline(), timeout=15)).decode()
    assert line.startswith("DialNexa simulator listening on http://127.0.0.1:")
    base_url = line.split()[-1]
    try:
        get = await start_cli("get", "lead_abc123", "missing_1", base_url=base_url)
        code, out, err = await finish(get)
        assert code == 1
        assert json.loads(out)["id"] == "lead_abc123"
        assert err == "missing_1: NotFoundError 404: Lead not found\n"
    finally:
        sim.send_signal(signal.SIGINT)
        out_rest, err_rest = await asyncio.wait_for(sim.communicate(), timeout=15)
    assert sim.returncode == 0
    # The key the simulator was given is the user's: it is not echoed back.
    assert KEY not in line + out_rest.decode() + err_rest.decode()
