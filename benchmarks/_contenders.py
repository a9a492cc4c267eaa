"""The contenders: the SDK, raw aiohttp, httpx and a quick hand-written SDK, each as fast as it
idiomatically gets.

Each contender is ``async def(run, tally) -> verify``: it fetches ``run.n`` leads (ids from
``lead_id``) with ``run.concurrency`` requests in flight, counts its own requests and 429s in
``tally``, and returns a closure that checks, after the clock has stopped, that every id asked
for came back exactly once as a lead with that same id. In the rate-limit scenarios and the
zoo (``run.retries``) the raw clients wrap each request in a plain retry loop; the SDK and the
quick SDK always retry through their own machinery. ``paced`` is raw aiohttp with that same
loop whose sends are also spaced evenly at a rate it is told (``run.pace``).

A name may carry an event loop, ``sdk@uvloop``: the same contender under ``uvloop.run``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from ._scenarios import API_KEY, MAX_TRIES, lead_id

__all__ = [
    "LOOPS",
    "PACE_SHARE",
    "REGISTRY",
    "Check",
    "Entry",
    "Pacer",
    "Run",
    "Tally",
    "is_known",
    "split_name",
]

BACKOFF_INITIAL = 0.5
"""The raw retry loops' first backoff ceiling without Retry-After (the SDK's own value)."""

BACKOFF_MAX = 8.0
"""The raw retry loops' largest backoff ceiling (the SDK's own value)."""

MAX_ERRORS_KEPT = 3
"""Error messages a run reports verbatim; the rest are only counted."""

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Statuses the raw retry loops retry: a throttle, or a gateway's transient failure."""

PACE_SHARE = 0.95
"""The share of the limit it is told that ``paced`` sends at: headroom for timer jitter."""

LOOPS = ("asyncio", "uvloop")
"""Event loops a contender can run on; the first is the default."""

LOOP_SEPARATOR = "@"
"""Joins a contender's name and its event loop: ``sdk@uvloop``."""

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclasses.dataclass(frozen=True)
class Run:
    """What one contender run does.

    Args:
        base_url: the simulator's API root, ``http://127.0.0.1:PORT/v1``.
        n: leads to fetch, ids ``lead_id(0) .. lead_id(n - 1)``.
        concurrency: requests in flight at most.
        retries: whether the raw clients retry 429s and 5xx (the rate-limit scenarios).
        streaming: ids are generated lazily and results checked as they arrive, so nothing
            grows with ``n`` but a one-byte-per-id tick sheet (the memory scenario).
        timeline: record when leads arrive (``Tally.marks``), for goodput over time (the zoo).
        pace: the server's long-run limit in requests per second, as ``paced`` is told it;
            ``None`` where there is no limit.
        ids: every id of the run, in order; empty when streaming.
    """

    base_url: str
    n: int
    concurrency: int
    retries: bool = False
    streaming: bool = False
    timeline: bool = False
    pace: float | None = None
    ids: list[str] = dataclasses.field(default_factory=list, repr=False)

    @classmethod
    def build(
        cls,
        base_url: str,
        n: int,
        concurrency: int,
        *,
        retries: bool,
        streaming: bool,
        timeline: bool = False,
        pace: float | None = None,
    ) -> Run:
        """A run with its ids built now, before the clock starts (none when streaming)."""
        ids = [] if streaming else [lead_id(i) for i in range(n)]
        return cls(base_url, n, concurrency, retries, streaming, timeline, pace, ids)

    def url(self, lead: str) -> str:
        """The URL of one lead, as a hand-written client builds it."""
        return f"{self.base_url}/campaigns-leads/{lead}"


@dataclasses.dataclass
class Tally:
    """What a contender counts about its own traffic.

    Args:
        requests: HTTP requests sent.
        rate_limited: of those, answered 429.
        marks: with ``run.timeline``, ``(time.perf_counter(), leads so far)`` pairs in time
            order: one per lead for the raw clients, one per progress report for the SDK.
    """

    requests: int = 0
    rate_limited: int = 0
    marks: list[tuple[float, int]] = dataclasses.field(default_factory=list, repr=False)

    def mark(self) -> None:
        """Record that one more lead arrived just now."""
        self.marks.append((time.perf_counter(), len(self.marks) + 1))


