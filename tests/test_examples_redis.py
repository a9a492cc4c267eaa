"""The worker examples run end to end: a real redis-server, the simulator, real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_workers_pull_ids_from_redis_and_write_each_result_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Three processes on one shared limit: one line per id, no id twice, none missing."""
    done = _run(
        "redis_workers.py", "--redis", redis_server.url, "--workers", "3", "--count", "300",
        "--simulate", "--rate-limit", "400", "--output", "out.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "0 missing, 0 unexpected" in done.stdout
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == [f"lead_{i:06d}" for i in range(300)]
    assert all(line["lead"]["id"] == line["id"] for line in lines)
    assert done.stdout.count(" written, ") == 3
    assert any(key.startswith("leads-job:{") for key in redis_server.key_names())


def test_one_process_does_the_same_job_with_its_rate_control_in_memory(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The lone process writes every result and leaves no shared rate state behind."""
    done = _run(
        "one_process.py", "--redis", redis_server.url, "--count", "200", "--simulate",
        "--rate-limit", "400", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "200 written" in done.stdout
    assert "0 missing" in done.stdout
    assert not any("{" in key for key in redis_server.key_names())
