"""The contenders: the SDK, raw aiohttp, httpx and a quick hand-written SDK, each as fast as it
idiomatically gets.

Each contender is ``async def(run, tally) -> verify``: it fetches ``run.n`` leads (ids from
``lead_id``) with ``run.concurrency`` requests in flight, counts its own requests and 429s in
``tally``, and returns a closure that checks, after the clock has stopped, that every id asked
for came back exactly once as a lead with that same id. In the rate-limit scenarios
(``run.retries``) the raw clients wrap each request in a plain retry loop; the SDK and the
quick SDK always retry through their own machinery.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from ._scenarios import API_KEY, MAX_TRIES, lead_id

__all__ = ["REGISTRY", "Check", "Entry", "Run", "Tally"]

BACKOFF_INITIAL = 0.5
"""The raw retry loops' first backoff ceiling without Retry-After (the SDK's own value)."""

BACKOFF_MAX = 8.0
"""The raw retry loops' largest backoff ceiling (the SDK's own value)."""

MAX_ERRORS_KEPT = 3
"""Error messages a run reports verbatim; the rest are only counted."""

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclasses.dataclass(frozen=True)
class Run:
    """What one contender run does.

    Args:
        base_url: the simulator's API root, ``http://127.0.0.1:PORT/v1``.
        n: leads to fetch, ids ``lead_id(0) .. lead_id(n - 1)``.
        concurrency: requests in flight at most.
        retries: whether the raw clients retry 429s (the rate-limit scenarios).
        streaming: ids are generated lazily and results checked as they arrive, so nothing
            grows with ``n`` but a one-byte-per-id tick sheet (the memory scenario).
        ids: every id of the run, in order; empty when streaming.
    """

    base_url: str
    n: int
    concurrency: int
    retries: bool = False
    streaming: bool = False
    ids: list[str] = dataclasses.field(default_factory=list, repr=False)

    @classmethod
    def build(
        cls, base_url: str, n: int, concurrency: int, *, retries: bool, streaming: bool
    ) -> Run:
        """A run with its ids built now, before the clock starts (none when streaming)."""
        ids = [] if streaming else [lead_id(i) for i in range(n)]
        return cls(base_url, n, concurrency, retries, streaming, ids)

    def url(self, lead: str) -> str:
        """The URL of one lead, as a hand-written client builds it."""
        return f"{self.base_url}/campaigns-leads/{lead}"


@dataclasses.dataclass
class Tally:
    """What a contender counts about its own traffic."""

    requests: int = 0
    rate_limited: int = 0


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
    """``get_leads(ids)``: one list of results in input order."""
    ids = run.ids
    async with _sdk_client(run) as client:
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


def _aiohttp_fetcher(run: Run, tally: Tally) -> Callable[[Any, str], Awaitable[Any]]:
    """One GET and ``resp.json()``; in the rate-limit scenarios, inside a plain retry loop."""

    async def fetch(session: Any, lead: str) -> Any:
        tally.requests += 1
        async with session.get(run.url(lead)) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def fetch_retrying(session: Any, lead: str) -> Any:
        url = run.url(lead)
        for attempt in range(MAX_TRIES):
            tally.requests += 1
            async with session.get(url) as resp:
                if resp.status != 429:
                    resp.raise_for_status()
                    return await resp.json()
                tally.rate_limited += 1
                retry_after = resp.headers.get("Retry-After")
            if attempt + 1 < MAX_TRIES:
                await asyncio.sleep(plain_delay(retry_after, attempt))
        raise RateLimited(retry_after)

    return fetch_retrying if run.retries else fetch


def _aiohttp_session(run: Run) -> Any:
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=run.concurrency), headers=AUTH
    )


async def aiohttp_gather(run: Run, tally: Tally) -> Verify:
    """One session, ``TCPConnector(limit=c)``, a task per id under ``Semaphore(c)``, gather."""
    ids = run.ids
    fetch = _aiohttp_fetcher(run, tally)
    semaphore = asyncio.Semaphore(run.concurrency)
    async with _aiohttp_session(run) as session:

        async def bounded(lead: str) -> Any:
            async with semaphore:
                return await fetch(session, lead)

        results = await asyncio.gather(*(bounded(i) for i in ids), return_exceptions=True)
    return lambda: _check_in_order(ids, results, lambda body: body["id"])


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
    """

    run: Contender
    modules: tuple[str, ...]
    prepare: Callable[[], object] | None = None

    def load(self) -> None:
        """Import the modules and run the set-up."""
        for module in self.modules:
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
    "httpx": Entry(httpx_gather, ("httpx",)),
    "quick-sdk": Entry(quick_sdk, ("aiohttp", "tenacity"), _quick_sdk_types),
}
"""Contenders by name. ``aiohttp`` is the gather form: faster here than a worker pool."""