@dataclasses.dataclass
class Check:
    """The verdict on what a run received.

    Args:
        ok: leads received with the id asked for, each id once.
        failed: ids that ended in an error.
        mismatched: leads whose id differs from the one asked for, or ids seen twice.
        missing: ids asked for that produced no result at all.
        errors: the first few error messages.
    """

    ok: int = 0
    failed: int = 0
    mismatched: int = 0
    missing: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)

    def error(self, what: object) -> None:
        """Count one failed id and keep its message if it is among the first."""
        self.failed += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(repr(what)[:300])

    @property
    def passed(self) -> bool:
        """Whether every id came back exactly once, as itself."""
        return not (self.failed or self.mismatched or self.missing)

    @property
    def intact(self) -> bool:
        """Whether every id got exactly one result and no lead was someone else's.

        An id that failed (a client that gave up retrying) keeps a run intact: under a rate
        limit that is a measured outcome, not a defect of the benchmark.
        """
        return not (self.mismatched or self.missing)


Verify = Callable[[], Check]
Contender = Callable[[Run, Tally], Awaitable[Verify]]


def _check_in_order(ids: list[str], got: Iterable[object], id_of: Callable[[Any], str]) -> Check:
    """Results aligned with ``ids``: an exception is a failure, else its id must match."""
    check = Check()
    count = 0
    for want, item in zip(ids, got, strict=False):
        count += 1
        if isinstance(item, BaseException):
            check.error(item)
        elif id_of(item) == want:
            check.ok += 1
        else:
            check.mismatched += 1
    check.missing = len(ids) - count
    return check


class _TickSheet:
    """One byte per id: checks results in any order, each id exactly once."""

    def __init__(self, n: int) -> None:
        self.seen = bytearray(n)
        self.check = Check()

    def tick(self, asked: str, got: str | None, error: object = None) -> None:
        index = int(asked[5:]) if asked.startswith("lead_") else -1
        if not 0 <= index < len(self.seen) or self.seen[index]:
            self.check.mismatched += 1
            return
        self.seen[index] = 1
        if got is None:
            self.check.error(error)
        elif got == asked:
            self.check.ok += 1
        else:
            self.check.mismatched += 1

    def finish(self) -> Check:
        self.check.missing = self.seen.count(0)
        return self.check


def split_name(name: str) -> tuple[str, str]:
    """``"sdk@uvloop"`` -> ``("sdk", "uvloop")``; a bare name runs on the default loop."""
    base, _, loop = name.partition(LOOP_SEPARATOR)
    return base, loop or LOOPS[0]


def is_known(name: str) -> bool:
    """Whether ``name`` is a registered contender, with or without a known loop."""
    base, loop = split_name(name)
    return base in REGISTRY and loop in LOOPS


def plain_delay(retry_after: str | None, attempt: int) -> float:
    """A plain retry loop's wait: Retry-After when given, else jittered exponential backoff."""
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    return min(BACKOFF_MAX, BACKOFF_INITIAL * 2**attempt) * random.random()


class RateLimited(Exception):
    """A 429 that a hand-written client retries."""

    def __init__(self, retry_after: str | None) -> None:
        super().__init__("429 Too Many Requests")
        self.retry_after = retry_after


class GaveUp(Exception):
    """The plain retry loop's last answer was still one it retries."""

    def __init__(self, status: int, retry_after: str | None) -> None:
        super().__init__(f"gave up after {MAX_TRIES} attempts; last status {status}")
        self.status = status
        self.retry_after = retry_after


