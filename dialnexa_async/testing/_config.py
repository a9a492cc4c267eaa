"""Configuration of the local DialNexa simulator and the command-line flags that build it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

from ._dialects import RATE_LIMIT_DIALECTS, RateLimitDialect
from ._leads import ID_PATTERN, ID_RE
from ._limiters import LIMITER_KINDS, LimiterKind

RateLimitBody = Literal["json", "html", "text", "empty"]
RATE_LIMIT_BODIES: tuple[RateLimitBody, ...] = get_args(RateLimitBody)

_RATE_FIELDS = (
    "reset_rate",
    "error_rate",
    "html_rate",
    "malformed_rate",
    "slow_body_rate",
    "unknown_status_rate",
)


def _positive_finite(value: float) -> bool:
    """Whether a duration or factor is usable: above zero and not infinite or NaN."""
    return value > 0 and math.isfinite(value)


def checked_leads(leads: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Validate preloaded leads and return a deep, JSON-round-tripped copy of them.

    Args:
        leads: Fields by lead id; each id must match ``ID_PATTERN`` and each value be a
            mapping that encodes as JSON.
    """
    copied: dict[str, dict[str, Any]] = {}
    for lead_id, fields in leads.items():
        if not isinstance(lead_id, str) or not ID_RE.fullmatch(lead_id):
            raise ValueError(f"preloaded lead id {lead_id!r} does not match {ID_PATTERN}")
        if not isinstance(fields, Mapping):
            raise TypeError(f"the fields of lead {lead_id!r} must be a mapping, got {fields!r}")
        try:
            # A round trip checks the fields now rather than at the first request, and keeps
            # later changes to the caller's objects from reaching the served lead.
            copied[lead_id] = json.loads(json.dumps(dict(fields)))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the fields of lead {lead_id!r} are not JSON: {exc}") from None
    return copied


