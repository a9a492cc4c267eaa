"""pytest fixtures for testing code that uses dialnexa_async; a test opts in by naming one.

Installing the package registers this module with pytest (entry point ``dialnexa_async``
in the ``pytest11`` group). It defines fixtures only: no hook, no command-line option,
nothing autouse, so a suite that names none of them runs exactly as before. ``-p
no:dialnexa_async`` turns it off.

- ``dialnexa_clock``: a fresh ``dialnexa_async.VirtualClock``.
- ``dialnexa_simulator``: a ``dialnexa_async.testing.Simulator`` running on loopback, its
  rate limiter on ``dialnexa_clock``, built from ``dialnexa_simulator_options``.
- ``dialnexa_simulator_options``: the ``SimulatorOptions`` it is built from, ``{}`` here;
  override the fixture (or parametrize it) to set a rate limit, faults, preloaded leads...
- ``dialnexa_client``: an ``AsyncDialNexa`` bound to that simulator, waiting on
  ``dialnexa_clock`` (retry waits and cooldowns take no real time), closed after the test.
- ``dialnexa_aioresponses``: a started ``dialnexa_async.testing.aioresponses`` (needs the
  aioresponses package), for unit tests that mock HTTP instead.

The async fixtures are pytest-asyncio fixtures, so they work in its strict mode (the
default: mark the tests ``@pytest.mark.asyncio``) as in ``asyncio_mode = "auto"``. They run
on the loop of the test, whose scope is the default ``function``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

from ._client import AsyncDialNexa
from ._clock import VirtualClock
from .testing import Simulator, SimulatorOptions

if TYPE_CHECKING:
    from .testing._aioresponses import aioresponses

__all__ = [
    "dialnexa_aioresponses",
    "dialnexa_client",
    "dialnexa_clock",
    "dialnexa_simulator",
    "dialnexa_simulator_options",
]

# The key a client of the simulator sends when the simulator accepts any key.
_ANY_KEY = "sk_test"

try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - without pytest-asyncio no async fixture can run
    # Plain fixtures then: pytest itself reports that an async fixture needs a plugin.
    _async_fixture = pytest.fixture  # type: ignore[assignment]


@pytest.fixture
def dialnexa_clock() -> VirtualClock:
    """A clock on which every wait is instant and recorded, shared by simulator and client."""
    return VirtualClock()


@pytest.fixture
def dialnexa_simulator_options() -> SimulatorOptions:
    """Options ``dialnexa_simulator`` is built from; override this fixture to change them."""
    return {}


@_async_fixture
async def dialnexa_simulator(
    dialnexa_clock: VirtualClock, dialnexa_simulator_options: SimulatorOptions
) -> AsyncIterator[Simulator]:
    """The simulated API on a loopback port, rate-limiting on ``dialnexa_clock``."""
    async with Simulator(clock=dialnexa_clock, **dialnexa_simulator_options) as simulator:
        yield simulator


@_async_fixture
async def dialnexa_client(
    dialnexa_simulator: Simulator, dialnexa_clock: VirtualClock
) -> AsyncIterator[AsyncDialNexa]:
    """A client of ``dialnexa_simulator`` with its key, waiting on ``dialnexa_clock``."""
    key = dialnexa_simulator.config.api_key or _ANY_KEY
    async with AsyncDialNexa(
        api_key=key, base_url=dialnexa_simulator.base_url, clock=dialnexa_clock
    ) as client:
        yield client


@pytest.fixture
def dialnexa_aioresponses() -> Iterator[aioresponses]:
    """aioresponses intercepting every aiohttp request of the test, on the installed aiohttp."""
    # Imported here: aioresponses is a test dependency that a user of the plugin may lack.
    from .testing import aioresponses

    mocked = aioresponses()
    mocked.start()
    try:
        yield mocked
    finally:
        mocked.stop()