class Pacer:
    """Even spacing shared by every worker: the k-th send goes no earlier than k / rate.

    A GCRA with no burst. Invariant: ``_next`` is the earliest time the next send may go;
    a caller takes ``max(_next, now)`` as its slot and moves ``_next`` one interval past it,
    so slots go out in call order, one interval apart.

    asyncio wakes a sleeper up to a millisecond or so late (epoll rounds its timeout up to
    the millisecond), which would let two sends land closer than a strict-spacing limiter
    allows; so a waiter sleeps until ``SPIN_BEFORE`` ahead of its slot and then yields to
    the loop until the slot has come.
    """

    SPIN_BEFORE = 0.002
    """Seconds before its slot a waiter stops sleeping and starts yielding."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"the pace must be positive, got {rate!r}")
        self.interval = 1.0 / rate
        self._next = 0.0

    async def wait(self) -> None:
        """Return at this caller's slot."""
        loop = asyncio.get_running_loop()
        slot = max(self._next, loop.time())
        self._next = slot + self.interval
        left = slot - loop.time()
        if left > self.SPIN_BEFORE:
            await asyncio.sleep(left - self.SPIN_BEFORE)
        # Waiting for a moment, not for an event: nothing could set one at the slot.
        while loop.time() < slot:  # noqa: ASYNC110
            await asyncio.sleep(0)


# --- dialnexa_async -------------------------------------------------------------------------


def _sdk_client(run: Run) -> Any:
    import dialnexa_async as dnx

    return dnx.AsyncDialNexa(
        api_key=API_KEY,
        base_url=run.base_url,
        max_concurrency=run.concurrency,
        max_retries=MAX_TRIES - 1,
    )


async def sdk_get_leads(run: Run, tally: Tally) -> Verify:
    """``get_leads(ids)``: one list of results in input order.

    With ``run.timeline`` the public ``progress`` callback (about ten reports a second)
    records how many leads had arrived when.
    """
    ids = run.ids
    marks = tally.marks

    def progress(report: Any) -> None:
        marks.append((time.perf_counter(), report.ok))

    async with _sdk_client(run) as client:
        if run.timeline:
            results = await client.get_leads(ids, progress=progress)
        else:
            results = await client.get_leads(ids)
        tally.requests = client.stats.requests
        tally.rate_limited = client.stats.rate_limited

    def verify() -> Check:
        return _check_in_order(
            ids,
            (r.lead if r.ok else r.error for r in results),
            lambda lead: str(lead.id),
        )

    return verify


async def sdk_iter_leads(run: Run, tally: Tally) -> Verify:
    """``async for result in iter_leads(ids)``: results in completion order."""
    sheet = _TickSheet(run.n)
    ids: Iterable[str]
    if run.streaming:
        ids = (lead_id(i) for i in range(run.n))
        kept: list[Any] | None = None
    else:
        ids = run.ids
        kept = []
    async with _sdk_client(run) as client:
        async for result in client.iter_leads(ids):
            if kept is not None:
                kept.append(result)
            else:
                lead = result.lead
                sheet.tick(result.lead_id, None if lead is None else lead.id, result.error)
        tally.requests = client.stats.requests
        tally.rate_limited = client.stats.rate_limited

    def verify() -> Check:
        for result in kept or ():
            lead = result.lead
            sheet.tick(result.lead_id, None if lead is None else lead.id, result.error)
        return sheet.finish()

    return verify


# --- raw aiohttp ----------------------------------------------------------------------------


def _aiohttp_fetcher(
    run: Run, tally: Tally, pacer: Pacer | None = None
) -> Callable[[Any, str], Awaitable[Any]]:
    """One GET and ``resp.json()``; in the rate-limit scenarios, inside a plain retry loop.

    The loop retries 429 and the transient 5xx (``RETRIED_STATUSES``) up to ``MAX_TRIES``
    attempts; with a ``pacer`` every attempt first waits for its send slot.
    """

    async def fetch(session: Any, lead: str) -> Any:
        tally.requests += 1
        async with session.get(run.url(lead)) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def fetch_retrying(session: Any, lead: str) -> Any:
        url = run.url(lead)
        status, retry_after = 0, None
        for attempt in range(MAX_TRIES):
            if pacer is not None:
                await pacer.wait()
            tally.requests += 1
            async with session.get(url) as resp:
                status = resp.status
                if status not in RETRIED_STATUSES:
                    resp.raise_for_status()
                    body = await resp.json()
                    if run.timeline:
                        tally.mark()
                    return body
                if status == 429:
                    tally.rate_limited += 1
                retry_after = resp.headers.get("Retry-After")
            if attempt + 1 < MAX_TRIES:
                await asyncio.sleep(plain_delay(retry_after, attempt))
        raise GaveUp(status, retry_after)

    return fetch_retrying if run.retries else fetch


