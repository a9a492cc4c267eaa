"""The README's Python examples run as written against the local simulator."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _python_blocks() -> dict[str, str]:
    """Each ```python block of the README, keyed by the heading it stands under."""
    blocks: dict[str, str] = {}
    heading = ""
    for part in re.split(r"(^## .*$)", README.read_text(encoding="utf-8"), flags=re.M):
        if part.startswith("## "):
            heading = part[3:].strip()
            continue
        for index, code in enumerate(re.findall(r"```python\n(.*?)```", part, flags=re.S)):
            blocks[f"{heading}#{index}"] = code
    return blocks


BLOCKS = _python_blocks()


@pytest.mark.integration
def test_bulk_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The bulk example fetches 2,000 ids from the simulator and prints how many were found."""
    exec(compile(BLOCKS["Bulk lookups#0"], "README bulk example", "exec"), {})
    out = capsys.readouterr().out
    found = int(out.splitlines()[0].split()[0])
    assert found == 1800


@pytest.mark.integration
def test_testing_example_runs() -> None:
    """The 'testing your own code' example without the fixtures is a working test."""
    namespace: dict[str, Any] = {}
    exec(compile(BLOCKS["Testing your own code#1"], "README testing example", "exec"), namespace)
    asyncio.run(namespace["test_my_sync"]())


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_users_test_file_passes_under_pytest(pytester: pytest.Pytester, mode: str) -> None:
    """The README's test file, as written, passes with the plugin in either asyncio mode."""
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_users_code=BLOCKS["Testing your own code#0"])
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_every_python_block_compiles() -> None:
    """No README example has a syntax error."""
    assert len(BLOCKS) >= 4
    for name, code in BLOCKS.items():
        compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize(
    ("heading", "example"),
    [("Using it in a service", "service.py"), ("Using it in a worker", "worker.py")],
)
def test_service_and_worker_sections_are_the_example_files(heading: str, example: str) -> None:
    """The README shows examples/*.py byte for byte, so the programs tests/test_examples.py
    runs are the ones users read."""
    assert BLOCKS[f"{heading}#0"] == (ROOT / "examples" / example).read_text(encoding="utf-8")
