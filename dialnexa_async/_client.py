"""``AsyncDialNexa``: build the request, then send it, interpret the answer, retry a failure."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Hashable
from types import TracebackType

import aiohttp

from . import _constants as C
from ._bulk import LeadIds, ProgressCallback, collect_results, iter_results
from ._clock import Clock, SystemClock
from ._errors import APIStatusError, DialNexaError, RateLimitError
from ._models import Lead, LeadResult
from ._rate_control import ClientRateControl, Ticket
from ._rate_store import RateStore
from ._retry import RetryPolicy
from ._sansio.interpret import interpret
from ._sansio.request import default_headers, lead_url, normalize_base_url, user_agent
from ._shared_control import key_id_of
from ._stats import ClientStats
from ._transport import AiohttpTransport, SSLOption, StaleConnection

__all__ = ["AsyncDialNexa"]


class AsyncDialNexa:
    """An async client of the DialNexa API that owns one aiohttp connection pool.

    Use it as ``async with AsyncDialNexa() as client: ...``, or call ``await client.close()``.

    Args:
        api_key: the API key; default: the ``DIALNEXA_API_KEY`` environment variable.
        base_url: the API root; default: ``DIALNEXA_BASE_URL``, else
            ``https://api.dialnexa.com/v1``.
        timeout: seconds one attempt may take, from sending to the last body byte.
        max_retries: retries after the first attempt; 0 turns retrying off.
        max_concurrency: the most requests in flight at once across the whole client.
        rate_limit: requests per second the client never exceeds; ``None`` to be paced by the
            server's answers only.
        session: an ``aiohttp.ClientSession`` the caller owns; the client never closes it.
        max_retry_wait: a server-given wait longer than this many seconds is not slept: the
            call fails at once with ``RateLimitError.retry_after`` set (and
            ``refused_by_client`` when the client withheld the request instead of sending it).
        max_response_bytes: the largest body accepted; past it the call fails with
            ``ResponseTooLargeError`` without reading the rest.
        ssl: ``None`` for default certificate verification, or an ``ssl.SSLContext``.
        clock: where time is read and waits are slept; pass a ``VirtualClock`` in tests to
            make every retry wait and cooldown instant.
        rate_store: where rate-control state lives: ``None`` keeps it in this client; a
            ``RedisRateStore`` shares the server's pause, its window budget, the learned rate
            and the ``rate_limit`` cap with every client on the same Redis and key id.

    Raises:
        DialNexaError: no API key was given or found in the environment.
        ValueError: an argument is out of range.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = C.DEFAULT_TIMEOUT,
        max_retries: int = C.DEFAULT_MAX_RETRIES,
        max_concurrency: int = C.DEFAULT_MAX_CONCURRENCY,
        rate_limit: float | None = None,
        session: aiohttp.ClientSession | None = None,
        max_retry_wait: float = C.DEFAULT_MAX_RETRY_WAIT,
        max_response_bytes: int = C.DEFAULT_MAX_RESPONSE_BYTES,
        ssl: SSLOption = None,
        clock: Clock | None = None,
        rate_store: RateStore | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(C.API_KEY_ENV)
        if not key:
            raise DialNexaError(
                f"no API key: pass api_key= or set the {C.API_KEY_ENV} environment variable"
            )
        if not isinstance(key, str) or any(c in key for c in "\r\n"):
            raise DialNexaError("the API key must be a single-line str")
        _check_positive("timeout", timeout)
        _check_positive("max_retry_wait", max_retry_wait)
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        if not isinstance(max_response_bytes, int) or max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be an int >= 1, got {max_response_bytes!r}")
        if rate_limit is not None:
            _check_positive("rate_limit", rate_limit)

        self._base_url = normalize_base_url(
            base_url or os.environ.get(C.BASE_URL_ENV) or C.DEFAULT_BASE_URL
        )
        self._timeout = float(timeout)
        self._max_concurrency = max_concurrency
        self._clock: Clock = clock or SystemClock()
        self._rate = ClientRateControl(
            self._clock,
            rate_limit=rate_limit,
            max_wait=max_retry_wait,
            max_concurrency=max_concurrency,
            store=rate_store,
            key_id=key_id_of(key),
        )
        self._policy = RetryPolicy(
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            shared_pause=lambda: self._rate.paused_for,
        )
        self._transport = AiohttpTransport(
            session=session,
            headers=default_headers(key, user_agent(aiohttp.__version__)),
            max_connections=max_concurrency,
            ssl=ssl,
            timeout=self._timeout,
            max_bytes=max_response_bytes,
        )
        # At or below the connector limit, so no request waits for a pooled connection inside
        # its deadline (aiohttp counts that wait against the timeout).
        self._slots = self._rate.concurrency
        self._closed = False
        self.stats = ClientStats(self._rate)
        """Cumulative counters of this client's traffic."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self._base_url!r}, "
            f"max_concurrency={self._max_concurrency}, closed={self._closed})"
        )

    @property
    def base_url(self) -> str:
        """The API root requests go to, without a trailing slash."""
        return self._base_url

    @property
    def max_concurrency(self) -> int:
        """The most requests in flight at once across the whole client."""
        return self._max_concurrency

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    async def __aenter__(self) -> AsyncDialNexa:
        self._ensure_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool the client created; harmless to call twice."""
        self._closed = True
        await self._transport.close()
        await self._rate.aclose()

    def _ensure_open(self) -> None:
        if self._closed:
            raise DialNexaError("the client is closed")

    async def get_lead(self, lead_id: str) -> Lead:
        """Fetch one campaign lead.

        Args:
            lead_id: the campaign-lead id; sent percent-encoded as one path segment.

        Raises:
            ValueError: ``lead_id`` is empty, not a ``str``, or ``.``/``..``.
            DialNexaError: a subclass saying why the lead could not be fetched.
        """
        url = lead_url(self._base_url, lead_id)
        self._ensure_open()
        return await self._attempt(url)

    async def get_leads(
        self,
        lead_ids: LeadIds,
        *,
        concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[LeadResult]:
        """Fetch many leads concurrently; one result per input, in input order.

        A duplicate id is fetched once and its result stands at every position it was given.
        Failures are values (``LeadResult.error``), never raised; a 401 or 403 stops new
        requests and gives every remaining id that same error.

        Args:
            lead_ids: any iterable (or async iterable) of ids.
            concurrency: requests this call keeps in flight at most; capped by, and by
                default equal to, the client's ``max_concurrency``.
            progress: called with a ``BulkProgress`` about ten times a second and at the end.
        """
        self._ensure_open()
        if isinstance(lead_ids, AsyncIterable):
            ids = [lead_id async for lead_id in lead_ids]
        else:
            ids = list(lead_ids)
        keys = [_dedup_key(lead_id) for lead_id in ids]
        first_of: dict[Hashable, int] = {}
        unique: list[str] = []
        for key, lead_id in zip(keys, ids, strict=True):
            if key not in first_of:
                first_of[key] = len(unique)
                unique.append(lead_id)
        results = await collect_results(
            unique,
            self._fetch_for_bulk,
            workers=self._workers(concurrency),
            stats=self.stats,
            progress=progress,
        )
        return [results[first_of[key]] for key in keys]

    async def iter_leads(
        self,
        lead_ids: LeadIds,
        *,
        concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> AsyncGenerator[LeadResult, None]:
        """Fetch many leads concurrently, yielding each result as it completes.

        Ids are read lazily, so memory stays bounded by ``concurrency`` however many there
        are; each input item yields exactly one result. Leaving the loop early (or cancelling)
        cancels the requests in flight; wrap the call in ``contextlib.aclosing`` to have that
        happen before the next line runs.

        Args:
            lead_ids: any iterable or async iterable of ids.
            concurrency: requests this call keeps in flight at most; capped by, and by
                default equal to, the client's ``max_concurrency``.
            progress: called with a ``BulkProgress`` about ten times a second and at the end.
        """
        self._ensure_open()
        async with contextlib.aclosing(
            iter_results(
                lead_ids,
                self._fetch_for_bulk,
                workers=self._workers(concurrency),
                stats=self.stats,
                progress=progress,
            )
        ) as results:
            async for result in results:
                yield result

    def _workers(self, concurrency: int | None) -> int:
        """A bulk call's worker count: its ``concurrency``, capped by the client's."""
        if concurrency is None:
            return self._max_concurrency
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        return min(concurrency, self._max_concurrency)

    def _fetch_for_bulk(self, lead_id: str) -> Awaitable[Lead]:
        """``get_lead`` for one id of a bulk run; a closed client is an error for that id.

        A plain function returning the coroutine: one frame less on every resumption of a
        bulk request, and a bad id still raises when the bulk run calls it.
        """
        url = lead_url(self._base_url, lead_id)
        self._ensure_open()
        return self._attempt(url)

    async def _attempt(self, url: str, number: int = 1) -> Lead:
        """One attempt in three steps: send, interpret the answer, hand a failure to the retries.

        *Send* waits for a slot and the pacing, then the transport; *interpret* is the pure
        ``interpret()``; the *retry loop* is ``_retry``. The first attempt of a call runs
        before any tenacity object exists: building one costs more than the whole rest of a
        successful call. When it fails, ``_retry`` hands that outcome to a fresh controller,
        so every retry decision is still tenacity's. Later attempts, which ``_retry`` makes,
        raise their failure to it. Sending stays inline: one coroutine frame per request.
        """
        stats = self.stats
        rate = self._rate
        slots = self._slots
        try:
            # Send. Synchronous fast paths first: an unthrottled request costs no coroutine.
            if not slots.try_acquire():
                await slots.acquire()
            try:
                ticket = rate.try_acquire() or await self._acquire(number - 1)
                stats.requests += 1
                while True:
                    try:
                        raw = await self._transport.get(url)
                        break
                    except StaleConnection:
                        # Resent at once, but as a new request in the sending order, so the
                        # window budget counts every request the server may have seen.
                        stats.resends += 1
                        ticket = rate.try_acquire() or await self._acquire(number)
            except RateLimitError:
                raise  # only rate control raises it here, and _acquire has settled it
            except DialNexaError as error:
                stats.record_failure(error)
                error.attempts = number
                raise
            finally:
                slots.release()
            # Interpret.
            outcome, answer = interpret(
                raw.status, raw.headers, raw.body, now=self._clock.time(), attempts=number
            )
            if answer is None:
                rate.observe_success(ticket)
            else:
                rate.observe(answer, ticket)
            if isinstance(outcome, Lead):
                self._policy.budget.deposit()
                return outcome
            if isinstance(outcome, APIStatusError):
                stats.record_failure(outcome)
            else:
                self._policy.budget.deposit()  # a 2xx all the same: only its body is wrong
            raise outcome
        except DialNexaError as error:
            if number > 1:
                raise
            first = error
        return await self._retry(url, first)

    async def _acquire(self, sent: int) -> Ticket:
        """``rate.acquire()``; a refusal is counted as one and says the client withheld it.

        Args:
            sent: how many requests this call has sent so far: the refusal's ``attempts``.
        """
        try:
            # A retry never goes out as a pause's probe: only fresh requests risk a refusal.
            return await self._rate.acquire(may_probe=sent == 0)
        except RateLimitError as error:
            error.attempts = sent
            if not error.refused_by_client:
                error.refused_by_client = True
                error.message = f"the client withheld the request: {error.message}"
            self.stats.record_failure(error)
            raise

    async def _retry(self, url: str, first: DialNexaError) -> Lead:
        """Carry on after a failed first attempt, under the retry policy."""
        retrying = self._policy.new_retrying(self._clock.sleep, self.stats.on_retry)
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if number == 1:
                    raise first
                return await self._attempt(url, number)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


def _dedup_key(lead_id: object) -> Hashable:
    """How duplicates are recognised: by value, or by identity for an unhashable bad id."""
    try:
        hash(lead_id)
    except TypeError:
        return ("unhashable", id(lead_id))
    return lead_id


def _check_positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