def _aiohttp_session(run: Run) -> Any:
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=run.concurrency), headers=AUTH
    )


async def aiohttp_gather(run: Run, tally: Tally, pacer: Pacer | None = None) -> Verify:
    """One session, ``TCPConnector(limit=c)``, a task per id under ``Semaphore(c)``, gather."""
    ids = run.ids
    fetch = _aiohttp_fetcher(run, tally, pacer)
    semaphore = asyncio.Semaphore(run.concurrency)
    async with _aiohttp_session(run) as session:

        async def bounded(lead: str) -> Any:
            async with semaphore:
                return await fetch(session, lead)

        results = await asyncio.gather(*(bounded(i) for i in ids), return_exceptions=True)
    return lambda: _check_in_order(ids, results, lambda body: body["id"])


async def aiohttp_paced(run: Run, tally: Tally) -> Verify:
    """The gather form and its retry loop, every send spaced at ``PACE_SHARE`` of ``run.pace``."""
    if run.pace is None:
        raise ValueError("the paced contender needs the limit it is told: --pace")
    return await aiohttp_gather(run, tally, Pacer(PACE_SHARE * run.pace))


async def aiohttp_pool(run: Run, tally: Tally) -> Verify:
    """One session, ``TCPConnector(limit=c)``, ``c`` workers pulling ids from one iterator."""
    ids = run.ids
    fetch = _aiohttp_fetcher(run, tally)
    results: list[Any] = [None] * len(ids)
    work = iter(enumerate(ids))
    async with _aiohttp_session(run) as session:

        async def worker() -> None:
            for index, lead in work:
                try:
                    results[index] = await fetch(session, lead)
                except Exception as error:
                    results[index] = error

        await asyncio.gather(*(worker() for _ in range(run.concurrency)))
    return lambda: _check_in_order(ids, results, lambda body: body["id"])


# --- httpx ----------------------------------------------------------------------------------


async def httpx_gather(run: Run, tally: Tally) -> Verify:
    """``httpx.AsyncClient`` with matching pool limits, ``Semaphore(c)``, ``resp.json()``."""
    import httpx

    ids = run.ids
    semaphore = asyncio.Semaphore(run.concurrency)
    limits = httpx.Limits(
        max_connections=run.concurrency, max_keepalive_connections=run.concurrency
    )
    # httpx's default 5 s timeout would also count waits for a pooled connection; the SDK's is 30.
    async with httpx.AsyncClient(limits=limits, headers=AUTH, timeout=30.0) as client:

        async def fetch(lead: str) -> Any:
            async with semaphore:
                tally.requests += 1
                resp = await client.get(run.url(lead))
                resp.raise_for_status()
                return resp.json()

        async def fetch_retrying(lead: str) -> Any:
            url = run.url(lead)
            async with semaphore:
                for attempt in range(MAX_TRIES):
                    tally.requests += 1
                    resp = await client.get(url)
                    if resp.status_code != 429:
                        resp.raise_for_status()
                        return resp.json()
                    tally.rate_limited += 1
                    retry_after = resp.headers.get("Retry-After")
                    if attempt + 1 < MAX_TRIES:
                        await asyncio.sleep(plain_delay(retry_after, attempt))
                raise RateLimited(retry_after)

        one = fetch_retrying if run.retries else fetch
        results = await asyncio.gather(*(one(i) for i in ids), return_exceptions=True)
    return lambda: _check_in_order(ids, results, lambda body: body["id"])


# --- a quick hand-written SDK: aiohttp + tenacity per call + cattrs ---------------------------


