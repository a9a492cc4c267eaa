"""Bulk lookups: many ids through a fixed pool of workers, one ``LeadResult`` per input.

A run owns ``concurrency`` worker tasks that pull ids lazily from the caller's iterable and
push results into a queue no longer than the pool, so memory is bounded by the concurrency,
not by the number of ids. Every input ends with exactly one result: a lead, or a typed error
as a value. Closing the iteration (``break``, ``aclose()``, cancellation) cancels the workers
and awaits them before it returns, so no request or connection outlives the run.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
    Sized,
)
from typing import Any

import attrs

from ._errors import AuthenticationError, DialNexaError, PermissionDeniedError, RouteNotFoundError
from ._models import Lead, LeadResult
from ._stats import ClientStats

__all__ = [
    "BARE_IDS",
    "BulkProgress",
    "LeadIds",
    "ProgressCallback",
    "collect_results",
    "iter_results",
    "not_bare",
]

LeadIds = Iterable[str] | AsyncIterable[str]
"""What the bulk calls accept: any iterable or async iterable of ids, never a bare ``str``."""

BARE_IDS = "a bare str is one id, not many: pass [lead_id] (or get_lead) for one id"
"""Why a bare ``str`` (an iterable of one-character strings) is refused as ``lead_ids``."""


def not_bare(lead_ids: LeadIds | bytes) -> LeadIds:
    """``lead_ids``, unless it is a bare ``str`` or ``bytes``, which would iterate as characters.

    Args:
        lead_ids: what the caller passed as the ids of a bulk call.

    Raises:
        TypeError: ``lead_ids`` is a ``str``, ``bytes`` or ``bytearray``.
    """
    if isinstance(lead_ids, (str, bytes, bytearray)):
        raise TypeError(
            f"lead_ids must be an iterable of ids, not {type(lead_ids).__name__}: " + BARE_IDS
        )
    return lead_ids


PROGRESS_INTERVAL = 0.1
"""Seconds between two progress reports (plus one at the end)."""

_DOOMING = (AuthenticationError, PermissionDeniedError, RouteNotFoundError)
"""Errors about the key or the base URL: every later request would fail the same way."""


@attrs.frozen
class BulkProgress:
    """A snapshot of a bulk run, handed to the ``progress`` callback.

    Args:
        total: the number of ids, when the input had a length; else ``None``.
        done: results produced so far.
        ok: of those, leads.
        failed: of those, errors.
        retries: retries the client made since the run began.
        rate_limited: 429 answers since the run began.
        send_rate: requests per second over the last second.
        concurrency: the current adaptive limit on requests in flight.
        cooldown_seconds: seconds the client spent paused by rate limits since the run began.
        elapsed: seconds since the run began.
    """

    total: int | None
    done: int
    ok: int
    failed: int
    retries: int
    rate_limited: int
    send_rate: float
    concurrency: int
    cooldown_seconds: float
    elapsed: float


ProgressCallback = Callable[[BulkProgress], Any]


class _End:
    """The marker a worker queues when it has no more ids."""


class _Crash:
    """A worker's unexpected exception, carried to the consumer to be raised there."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = _End()


class _IdSource:
    """Hands ids to workers one at a time from a sync or async iterable."""

    def __init__(self, lead_ids: LeadIds) -> None:
        self._sync: Iterable[str] | None = None
        self._async: AsyncIterator[str] | None = None
        if isinstance(lead_ids, AsyncIterable):
            self._async = aiter(lead_ids)
            # Async generators refuse a second __anext__ while one is pending.
            self._lock = asyncio.Lock()
        else:
            self._sync = iter(lead_ids)
        self._exhausted = False

    async def next(self) -> str | _End:
        """The next id, or ``_END`` once the input is exhausted."""
        if self._exhausted:
            return _END
        if self._sync is not None:
            lead_id = next(self._sync, _END)  # type: ignore[call-overload]
        else:
            assert self._async is not None
            async with self._lock:
                if self._exhausted:
                    return _END
                try:
                    lead_id = await anext(self._async)
                except StopAsyncIteration:
                    lead_id = _END
        if lead_id is _END:
            self._exhausted = True
        return lead_id  # type: ignore[no-any-return]


class _Run:
    """One bulk run's shared state."""

    def __init__(self, fetch: Callable[[str], Awaitable[Lead]]) -> None:
        self.fetch = fetch
        self.doomed: DialNexaError | None = None

    async def result_for(self, lead_id: str) -> LeadResult:
        doomed = self.doomed
        if doomed is not None:
            return LeadResult(lead_id, error=_copy_error(doomed))
        try:
            return LeadResult(lead_id, lead=await self.fetch(lead_id))
        except _DOOMING as error:
            if self.doomed is None:
                self.doomed = error
            return LeadResult(lead_id, error=error)
        except DialNexaError as error:
            return LeadResult(lead_id, error=error)


