"""(e) Micro: the CPU cost per lead of classify + parse + structure, with ``timeit``.

``python -m benchmarks._micro [--repeat R] [--min-time S]`` prints one JSON line. Each case
runs over a pool of real simulator bodies (both of the API's lead shapes) with the garbage
collector on, as it is in a real run; numbers are microseconds per lead.

The SDK case mirrors what ``AsyncDialNexa._attempt`` does with a 2xx answer: read the
``x-ratelimit-*`` headers (only when present), check the status, then ``decode_lead`` (JSON
decoding plus the cattrs structure hook).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import timeit
from collections.abc import Callable, Sequence
from typing import Any

from ._contenders import _quick_sdk_types
from ._scenarios import lead_id

__all__ = ["measure_all"]

POOL_SIZE = 256
"""Distinct bodies each case cycles through, so no single body's shape dominates."""

_COMMON_HEADERS = [
    ("Content-Type", "application/json; charset=utf-8"),
    ("Content-Length", "262"),
    ("Date", "Fri, 28 Nov 2025 04:00:00 GMT"),
    ("Server", "Python/3.11 aiohttp/3.14"),
    ("x-request-id", "req_00000000a1b2"),
]
_RATE_HEADERS = [
    ("x-ratelimit-limit", "300"),
    ("x-ratelimit-remaining", "117"),
    ("x-ratelimit-reset", "1"),
]


def _bodies() -> list[bytes]:
    from dialnexa_async.testing import lead_payload

    return [
        json.dumps(lead_payload(lead_id(i)), separators=(",", ":")).encode()
        for i in range(POOL_SIZE)
    ]


def _cases() -> dict[str, Callable[[], object]]:
    """Each case processes the whole pool once."""
    from multidict import CIMultiDict, CIMultiDictProxy

    from dialnexa_async._converter import decode_lead, parse_lead
    from dialnexa_async._sansio.headers import RateLimitInfo

    bodies = _bodies()
    payloads = [json.loads(body) for body in bodies]
    with_rate = CIMultiDictProxy(CIMultiDict(_COMMON_HEADERS + _RATE_HEADERS))
    plain = CIMultiDictProxy(CIMultiDict(_COMMON_HEADERS))
    quick_lead, quick_converter = _quick_sdk_types()
    structure = quick_converter.structure
    loads = json.loads

    def sdk_path(headers: Any) -> Callable[[], object]:
        def case() -> object:
            lead = None
            for body in bodies:
                status = 200
                info = (
                    RateLimitInfo.from_headers(headers)
                    if "x-ratelimit-remaining" in headers
                    else None
                )
                if 200 <= status < 300:
                    lead = decode_lead(body)
            return info, lead

        return case

    cases: dict[str, Callable[[], object]] = {
        "sdk: headers + status + decode_lead (x-ratelimit-* present)": sdk_path(with_rate),
        "sdk: headers + status + decode_lead (no x-ratelimit-*)": sdk_path(plain),
        "sdk: decode_lead alone": lambda: [decode_lead(body) for body in bodies],
        "sdk: parse_lead alone (structure, no JSON)": lambda: [parse_lead(p) for p in payloads],
        "sdk: RateLimitInfo.from_headers alone": lambda: [
            RateLimitInfo.from_headers(with_rate) for _ in bodies
        ],
        "json.loads alone": lambda: [loads(body) for body in bodies],
    }
    try:
        import orjson
    except ImportError:
        pass
    else:
        orjson_loads = orjson.loads
        cases["orjson.loads alone"] = lambda: [orjson_loads(body) for body in bodies]
    cases["quick-sdk: json.loads + cattrs structure"] = lambda: [
        structure(loads(body), quick_lead) for body in bodies
    ]
    cases["quick-sdk: cattrs structure alone"] = lambda: [
        structure(p, quick_lead) for p in payloads
    ]
    return cases


def measure_all(repeat: int = 7, min_time: float = 0.2) -> dict[str, Any]:
    """Time every case; microseconds per lead, best and median of ``repeat`` timings."""
    from dialnexa_async import _converter

    results: dict[str, Any] = {}
    for name, case in _cases().items():
        timer = timeit.Timer(case, setup="gc.enable()")
        number = 1
        while timer.timeit(number) < min_time:
            number *= 2
        per_lead = [t / (number * POOL_SIZE) * 1e6 for t in timer.repeat(repeat, number)]
        results[name] = {
            "best_us": min(per_lead),
            "median_us": statistics.median(per_lead),
            "leads_timed": number * POOL_SIZE * repeat,
        }
    loads = getattr(_converter, "_loads", None)
    decoder = getattr(loads, "__module__", None) or "unknown"
    return {"cases": results, "sdk_json_decoder": decoder, "pool_size": POOL_SIZE}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the micro results as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._micro")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per timing")
    ns = parser.parse_args(argv)
    print(json.dumps(measure_all(ns.repeat, ns.min_time)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