@functools.cache
def _quick_sdk_types() -> tuple[type, Any]:
    """The attrs class and cattrs converter a quick SDK would write in ten minutes."""
    import attrs
    import cattrs

    @attrs.frozen
    class QuickLead:
        id: str
        campaign_id: str
        phone_number: str
        status: str
        created_at: datetime
        name: str | None = None
        metadata: dict[str, Any] = attrs.field(factory=dict)
        notes: dict[str, Any] = attrs.field(factory=dict)
        call_log_id: str | None = None

    converter = cattrs.Converter()
    converter.register_structure_hook(datetime, lambda value, _: datetime.fromisoformat(value))
    return QuickLead, converter


class _RetryAfterOrBackoff:
    """tenacity wait: the 429's Retry-After when given, else jittered exponential backoff."""

    def __init__(self) -> None:
        from tenacity import wait_exponential_jitter

        self._backoff = wait_exponential_jitter(initial=BACKOFF_INITIAL, max=BACKOFF_MAX)

    def __call__(self, state: Any) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            try:
                return max(0.0, float(error.retry_after))
            except ValueError:
                pass
        return float(self._backoff(state))


async def quick_sdk(run: Run, tally: Tally) -> Verify:
    """aiohttp session + ``Semaphore(c)`` + tenacity ``AsyncRetrying`` per call + cattrs."""
    import aiohttp
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

    lead_type, converter = _quick_sdk_types()
    ids = run.ids
    semaphore = asyncio.Semaphore(run.concurrency)
    wait = _RetryAfterOrBackoff()
    async with _aiohttp_session(run) as session:

        async def get_lead(lead: str) -> Any:
            url = run.url(lead)
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(MAX_TRIES),
                wait=wait,
                retry=retry_if_exception_type((RateLimited, aiohttp.ClientError)),
                reraise=True,
            ):
                with attempt:
                    tally.requests += 1
                    async with session.get(url) as resp:
                        if resp.status == 429:
                            tally.rate_limited += 1
                            raise RateLimited(resp.headers.get("Retry-After"))
                        resp.raise_for_status()
                        data = await resp.json()
                    return converter.structure(data, lead_type)
            raise AssertionError("unreachable")

        async def bounded(lead: str) -> Any:
            async with semaphore:
                return await get_lead(lead)

        results = await asyncio.gather(*(bounded(i) for i in ids), return_exceptions=True)
    return lambda: _check_in_order(ids, results, lambda lead: lead.id)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A contender and what it imports, so the imports happen before the clock starts.

    Args:
        run: the contender itself.
        modules: modules imported up front; a process imports nothing another contender needs,
            so peak RSS compares like with like.
        prepare: one-time set-up a real program does at import (the quick SDK's types).
        needs_pace: runs only where the server has a limit to be told (``Run.pace``).
    """

    run: Contender
    modules: tuple[str, ...]
    prepare: Callable[[], object] | None = None
    needs_pace: bool = False

    def load(self, loop: str = LOOPS[0]) -> None:
        """Import the modules (and the event loop's) and run the set-up."""
        for module in (*self.modules, *(() if loop == LOOPS[0] else (loop,))):
            importlib.import_module(module)
        if self.prepare is not None:
            self.prepare()


_SDK = ("dialnexa_async",)
_AIOHTTP = ("aiohttp",)

REGISTRY: Mapping[str, Entry] = {
    "sdk": Entry(sdk_get_leads, _SDK),
    "sdk-iter": Entry(sdk_iter_leads, _SDK),
    "aiohttp": Entry(aiohttp_gather, _AIOHTTP),
    "aiohttp-gather": Entry(aiohttp_gather, _AIOHTTP),
    "aiohttp-pool": Entry(aiohttp_pool, _AIOHTTP),
    "paced": Entry(aiohttp_paced, _AIOHTTP, needs_pace=True),
    "httpx": Entry(httpx_gather, ("httpx",)),
    "quick-sdk": Entry(quick_sdk, ("aiohttp", "tenacity"), _quick_sdk_types),
}
"""Contenders by name. ``aiohttp`` is the gather form: faster here than a worker pool.

Any of them runs under uvloop as ``NAME@uvloop`` (``split_name``).
"""
