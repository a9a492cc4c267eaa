"""The pytest plugin: loaded by its entry point, opt-in by fixture name, in either asyncio mode."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

import dialnexa_async.pytest_plugin as plugin

ENTRY_POINT = "dialnexa_async"

STRICT = "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
AUTO = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"

USER_TEST = """
import pytest

import dialnexa_async as dnx
from dialnexa_async.testing import Reply, Simulator, SimulatorOptions


@pytest.fixture
def dialnexa_simulator_options() -> SimulatorOptions:
    return {"rate_limit": 2, "leads": {"lead_1": {"status": "failed"}}}


@pytest.mark.asyncio
async def test_mine(
    dialnexa_simulator: Simulator,
    dialnexa_client: dnx.AsyncDialNexa,
    dialnexa_clock: dnx.VirtualClock,
) -> None:
    dialnexa_simulator.script("lead_2", Reply(status=503, times=2))
    leads = [await dialnexa_client.get_lead(i) for i in ("lead_1", "lead_2", "lead_3")]
    assert [lead.id for lead in leads] == ["lead_1", "lead_2", "lead_3"]
    assert leads[0].status == "failed"
    assert dialnexa_simulator.stats.attempts_by_id["lead_2"] >= 3
    assert dialnexa_clock.monotonic() > 0
"""

PLAIN_TEST = """
import json
from pathlib import Path


def test_plain(request):
    Path("fixtures.json").write_text(json.dumps(sorted(request.fixturenames)))
"""


def run(pytester: pytest.Pytester, ini: str, *args: str) -> pytest.RunResult:
    """Run pytest in-process in the pytester directory with the given ini."""
    pytester.makeini(ini)
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_the_entry_point_names_the_plugin_module() -> None:
    """Installing the package registers ``dialnexa_async.pytest_plugin`` under ``pytest11``."""
    points = importlib.metadata.entry_points(group="pytest11")
    ours = [p for p in points if p.name == ENTRY_POINT]
    assert [p.value for p in ours] == ["dialnexa_async.pytest_plugin"]
    assert ours[0].load() is plugin


@pytest.mark.parametrize(
    ("ini", "marker"), [(STRICT, "@pytest.mark.asyncio"), (AUTO, "")], ids=["strict", "auto"]
)
def test_a_user_test_file_passes_in_either_asyncio_mode(
    pytester: pytest.Pytester, ini: str, marker: str
) -> None:
    """The fixtures work in strict mode (marked test) and auto mode, with no conftest at all."""
    pytester.makepyfile(test_user=USER_TEST.replace("@pytest.mark.asyncio", marker))
    result = run(pytester, ini)
    result.assert_outcomes(passed=1)


def test_without_the_plugin_the_fixtures_do_not_exist(pytester: pytest.Pytester) -> None:
    """``-p no:dialnexa_async`` turns it off: the fixtures came from the entry point."""
    pytester.makepyfile(test_user=USER_TEST)
    result = run(pytester, STRICT, "-p", f"no:{ENTRY_POINT}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'dialnexa_simulator' not found*"])


def test_a_plain_suite_sees_no_fixture_option_or_hook_of_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    """With or without the plugin, a test that names no fixture gets the same ones (so none
    is autouse) and ``--help`` is the same (no option); the module defines no hook."""
    pytester.makepyfile(test_plain=PLAIN_TEST)
    seen = []
    helps = []
    for extra in ((), ("-p", f"no:{ENTRY_POINT}")):
        run(pytester, STRICT, *extra).assert_outcomes(passed=1)
        seen.append(json.loads((pytester.path / "fixtures.json").read_text()))
        helps.append(run(pytester, STRICT, "--help", *extra).outlines)
    assert seen[0] == seen[1]
    assert "request" in seen[0]
    assert helps[0] == helps[1]
    assert not [name for name in vars(plugin) if name.startswith("pytest_")]


def test_the_simulator_options_fixture_can_be_parametrized(pytester: pytest.Pytester) -> None:
    """Parametrizing ``dialnexa_simulator_options`` runs the same test on each simulator."""
    pytester.makepyfile(
        test_params="""
import pytest

import dialnexa_async as dnx


@pytest.mark.parametrize(
    "dialnexa_simulator_options", [{"error_rate": 1.0}, {"api_key": "sk_other"}]
)
@pytest.mark.asyncio
async def test_each(dialnexa_simulator, dialnexa_client):
    if dialnexa_simulator.config.error_rate:
        with pytest.raises(dnx.InternalServerError):
            await dialnexa_client.get_lead("lead_1")
    else:
        assert (await dialnexa_client.get_lead("lead_1")).id == "lead_1"
"""
    )
    run(pytester, STRICT).assert_outcomes(passed=2)