@dataclasses.dataclass
class SimulatorConfig:
    """Behaviour of the simulated API; mutable, and read afresh on every request.

    Changing a field while the simulator runs takes effect on the next request. The exception
    is ``seed``: the random stream is created once, so call ``Simulator.reset()`` after
    changing it.

    Args:
        api_key: The only bearer token accepted, or ``None`` to accept any non-empty token.
        forbidden_keys: Tokens that authenticate but may not read campaign data (403).
        known_ids: When set, the only lead ids that exist (besides ``leads``); otherwise every
            well-formed id exists except those starting with ``missing``.
        leads: Preloaded leads: fields by id, laid over the generated lead of that id (so
            ``{"lead_1": {"status": "failed"}}`` serves a whole lead whose status is
            ``failed``). A preloaded id exists whatever ``known_ids`` and its prefix say.
        unknown_status_rate: Share of ids (chosen by hash, not at random) whose status is an
            undocumented value such as ``"voicemail"``.
        rate_limit: Admitted requests per window (the bucket rate is ``rate_limit /
            rate_window`` per second; for ``concurrency``, the most in flight), or ``None``
            for no limit.
        rate_window: Length of the rate-limit window in seconds.
        rate_limit_headers: Whether answers carry rate-limit headers at all; ``False`` sends
            none whatever ``rate_limit_dialect`` says.
        fractional_reset: Send reset and ``Retry-After`` as decimals (3 places) instead of
            whole seconds rounded up.
        retry_after: ``True`` always sends ``Retry-After`` on 429, ``False`` never, a float
            ``p`` sends it with probability ``p``.
        rate_limit_body: Body of a 429: JSON envelope, nginx-style HTML page, plain text, or
            empty.
        limiter: The algorithm: ``fixed-window``, ``sliding-log``, ``sliding-counter``,
            ``token-bucket`` (GCRA), ``leaky-bucket`` (queues, like nginx ``limit_req``
            without ``nodelay``), ``concurrency`` or ``block`` (a refusal blocks everything).
        burst: Token or leaky bucket depth in requests; ``None`` means ``rate_limit``.
        block_period: Seconds a ``block`` limiter refuses everything after a request over the
            limit; ``None`` means ``rate_window``.
        limit_schedule: ``(seconds_after_first_request, factor)`` pairs: from each moment on
            the limit (and a bucket's rate) is ``factor`` times the configured one; any
            limiter. Sorted by time on construction.
        rate_limit_dialect: The rate-limit headers sent: ``none``, ``x-ratelimit``,
            ``x-ratelimit-epoch``, ``draft6``, ``draft7`` or ``draft8``.
        retry_after_date: Send ``Retry-After`` as an HTTP date instead of seconds.
        clock: Monotonic clock driving the rate limiter; tests inject a fake one.
        wall_clock: POSIX clock for epoch resets and HTTP dates; tests inject a fake one.
        seed: Seed of the single random stream behind every fault, jitter and coin flip.
        latency: Seconds slept before answering each request.
        latency_jitter: Upper bound of a uniform extra delay added to ``latency``.
        reset_rate: Probability of aborting the connection with a TCP RST.
        error_rate: Probability of a 5xx JSON envelope drawn from ``error_statuses``.
        error_statuses: Statuses an injected error is picked from, uniformly.
        html_rate: Probability of a proxy-style 502 HTML page.
        malformed_rate: Probability of a 200 whose JSON body is truncated.
        slow_body_rate: Probability of streaming the body in chunks ``slow_body_delay`` apart.
        slow_body_delay: Pause between chunks of a slow body, in seconds.
        track_ids: Count requests per id in ``stats.attempts_by_id``; turn off for runs over
            millions of distinct ids so memory stays flat.
    """

    api_key: str | None = dataclasses.field(default="sk_test", repr=False)
    forbidden_keys: frozenset[str] = dataclasses.field(default=frozenset(), repr=False)
    known_ids: frozenset[str] | None = None
    leads: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict, repr=False)
    unknown_status_rate: float = 0.0
    rate_limit: int | None = None
    rate_window: float = 1.0
    rate_limit_headers: bool = True
    fractional_reset: bool = False
    retry_after: bool | float = True
    rate_limit_body: RateLimitBody = "json"
    limiter: LimiterKind = "fixed-window"
    burst: int | None = None
    block_period: float | None = None
    limit_schedule: tuple[tuple[float, float], ...] = ()
    rate_limit_dialect: RateLimitDialect = "x-ratelimit"
    retry_after_date: bool = False
    clock: Callable[[], float] = dataclasses.field(default=time.monotonic, repr=False)
    wall_clock: Callable[[], float] = dataclasses.field(default=time.time, repr=False)
    seed: int = 0
    latency: float = 0.0
    latency_jitter: float = 0.0
    reset_rate: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503, 504)
    html_rate: float = 0.0
    malformed_rate: float = 0.0
    slow_body_rate: float = 0.0
    slow_body_delay: float = 0.05
    track_ids: bool = True

    def __post_init__(self) -> None:
        """Reject values that would make the simulator misbehave silently."""
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if not isinstance(self.retry_after, bool) and not 0.0 <= self.retry_after <= 1.0:
            raise ValueError(
                f"retry_after must be a bool or within [0, 1], got {self.retry_after!r}"
            )
        if self.rate_limit is not None and self.rate_limit < 1:
            raise ValueError(f"rate_limit must be at least 1, got {self.rate_limit!r}")
        if self.rate_window <= 0:
            raise ValueError(f"rate_window must be positive, got {self.rate_window!r}")
        if self.rate_limit_body not in RATE_LIMIT_BODIES:
            raise ValueError(
                f"rate_limit_body must be one of {', '.join(RATE_LIMIT_BODIES)}, "
                f"got {self.rate_limit_body!r}"
            )
        if self.limiter not in LIMITER_KINDS:
            raise ValueError(
                f"limiter must be one of {', '.join(LIMITER_KINDS)}, got {self.limiter!r}"
            )
        if self.rate_limit_dialect not in RATE_LIMIT_DIALECTS:
            raise ValueError(
                f"rate_limit_dialect must be one of {', '.join(RATE_LIMIT_DIALECTS)}, "
                f"got {self.rate_limit_dialect!r}"
            )
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst!r}")
        if self.block_period is not None and not _positive_finite(self.block_period):
            raise ValueError(f"block_period must be positive, got {self.block_period!r}")
        for at, factor in self.limit_schedule:
            if not (at >= 0 and math.isfinite(at) and _positive_finite(factor)):
                raise ValueError(
                    f"limit_schedule needs (seconds >= 0, factor > 0) pairs, got {(at, factor)!r}"
                )
        if self.latency < 0 or self.latency_jitter < 0 or self.slow_body_delay < 0:
            raise ValueError("latency, latency_jitter and slow_body_delay must not be negative")
        if not self.error_statuses or any(not 100 <= s <= 599 for s in self.error_statuses):
            raise ValueError(
                f"error_statuses must be non-empty HTTP statuses, got {self.error_statuses!r}"
            )
        # A plain set or list would be accepted at runtime but break hashing and the types.
        self.forbidden_keys = frozenset(self.forbidden_keys)
        if self.known_ids is not None:
            self.known_ids = frozenset(self.known_ids)
        self.leads = checked_leads(self.leads)
        self.error_statuses = tuple(self.error_statuses)
        # Sorted by time (stably, so of two changes at one moment the later one wins).
        self.limit_schedule = tuple(
            sorted(((float(at), float(f)) for at, f in self.limit_schedule), key=lambda s: s[0])
        )


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number within 0..65535, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not _positive_finite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _limit_change(text: str) -> tuple[float, float]:
    at, sep, factor = text.partition(":")
    try:
        pair = (float(at), float(factor))
    except ValueError:
        pair = (math.nan, math.nan)
    if not sep or not (pair[0] >= 0 and math.isfinite(pair[0]) and _positive_finite(pair[1])):
        raise argparse.ArgumentTypeError(
            f"expected SECONDS:FACTOR with SECONDS >= 0 and FACTOR > 0, got {text}"
        )
    return pair


