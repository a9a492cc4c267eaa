"""What ``Simulator()`` accepts besides a config: typed options and a clock object.

``SimulatorOptions`` lists every ``SimulatorConfig`` field but ``clock`` (a parameter of its
own), so a misspelt option is a type error under mypy and a ``TypeError`` at run time. The
collections a user naturally writes as a ``set`` or a ``list`` are typed as such here; the
config turns them into its frozen forms.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Protocol, TypedDict, runtime_checkable

from ._config import RateLimitBody, SimulatorConfig
from ._dialects import RateLimitDialect
from ._limiters import LimiterKind


@runtime_checkable
class SimulatorClock(Protocol):
    """A clock object the simulator can read: ``dialnexa_async.VirtualClock`` is one."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; drives the rate limiter."""
        ...

    def time(self) -> float:
        """POSIX seconds; drives epoch resets and HTTP dates."""
        ...


class SimulatorOptions(TypedDict, total=False):
    """``SimulatorConfig`` fields as ``Simulator(**options)`` takes them; see that class."""

    api_key: str | None
    forbidden_keys: AbstractSet[str]
    known_ids: AbstractSet[str] | None
    leads: Mapping[str, Mapping[str, Any]]
    unknown_status_rate: float
    rate_limit: int | None
    rate_window: float
    rate_limit_headers: bool
    fractional_reset: bool
    retry_after: bool | float
    rate_limit_body: RateLimitBody
    limiter: LimiterKind
    burst: int | None
    block_period: float | None
    limit_schedule: Sequence[tuple[float, float]]
    rate_limit_dialect: RateLimitDialect
    retry_after_date: bool
    wall_clock: Callable[[], float]
    seed: int
    latency: float
    latency_jitter: float
    reset_rate: float
    error_rate: float
    error_statuses: Sequence[int]
    html_rate: float
    malformed_rate: float
    slow_body_rate: float
    slow_body_delay: float
    track_ids: bool


_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(SimulatorConfig))


def configure(
    base: SimulatorConfig,
    clock: SimulatorClock | Callable[[], float] | None,
    options: Mapping[str, object],
) -> SimulatorConfig:
    """The config a ``Simulator`` runs on: ``base`` itself, or a copy with the options applied.

    Args:
        base: The config given, or a default one.
        clock: A clock object (both clocks), a plain monotonic callable, or ``None``.
        options: The keyword options given.
    """
    unknown = sorted(set(options) - (_CONFIG_FIELDS - {"clock"}))
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, sorted(_CONFIG_FIELDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TypeError(f"Simulator() got an unexpected option {name!r}{hint}")
    overrides = dict(options)
    if isinstance(clock, SimulatorClock):
        if "wall_clock" in options:
            raise TypeError("wall_clock comes from the clock object; pass one or the other")
        overrides["clock"] = clock.monotonic
        overrides["wall_clock"] = clock.time
    elif clock is not None:
        if not callable(clock):
            raise TypeError(
                f"clock must have monotonic() and time(), or be a callable, got {clock!r}"
            )
        overrides["clock"] = clock
    if not overrides:
        return base
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]
