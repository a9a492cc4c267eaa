"""A local, wire-faithful simulator of the DialNexa API for tests, demos and benchmarks.

It imports nothing else from ``dialnexa_async`` so that it exercises the SDK as a real peer.
Each request goes through these steps, in order: count it, wait the configured latency,
apply the rate limiter, inject a seeded fault, route (404/405), check the bearer key
(401/403), validate the id (400), and look the lead up (404 or 200).
"""

from ._config import RateLimitBody, SimulatorConfig, build_parser, config_from_args
from ._leads import STATUSES, UNDOCUMENTED_STATUSES, lead_payload
from ._server import (
    CONFIG_KEY,
    ID_PATTERN,
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
    "RateLimitBody",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "build_parser",
    "config_from_args",
    "lead_payload",
    "make_app",
    "serve",
]
