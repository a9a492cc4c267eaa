"""A local, wire-faithful simulator of the DialNexa API for tests, demos and benchmarks.

It imports nothing else from ``dialnexa_async`` so that it exercises the SDK as a real peer.
Each request goes through these steps, in order: count it, pass the rate gate on arrival
(429 at once if refused; a queueing limiter holds the request a while), wait the configured
latency (the API's own time, during which the request counts as in flight), inject a seeded
fault, route (404/405), check the bearer key (401/403), validate the id (400), and
look the lead up (404 or 200).

The rate gate runs one of the limiters real gateways run (fixed window, sliding log,
sliding-window counter, token bucket, queueing leaky bucket, concurrency limit, block
penalty; any of them with a limit that changes on a schedule) and states its quota in one of
several header dialects (``x-ratelimit-*``, its epoch variant, or the IETF ``RateLimit``
drafts 6, 7 and 8). ``RateGate`` is pure, so a virtual-time harness can drive it without HTTP.

For tests: give the simulator the client's ``VirtualClock`` (``Simulator(clock=clock)``),
preload leads with chosen fields (``leads=`` or ``add_lead``), script what given ids get
(``script`` with ``Reply`` objects), and use ``aioresponses`` from here (needs the
aioresponses package) where the original breaks on the installed aiohttp. The pytest plugin
``dialnexa_async.pytest_plugin`` wraps all of it in fixtures.
"""

from typing import TYPE_CHECKING

from ._config import RateLimitBody, SimulatorConfig, build_parser, config_from_args
from ._dialects import RateLimitDialect, render_headers
from ._gate import GateAnswer, RateGate, make_limiter
from ._leads import ID_PATTERN, STATUSES, UNDOCUMENTED_STATUSES, lead_payload
from ._limiters import (
    BlockPenalty,
    ChangingLimit,
    ConcurrencyLimit,
    FixedWindow,
    LeakyBucket,
    Limiter,
    LimiterKind,
    ScalableLimiter,
    SlidingWindowCounter,
    SlidingWindowLog,
    TokenBucket,
    Verdict,
)
from ._options import SimulatorClock, SimulatorOptions
from ._script import Reply
from ._server import (
    CONFIG_KEY,
    STATS_KEY,
    Simulator,
    SimulatorStats,
    make_app,
    serve,
)

__all__ = [
    "CONFIG_KEY",
    "ID_PATTERN",
    "STATS_KEY",
    "STATUSES",
    "UNDOCUMENTED_STATUSES",
    "BlockPenalty",
    "ChangingLimit",
    "ConcurrencyLimit",
    "FixedWindow",
    "GateAnswer",
    "LeakyBucket",
    "Limiter",
    "LimiterKind",
    "RateGate",
    "RateLimitBody",
    "RateLimitDialect",
    "Reply",
    "ScalableLimiter",
    "Simulator",
    "SimulatorClock",
    "SimulatorConfig",
    "SimulatorOptions",
    "SimulatorStats",
    "SlidingWindowCounter",
    "SlidingWindowLog",
    "TokenBucket",
    "Verdict",
    "aioresponses",
    "build_parser",
    "config_from_args",
    "lead_payload",
    "make_app",
    "make_limiter",
    "render_headers",
    "serve",
]

if TYPE_CHECKING:
    from ._aioresponses import aioresponses


def __getattr__(name: str) -> object:
    # aioresponses is a test dependency, not the SDK's: import it only when asked for.
    if name == "aioresponses":
        try:
            from ._aioresponses import aioresponses
        except ModuleNotFoundError as exc:
            raise ImportError(
                "dialnexa_async.testing.aioresponses needs the aioresponses package: "
                "pip install aioresponses"
            ) from exc
        return aioresponses
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
