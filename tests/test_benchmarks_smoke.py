"""Smoke runs of ``python -m benchmarks`` with tiny counts: the suite still works end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import _zoo

pytest.importorskip("httpx", reason="the bench extra is not installed")
pytest.importorskip("matplotlib", reason="the bench extra is not installed")
pytest.importorskip("uvloop", reason="the bench extra is not installed")

ROOT = Path(__file__).resolve().parent.parent

ZOO_ROWS = ("fw1-draft7-ra", "leaky50-draft6", "tb20-draft7-ra")
"""A tiny zoo: three limiters that answer with headers, so each run is short."""


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
    """A tiny run of (a) on both loops, (c2), (d) and (e) passes every check and writes it all."""
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
    assert set(a["summary"]) == {
        "sdk",
        "sdk-iter",
        "aiohttp",
        "httpx",
        "quick-sdk",
        "sdk@uvloop",
        "aiohttp@uvloop",
    }
    assert a["summary"]["aiohttp"]["ratio"] == pytest.approx(1.0)
    assert a["summary"]["aiohttp@uvloop"]["ratio"] == pytest.approx(1.0)
    assert {run["loop"] for run in a["runs"] if run["contender"].endswith("@uvloop")} == {"uvloop"}
    for run in a["runs"] + results["scenarios"]["c-bare"]["runs"]:
        assert run["passed"], run
        assert run["ok"] == run["n"]
        assert run["requests"] >= run["n"]
        assert run["peak_rss_mb"] > 0
    assert {run["n"] for run in results["scenarios"]["d"]["runs"]} == {300, 600}
    assert "sdk: decode_lead alone" in results["micro"]["cases"]
    assert {t["target"][:3] for t in results["targets"]} >= {"(a)", "(d)", "(e)"}
    assert "vs aiohttp" in done.stdout
    assert "on uvloop" in done.stdout


def test_zoo_runs_every_contender_per_row_and_lists_the_worst_row_first(tmp_path: Path) -> None:
    """A tiny zoo: each row runs once per contender, intact, and the table starts at the worst."""
    done = _benchmarks(
        "--quick",
        "--scale",
        "0.3",
        "--scenarios",
        "z",
        "--zoo-rows",
        ",".join(ZOO_ROWS),
        "--no-chart",
        "--output-dir",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    zoo = results["scenarios"]["z"]

    runs = zoo["runs"]
    assert sorted((run["row"], run["contender"]) for run in runs) == sorted(
        (row, contender) for row in ZOO_ROWS for contender in ("sdk", "aiohttp", "paced")
    )
    for run in runs:
        assert run["intact"], run
        assert run["ok"] + run["failed"] == run["n"]
        assert run["ok_timeline"][-1] == run["ok"]
    assert all(run["pace"] > 0 for run in runs if run["contender"] == "paced")
    assert not any("pace" in run for run in runs if run["contender"] != "paced")

    by_key = {row.key: row for row in _zoo.ROWS}
    margins = {}
    for run in runs:
        if run["contender"] == _zoo.JUDGED:
            row = by_key[run["row"]]
            numbers = _zoo.run_numbers(row, zoo["plans"][row.key]["change_at"], run)
            margins[row.key] = numbers["goodput"] - row.target
    worst = min(margins, key=margins.__getitem__)
    rows = zoo["summary"]["rows"]
    assert rows[0]["row"] == worst
    assert [entry["margin"] for entry in rows] == sorted(margins.values())
    table = (tmp_path / "latest.md").read_text().split("| # | row |", 1)[1]
    assert table.splitlines()[2].startswith(f"| 1 | {worst} |")
    assert any(t["target"].startswith("(z)") for t in results["targets"])


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
