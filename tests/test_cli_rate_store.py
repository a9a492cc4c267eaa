"""``dialnexa-async fetch --rate-store redis://...``: several fetches splitting one input."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from dialnexa_async.cli import run
from dialnexa_async.testing import Simulator
from tests.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]

pytestmark = pytest.mark.integration

KEY = "key_cli:s3cret_cli_never_print_me"


async def test_two_fetches_splitting_one_input_share_one_rate_limit(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two fetches with ``--rate-limit 100`` on one store send 100 a second between them."""
    ids = [f"lead_{i}" for i in range(160)]
    halves = [ids[:80], ids[80:]]
    async with Simulator(api_key=KEY) as sim:
        monkeypatch.setenv("DIALNEXA_API_KEY", KEY)
        monkeypatch.setenv("DIALNEXA_BASE_URL", sim.base_url)
        argv = []
        for number, half in enumerate(halves):
            source = tmp_path / f"ids{number}.txt"
            source.write_text("\n".join(half) + "\n")
            output = str(tmp_path / f"out{number}.jsonl")
            argv.append(
                ["fetch", "--input", str(source), "--output", output, "--rate-limit", "100"]
            )
            argv[-1] += ["--rate-store", redis_server.url, "--no-progress"]
        started = time.monotonic()
        codes = await asyncio.gather(*(run(args) for args in argv))
        elapsed = time.monotonic() - started
    assert codes == [0, 0]
    for number, half in enumerate(halves):
        lines = (tmp_path / f"out{number}.jsonl").read_text().splitlines()
        assert sorted(json.loads(line)["id"] for line in lines) == sorted(half)
    assert elapsed >= (len(ids) - 2) / 100  # alone, each would take half as long
    assert all("key_cli" in key and "s3cret" not in key for key in redis_server.key_names())


async def test_a_rate_store_that_is_no_redis_url_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Exit 2, and the URL (which may hold a password) is not echoed back."""
    code = await run(["fetch", "--input", str(tmp_path / "x"), "--rate-store", "http://pw@host"])
    assert code == 2
    err = capsys.readouterr().err
    assert "redis://" in err
    assert "pw@host" not in err
