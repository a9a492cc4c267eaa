"""What ``Simulator()`` takes: typed options (a typo fails twice) and the client's clock."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import time
import typing
from email.utils import formatdate
from pathlib import Path

import aiohttp
import pytest

import dialnexa_async as dnx
from dialnexa_async.testing import Simulator, SimulatorConfig, SimulatorOptions

# Options typed wider than their config field because users write them as sets and lists;
# the config freezes them.
WIDENED = {
    "forbidden_keys": "AbstractSet[str]",
    "known_ids": "AbstractSet[str] | None",
    "limit_schedule": "Sequence[tuple[float, float]]",
    "error_statuses": "Sequence[int]",
}


def _annotation(value: object) -> str:
    """An annotation as written, whether kept as a string or wrapped in a ForwardRef."""
    return value.__forward_arg__ if isinstance(value, typing.ForwardRef) else str(value)


def test_options_name_every_config_field_but_the_clock_with_its_type() -> None:
    """``SimulatorOptions`` cannot drift from ``SimulatorConfig``: same names, same types."""
    config_types = {f.name: _annotation(f.type) for f in dataclasses.fields(SimulatorConfig)}
    option_types = {k: _annotation(v) for k, v in SimulatorOptions.__annotations__.items()}
    assert set(option_types) == set(config_types) - {"clock"}
    for name, written in option_types.items():
        assert written == WIDENED.get(name, config_types[name]), name


def test_a_misspelt_option_is_a_type_error_naming_the_right_one() -> None:
    """``rate_limitt=5`` raises at once, with a suggestion; so does a name nothing is near."""
    with pytest.raises(TypeError, match=r"'rate_limitt' \(did you mean 'rate_limit'\?\)"):
        Simulator(rate_limitt=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"unexpected option 'zzz'$"):
        Simulator(zzz=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="limiter must be one of"):
        Simulator(limiter="tokenbucket")  # type: ignore[arg-type]


def test_a_misspelt_option_is_a_mypy_error(tmp_path: Path) -> None:
    """Under ``mypy --strict`` a wrong option name or value fails, a right one passes."""
    source = tmp_path / "user_test.py"
    source.write_text(
        textwrap.dedent(
            """\
            import dialnexa_async as dnx
            from dialnexa_async.testing import Simulator

            Simulator(rate_limit=5, known_ids={"a"}, clock=dnx.VirtualClock())
            Simulator(rate_limitt=5)
            Simulator(limiter="tokenbucket")
            Simulator(rate_limit="5")
            """
        )
    )
    command = [
        *(sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--hide-error-context"),
        *("--cache-dir", str(tmp_path / "cache"), str(source)),
    ]
    run = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    errors = sorted(line.split(":")[1] for line in run.stdout.splitlines() if ": error:" in line)
    assert errors == ["5", "6", "7"], run.stdout + run.stderr
    assert 'did you mean "rate_limit"' in run.stdout


async def test_a_virtual_clock_shared_with_a_rate_limited_simulator() -> None:
    """30 calls one after another under a 5-per-second limit all succeed in virtual time.

    Without the simulator on the client's clock, the client's waits take no real time while
    the window lasts a real second, and 25 of the 30 calls fail.
    """
    clock = dnx.VirtualClock()
    started = time.monotonic()
    async with (
        Simulator(rate_limit=5, clock=clock) as sim,
        dnx.AsyncDialNexa(api_key="sk_test", base_url=sim.base_url, clock=clock) as client,
    ):
        leads = [await client.get_lead(f"lead_{i}") for i in range(30)]
    assert [lead.id for lead in leads] == [f"lead_{i}" for i in range(30)]
    assert sim.stats.by_status[200] == 30
    assert clock.monotonic() >= 5.0, "30 requests at 5 per second take 5 virtual seconds"
    assert time.monotonic() - started < 5.0


async def test_the_clock_object_also_dates_retry_after() -> None:
    """An HTTP-date ``Retry-After`` is read off the clock object's ``time()``."""
    clock = dnx.VirtualClock(start=1_000_000_000.0)
    clock.advance(100.0)
    async with (
        Simulator(rate_limit=1, rate_window=10.0, retry_after_date=True, clock=clock) as sim,
        aiohttp.ClientSession(headers={"Authorization": "Bearer sk_test"}) as session,
    ):
        url = f"{sim.base_url}/campaigns-leads/lead_1"
        async with session.get(url) as first:
            assert first.status == 200
        async with session.get(url) as refused:
            assert refused.status == 429
            assert refused.headers["Retry-After"] == formatdate(1_000_000_110.0, usegmt=True)


def test_a_plain_callable_sets_only_the_limiters_clock() -> None:
    """The older form, a monotonic callable, still works and leaves the wall clock alone."""

    def now() -> float:
        return 42.0

    config = SimulatorConfig()
    sim = Simulator(config, clock=now)
    assert sim.config.clock is now
    assert sim.config.wall_clock is time.time
    assert config.clock is time.monotonic, "the base config is not changed"
    assert Simulator(config).config is config, "without options the config is used live"


def test_a_clock_object_and_a_wall_clock_together_are_refused() -> None:
    """Two sources for the wall-clock time would be ambiguous; a non-clock is refused too."""
    with pytest.raises(TypeError, match="wall_clock"):
        Simulator(clock=dnx.VirtualClock(), wall_clock=time.time)
    with pytest.raises(TypeError, match="monotonic"):
        Simulator(clock=5)  # type: ignore[arg-type]