def _statuses(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated statuses, got {text}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one status")
    if any(not 100 <= value <= 599 for value in values):
        raise argparse.ArgumentTypeError(f"expected HTTP statuses within 100..599, got {text}")
    return values


def build_parser(*, prog: str | None = None, add_help: bool = True) -> argparse.ArgumentParser:
    """Build the parser for the simulator's command-line flags.

    Args:
        prog: Program name shown in usage; defaults to ``python -m dialnexa_async.testing``.
        add_help: Pass ``False`` to use the result as a ``parents=`` entry of another parser.
    """
    parser = argparse.ArgumentParser(
        prog=prog or "python -m dialnexa_async.testing",
        description="Run a local simulator of the DialNexa campaign-lead API.",
        add_help=add_help,
    )
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    net.add_argument(
        "--port", type=_port, default=8080, help="port to bind, 0 for any (default 8080)"
    )

    auth = parser.add_argument_group("authentication")
    keys = auth.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key", default="sk_test", help="the accepted bearer token (default sk_test)"
    )
    keys.add_argument("--any-key", action="store_true", help="accept any non-empty bearer token")
    auth.add_argument(
        "--forbidden-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a token answered with 403; repeatable",
    )

    data = parser.add_argument_group("data")
    data.add_argument(
        "--known-id",
        action="append",
        default=None,
        metavar="ID",
        help="restrict existing leads to these ids; repeatable",
    )
    data.add_argument(
        "--unknown-status-rate",
        type=_rate,
        default=0.0,
        help="share of ids with an undocumented status",
    )
    data.add_argument(
        "--no-track-ids",
        dest="track_ids",
        action="store_false",
        help="do not count requests per id (flat memory over many ids)",
    )

    limits = parser.add_argument_group("rate limiting")
    limits.add_argument(
        "--rate-limit",
        type=_positive_int,
        default=None,
        help="requests per window (for --limiter concurrency: most in flight)",
    )
    limits.add_argument(
        "--rate-window", type=_positive, default=1.0, help="window length in seconds"
    )
    limits.add_argument(
        "--limiter",
        choices=LIMITER_KINDS,
        default="fixed-window",
        help="the rate-limiting algorithm (default fixed-window)",
    )
    limits.add_argument(
        "--burst",
        type=_positive_int,
        default=None,
        metavar="N",
        help="token/leaky bucket depth (default: --rate-limit)",
    )
    limits.add_argument(
        "--block-period",
        type=_positive,
        default=None,
        metavar="S",
        help="seconds the block limiter refuses everything (default: --rate-window)",
    )
    limits.add_argument(
        "--limit-change",
        type=_limit_change,
        action="append",
        default=[],
        metavar="T:FACTOR",
        help="from T seconds after the first request, scale the limit by FACTOR; repeatable",
    )
    limits.add_argument(
        "--rate-limit-dialect",
        choices=RATE_LIMIT_DIALECTS,
        default="x-ratelimit",
        help="which rate-limit headers to send (default x-ratelimit)",
    )
    after = limits.add_mutually_exclusive_group()
    after.add_argument(
        "--no-retry-after",
        dest="retry_after",
        action="store_const",
        const=False,
        default=True,
        help="never send Retry-After on 429",
    )
    after.add_argument(
        "--retry-after-probability",
        dest="retry_after",
        type=_rate,
        metavar="P",
        help="send Retry-After on a 429 with probability P",
    )
    limits.add_argument(
        "--no-rate-limit-headers",
        dest="rate_limit_headers",
        action="store_false",
        help="send no rate-limit headers, whatever the dialect",
    )
    limits.add_argument(
        "--fractional-reset",
        action="store_true",
        help="send reset and Retry-After with millisecond decimals",
    )
    limits.add_argument(
        "--retry-after-date",
        action="store_true",
        help="send Retry-After as an HTTP date instead of seconds",
    )
    limits.add_argument(
        "--rate-limit-body",
        choices=RATE_LIMIT_BODIES,
        default="json",
        help="body of a 429 (default json)",
    )

    faults = parser.add_argument_group("fault injection")
    faults.add_argument("--seed", type=int, default=0, help="seed of the fault stream (default 0)")
    faults.add_argument(
        "--latency", type=_non_negative, default=0.0, help="seconds before each answer"
    )
    faults.add_argument(
        "--latency-jitter", type=_non_negative, default=0.0, help="extra uniform delay bound"
    )
    faults.add_argument("--reset-rate", type=_rate, default=0.0, help="probability of a TCP reset")
    faults.add_argument(
        "--error-rate", type=_rate, default=0.0, help="probability of a 5xx envelope"
    )
    faults.add_argument(
        "--error-statuses",
        type=_statuses,
        default=(500, 502, 503, 504),
        metavar="S,S,...",
        help="statuses injected errors are drawn from (default 500,502,503,504)",
    )
    faults.add_argument(
        "--html-rate", type=_rate, default=0.0, help="probability of an HTML 502 page"
    )
    faults.add_argument(
        "--malformed-rate", type=_rate, default=0.0, help="probability of truncated JSON"
    )
    faults.add_argument(
        "--slow-body-rate", type=_rate, default=0.0, help="probability of a chunked slow body"
    )
    faults.add_argument(
        "--slow-body-delay", type=_non_negative, default=0.05, help="seconds between chunks"
    )
    return parser


