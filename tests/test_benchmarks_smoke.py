"""Smoke runs of ``python -m benchmarks`` with tiny counts: the suite still works end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("httpx", reason="the bench extra is not installed")
pytest.importorskip("matplotlib", reason="the bench extra is not installed")

ROOT = Path(__file__).resolve().parent.parent


def _benchmarks(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_suite_runs_every_kind_of_scenario_and_writes_its_outputs(tmp_path: Path) -> None:
    """A tiny run of (a), (c2), (d) and (e) passes every contender's check and writes all files."""
    done = _benchmarks(
        "--quick",
        "--rounds",
        "1",
        "--scale",
        "0.05",
        "--scenarios",
        "a,c-bare,d,e",
        "--memory-sizes",
        "300,600",
        "--output-dir",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    assert (tmp_path / "latest.png").stat().st_size > 10_000
    assert "(a) no added latency" in (tmp_path / "latest.md").read_text()

    a = results["scenarios"]["a"]
    assert set(a["summary"]) == {"sdk", "sdk-iter", "aiohttp", "httpx", "quick-sdk"}
    assert a["summary"]["aiohttp"]["ratio"] == pytest.approx(1.0)
    for run in a["runs"] + results["scenarios"]["c-bare"]["runs"]:
        assert run["passed"], run
        assert run["ok"] == run["n"]
        assert run["requests"] >= run["n"]
        assert run["peak_rss_mb"] > 0
    assert {run["n"] for run in results["scenarios"]["d"]["runs"]} == {300, 600}
    assert "sdk: decode_lead alone" in results["micro"]["cases"]
    assert {t["target"][:3] for t in results["targets"]} >= {"(a)", "(d)", "(e)"}
    assert "vs aiohttp" in done.stdout


def test_profile_writes_html_text_and_the_heaviest_frames(tmp_path: Path) -> None:
    """``--profile sdk`` profiles scenario (a) and prints the heaviest frames."""
    pytest.importorskip("pyinstrument", reason="the bench extra is not installed")
    done = _benchmarks("--profile", "sdk", "--scale", "0.01", "--output-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "profile-sdk.html").stat().st_size > 0
    assert (tmp_path / "profile-sdk.txt").stat().st_size > 0
    assert (tmp_path / "profile-sdk-flat.txt").stat().st_size > 0
    assert "heaviest functions by self time" in done.stdout
    assert "dialnexa_async/" in (tmp_path / "profile-sdk-top.txt").read_text()