def _copy_error(error: DialNexaError) -> DialNexaError:
    """A fresh instance of ``error`` for another id, for which no request was sent."""
    clone = copy.copy(error)
    clone.attempts = 0
    return clone


async def _worker(source: _IdSource, run: _Run, out: asyncio.Queue[object]) -> None:
    try:
        while True:
            lead_id = await source.next()
            if lead_id is _END:
                break
            await out.put(await run.result_for(lead_id))  # type: ignore[arg-type]
    except Exception as error:  # an input iterator that raised, or a defect: surface it
        await out.put(_Crash(error))
    await out.put(_END)


async def iter_results(
    lead_ids: LeadIds,
    fetch: Callable[[str], Awaitable[Lead]],
    *,
    workers: int,
    stats: ClientStats,
    progress: ProgressCallback | None = None,
) -> AsyncGenerator[LeadResult, None]:
    """Yield one ``LeadResult`` per id, in completion order.

    Args:
        lead_ids: the ids, read lazily.
        fetch: fetches one lead or raises a ``DialNexaError`` (``get_lead`` of the client).
        workers: how many requests this run keeps in flight at most.
        stats: the client's counters, for progress reports.
        progress: called with a ``BulkProgress`` every ``PROGRESS_INTERVAL`` s and at the end.
    """
    total = len(lead_ids) if isinstance(lead_ids, Sized) else None
    if total is not None:
        workers = max(1, min(workers, total))
    source = _IdSource(lead_ids)
    run = _Run(fetch)
    out: asyncio.Queue[object] = asyncio.Queue(maxsize=workers)
    reporter = _Reporter(stats, total, progress) if progress is not None else None
    tasks = [asyncio.create_task(_worker(source, run, out)) for _ in range(workers)]
    running = workers
    try:
        while running:
            item = await out.get()
            if item is _END:
                running -= 1
                continue
            if isinstance(item, _Crash):
                raise item.error
            assert isinstance(item, LeadResult)
            if reporter is not None:
                reporter.count(item)
            yield item
        if reporter is not None:
            reporter.report()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def collect_results(
    lead_ids: Sequence[str],
    fetch: Callable[[str], Awaitable[Lead]],
    *,
    workers: int,
    stats: ClientStats,
    progress: ProgressCallback | None = None,
) -> list[LeadResult]:
    """Return one ``LeadResult`` per id of a sequence, in its order.

    The workers write each result in place, so no consumer task has to be woken per result
    as ``iter_results`` must.

    Args:
        lead_ids: the ids.
        fetch: fetches one lead or raises a ``DialNexaError`` (``get_lead`` of the client).
        workers: how many requests this run keeps in flight at most.
        stats: the client's counters, for progress reports.
        progress: called with a ``BulkProgress`` every ``PROGRESS_INTERVAL`` s and at the end.
    """
    total = len(lead_ids)
    results: list[LeadResult | None] = [None] * total
    run = _Run(fetch)
    reporter = _Reporter(stats, total, progress) if progress is not None else None
    positions = iter(range(total))  # shared by the workers: each position is taken once

    async def worker() -> None:
        for index in positions:
            result = await run.result_for(lead_ids[index])
            results[index] = result
            if reporter is not None:
                reporter.count(result)

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, min(workers, total)))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if reporter is not None:
        reporter.report()
    return results  # type: ignore[return-value]  # every position was filled above


class _Reporter:
    """Counts results and calls the progress callback at most every ``PROGRESS_INTERVAL``."""

    def __init__(self, stats: ClientStats, total: int | None, callback: ProgressCallback) -> None:
        self._stats = stats
        self._total = total
        self._callback = callback
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        self._last = self._started
        self._retries = stats.retries
        self._rate_limited = stats.rate_limited
        self._cooldown = stats.cooldown_seconds
        self.ok = 0
        self.failed = 0

    def count(self, result: LeadResult) -> None:
        if result.ok:
            self.ok += 1
        else:
            self.failed += 1
        if self._loop.time() - self._last >= PROGRESS_INTERVAL:
            self.report()

    def report(self) -> None:
        now = self._loop.time()
        self._last = now
        stats = self._stats
        self._callback(
            BulkProgress(
                total=self._total,
                done=self.ok + self.failed,
                ok=self.ok,
                failed=self.failed,
                retries=stats.retries - self._retries,
                rate_limited=stats.rate_limited - self._rate_limited,
                send_rate=stats.send_rate,
                concurrency=stats.concurrency_limit,
                cooldown_seconds=stats.cooldown_seconds - self._cooldown,
                elapsed=now - self._started,
            )
        )