def config_from_args(ns: argparse.Namespace) -> SimulatorConfig:
    """Turn parsed flags from ``build_parser()`` into a ``SimulatorConfig``.

    Args:
        ns: The namespace returned by ``build_parser().parse_args()``; ``host`` and ``port``
            are not part of the config and are ignored here.
    """
    return SimulatorConfig(
        api_key=None if ns.any_key else ns.api_key,
        forbidden_keys=frozenset(ns.forbidden_key),
        known_ids=None if ns.known_id is None else frozenset(ns.known_id),
        unknown_status_rate=ns.unknown_status_rate,
        rate_limit=ns.rate_limit,
        rate_window=ns.rate_window,
        rate_limit_headers=ns.rate_limit_headers,
        fractional_reset=ns.fractional_reset,
        retry_after=ns.retry_after,
        rate_limit_body=ns.rate_limit_body,
        limiter=ns.limiter,
        burst=ns.burst,
        block_period=ns.block_period,
        limit_schedule=tuple(ns.limit_change),
        rate_limit_dialect=ns.rate_limit_dialect,
        retry_after_date=ns.retry_after_date,
        seed=ns.seed,
        latency=ns.latency,
        latency_jitter=ns.latency_jitter,
        reset_rate=ns.reset_rate,
        error_rate=ns.error_rate,
        error_statuses=ns.error_statuses,
        html_rate=ns.html_rate,
        malformed_rate=ns.malformed_rate,
        slow_body_rate=ns.slow_body_rate,
        slow_body_delay=ns.slow_body_delay,
        track_ids=ns.track_ids,
    )
