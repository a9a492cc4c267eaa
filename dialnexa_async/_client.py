"""``AsyncDialNexa``: build the request, then send it, interpret the answer, retry a failure."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Hashable
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn, overload

import aiohttp

from . import _constants as C
from ._bulk import LeadIds, ProgressCallback, collect_results, iter_results, not_bare
from ._clock import Clock, SystemClock
from ._errors import (
    APIConnectionError,
    APIStatusError,
    DialNexaError,
    InsecureBaseURLWarning,
    RateLimitError,
)
from ._lifecycle import OTHER_LOOP, Lifecycle, WaitOverdue, closed_error, sleeps_until
from ._models import Lead, LeadResult
from ._rate_control import ClientRateControl, Ticket
from ._rate_store import RateStore
from ._redact import Redactor
from ._retry import RetryPolicy
from ._sansio.interpret import interpret
from ._sansio.request import (
    api_key_problem,
    default_headers,
    has_version_segment,
    lead_url,
    normalize_base_url,
    sends_in_clear,
    user_agent,
)
from ._shared_control import key_id_of
from ._stats import ClientStats
from ._transport import AiohttpTransport, SSLOption, StaleConnection

if TYPE_CHECKING:
    from typing_extensions import deprecated
else:

    def deprecated(message: str) -> object:
        """PEP 702's marker, which only type checkers read (no runtime dependency)."""
        return lambda function: function


__all__ = ["AsyncDialNexa"]


class AsyncDialNexa:
    """An async client of the DialNexa API that owns one aiohttp connection pool.

    Use it as ``async with AsyncDialNexa() as client: ...``, or call ``await client.close()``.
    A client belongs to the event loop it first runs on: create one per loop (inside the
    coroutine given to ``asyncio.run``, or a framework's startup hook) and close it there.
    Under another loop every call raises ``DialNexaError``; the client does not rebind.

    Args:
        api_key: the API key; default: the ``DIALNEXA_API_KEY`` environment variable.
        base_url: the API root; default: ``DIALNEXA_BASE_URL``, else
            ``https://api.dialnexa.com/v1``. A path without a version segment (``/v1``)
            gets a ``UserWarning``: the API would answer every request with a route 404.
        timeout: seconds one attempt may take, from sending to the last body byte.
        max_retries: retries after the first attempt; 0 turns retrying off.
        max_concurrency: the most requests in flight at once across the whole client.
        rate_limit: requests per second the client never exceeds; ``None`` to be paced by the
            server's answers only.
        session: an ``aiohttp.ClientSession`` the caller owns; the client never closes it.
        max_retry_wait: a server-given wait longer than this many seconds is not slept: the
            call fails at once with ``RateLimitError.retry_after`` set (and
            ``refused_by_client`` when the client withheld the request instead of sending it).
            Nor does a retry wait longer than this for the client's own rate control.
        max_response_bytes: the largest body accepted; past it the call fails with
            ``ResponseTooLargeError`` without reading the rest.
        ssl: ``None`` for default certificate verification, or an ``ssl.SSLContext``.
        clock: where time is read and waits are slept; pass a ``VirtualClock`` in tests to
            make every retry wait and cooldown instant.
        rate_store: where rate-control state lives: ``None`` keeps it in this client; a
            ``RedisRateStore`` shares the server's pause, its window budget, the learned rate
            and the ``rate_limit`` cap with every client on the same Redis and key id.

    Raises:
        DialNexaError: no API key was given or found in the environment, or it holds a
            character a header cannot carry (the message names it, never the key).
        ValueError: an argument is out of range, or ``base_url`` carries credentials.

    Warns:
        InsecureBaseURLWarning: ``base_url`` is plain ``http://`` to a host that is not
            loopback, so the key would travel in clear.
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
        # The key leaves this frame's locals at once: a traceback of any error raised below
        # shows them (pytest --showlocals), and must not show the key.
        try:
            redactor = Redactor(_resolve_api_key(api_key))
        finally:
            del api_key
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
        if sends_in_clear(self._base_url):
            warnings.warn(
                f"base_url {self._base_url!r} is plain http:// to a host that is not loopback: "
                "the API key will travel unencrypted; use https://",
                InsecureBaseURLWarning,
                stacklevel=2,
            )
        self._redactor = redactor
        if not has_version_segment(self._base_url):
            warnings.warn(
                "base_url has no API version segment in its path; the API's routes are "
                "under /v1 (https://api.dialnexa.com/v1), so unless a proxy adds it, every "
                "request gets a 404 for a route that does not exist (RouteNotFoundError)",
                UserWarning,
                stacklevel=2,
            )
        self._timeout = float(timeout)
        self._max_concurrency = max_concurrency
        self._lifecycle = Lifecycle(clock or SystemClock())
        # Every wait goes through the lifecycle's clock, so closing the client ends it.
        self._clock: Clock = self._lifecycle.clock
        self._rate = ClientRateControl(
            self._clock,
            rate_limit=rate_limit,
            max_wait=max_retry_wait,
            max_concurrency=max_concurrency,
            store=rate_store,
            key_id=key_id_of(redactor.key),
        )
        self._policy = RetryPolicy(
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            shared_pause=lambda: self._rate.paused_for,
            resets_overstate=lambda: self._rate.resets_overstate,
        )
        self._transport = AiohttpTransport(
            session=session,
            headers=default_headers(redactor.key, user_agent(aiohttp.__version__)),
            max_connections=max_concurrency,
            ssl=ssl,
            timeout=self._timeout,
            max_bytes=max_response_bytes,
        )
        # At or below the connector limit, so no request waits for a pooled connection inside
        # its deadline (aiohttp counts that wait against the timeout).
        self._slots = self._rate.concurrency
        self.stats = ClientStats(self._rate)
        """Cumulative counters of this client's traffic."""

    def __repr__(self) -> str:
        if not hasattr(self, "stats"):  # set last in __init__
            # Half built: a traceback printer showing __init__'s locals asks for this too.
            return f"<{type(self).__name__} (not built)>"
        return (
            f"{type(self).__name__}(base_url={self._base_url!r}, "
            f"max_concurrency={self._max_concurrency}, closed={self.closed})"
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
        return self._lifecycle.closed

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
        """Close the connection pool the client created; harmless to call twice.

        A closed client stays closed: calls in flight end with ``DialNexaError("the client
        is closed")`` (a value in bulk calls), including those waiting to retry, and nothing
        reopens the pool. Close the client on the event loop it ran on; once that loop is
        closed, its connections can no longer be closed cleanly.

        Raises:
            DialNexaError: called on another loop while the client's own loop still runs.
        """
        lifecycle = self._lifecycle
        if lifecycle.foreign():
            if not lifecycle.loop_is_closed():
                raise DialNexaError(OTHER_LOOP)
            lifecycle.close()
            # Its loop is gone: aiohttp can only drop the pool, not shut its sockets down.
            with contextlib.suppress(RuntimeError):
                await self._transport.close()
            return
        lifecycle.close()
        await self._transport.close()
        await self._rate.aclose()

    def _ensure_open(self) -> None:
        self._lifecycle.check()

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

    @overload
    # PEP 702: type checkers read only a literal message (the runtime one is BARE_IDS).
    @deprecated("a bare str is one id, not many: pass [lead_id] (or get_lead) for one id")
    async def get_leads(
        self,
        lead_ids: str | bytes,
        *,
        concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> NoReturn: ...

    @overload
    async def get_leads(
        self,
        lead_ids: LeadIds,
        *,
        concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[LeadResult]: ...

    async def get_leads(
        self,
        lead_ids: LeadIds | bytes,
        *,
        concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[LeadResult]:
        """Fetch many leads concurrently; one result per input, in input order.

        A duplicate id is fetched once and its result stands at every position it was given.
        Failures are values (``LeadResult.error``), never raised; a 401 or 403, or a 404 for
        a route the API does not have (``RouteNotFoundError``), stops new requests and gives
        every remaining id that same error.

        Args:
            lead_ids: any iterable (or async iterable) of ids, never a bare ``str``: one id
                is ``[lead_id]``.
            concurrency: requests this call keeps in flight at most; capped by, and by
                default equal to, the client's ``max_concurrency``.
            progress: called with a ``BulkProgress`` about ten times a second and at the end.

        Raises:
            TypeError: ``lead_ids`` is a bare ``str`` or ``bytes`` (type checkers flag it
                too: mypy with ``--enable-error-code deprecated``, pyright by default).
            DialNexaError: the client is closed, or belongs to another event loop.
        """
        given = not_bare(lead_ids)
        self._ensure_open()
        if isinstance(given, AsyncIterable):
            ids = [lead_id async for lead_id in given]
        else:
            ids = list(given)
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

    @overload
    # PEP 702: type checkers read only a literal message (the runtime one is BARE_IDS).
    @deprecated("a bare str is one id, not many: pass [lead_id] (or get_lead) for one id")
    def iter_leads(
        self,
        lead_ids: str | bytes,
        *,
        concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> NoReturn: ...

    @overload
    def iter_leads(
        self,
        lead_ids: LeadIds,
        *,
        concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> AsyncGenerator[LeadResult, None]: ...

    def iter_leads(
        self,
        lead_ids: LeadIds | bytes,
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
            lead_ids: any iterable or async iterable of ids, never a bare ``str``: one id is
                ``[lead_id]``.
            concurrency: requests this call keeps in flight at most; capped by, and by
                default equal to, the client's ``max_concurrency``.
            progress: called with a ``BulkProgress`` about ten times a second and at the end.

        Raises:
            TypeError: at once, when ``lead_ids`` is a bare ``str`` or ``bytes``.
            DialNexaError: on the first iteration, when the client is closed or belongs to
                another event loop.
        """
        return self._iter_leads(not_bare(lead_ids), concurrency, progress)

    async def _iter_leads(
        self, lead_ids: LeadIds, concurrency: int | None, progress: ProgressCallback | None
    ) -> AsyncGenerator[LeadResult, None]:
        """``iter_leads`` once its input is known not to be a bare string."""
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

    async def _attempt(self, url: str, number: int = 1, resent: list[bool] | None = None) -> Lead:
        """One attempt in three steps: send, interpret the answer, hand a failure to the retries.

        *Send* waits for a slot and the pacing, then the transport; *interpret* is the pure
        ``interpret()``; the *retry loop* is ``_retry``. The first attempt of a call runs
        before any tenacity object exists: building one costs more than the whole rest of a
        successful call. When it fails, ``_retry`` hands that outcome to a fresh controller,
        so every retry decision is still tenacity's. Later attempts, which ``_retry`` makes,
        raise their failure to it. Sending stays inline: one coroutine frame per request.

        Args:
            url: the lead's URL.
            number: the attempt's number in its call, from 1.
            resent: for a retry, one flag shared by the call's attempts: whether the call
                has resent a request already (set here when it does); ``None`` on the
                first attempt.
        """
        stats = self.stats
        rate = self._rate
        slots = self._slots
        lifecycle = self._lifecycle
        try:
            # Send. Synchronous fast paths first: an unthrottled request costs no coroutine.
            if not slots.try_acquire():
                await slots.acquire()
            sent = number - 1  # attempts of this call that went out before this one
            try:
                if lifecycle.closed:
                    raise closed_error()
                ticket = rate.try_acquire() or await self._acquire(sent)
                stats.requests += 1
                sent = number
                try:
                    raw = await self._transport.get(url)
                except StaleConnection as stale:
                    if (resent is not None and resent[0]) or lifecycle.closed:
                        raise APIConnectionError(stale.message) from stale
                    # Resent at once (RFC 9112 9.3.1), once per call, as a new request in
                    # the sending order, so the window budget counts every request the
                    # server may have seen.
                    if resent is None:
                        resent = [True]
                    else:
                        resent[0] = True
                    stats.resends += 1
                    ticket = rate.try_acquire() or await self._acquire(number)
                    try:
                        raw = await self._transport.get(url)
                    except StaleConnection as again:
                        raise APIConnectionError(again.message) from again
            except RateLimitError:
                raise  # only rate control raises it here, and _acquire has settled it
            except DialNexaError as error:
                if lifecycle.closed:
                    # The pool was closed under this request: the closed client's error.
                    raise closed_error(sent) from None
                stats.record_failure(error)
                error.attempts = sent
                raise
            finally:
                slots.release()
            # Interpret.
            outcome, answer = interpret(
                raw.status, raw.headers, raw.body, now=self._clock.time(), attempts=number
            )
            del raw  # an error's traceback keeps this frame, and the answer may echo the key
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
            # Before the retry loop logs it or the caller sees it.
            self._redactor.scrub(error)
            if number > 1:
                raise
            first = error
        return await self._retry(url, first, resent=resent is not None)

    async def _acquire(self, sent: int) -> Ticket:
        """``rate.acquire()``; a refusal is counted as one and says the client withheld it.

        A retry waits at most ``max_retry_wait`` here in all, however often the server renews
        its pauses meanwhile: past that it is withheld, so a server that refuses forever
        cannot keep a call waiting forever.

        Args:
            sent: how many requests this call has sent so far: the refusal's ``attempts``.
        """
        rate = self._rate
        max_wait = self._policy.max_retry_wait
        try:
            # A retry never goes out as a pause's probe: only fresh requests risk a refusal.
            if sent == 0:
                return await rate.acquire(may_probe=True)
            with sleeps_until(self._clock.monotonic() + max_wait):
                return await rate.acquire(may_probe=False)
        except WaitOverdue:
            error = RateLimitError(
                "the client withheld the request: the server's rate limit held this retry "
                f"for max_retry_wait={max_wait:g}s without letting it go",
                status_code=429,
                refused_by_client=True,
            )
        except RateLimitError as refusal:
            error = refusal
            if not error.refused_by_client:
                error.refused_by_client = True
                error.message = f"the client withheld the request: {error.message}"
        error.attempts = sent
        self.stats.record_failure(error)
        raise error

    async def _retry(self, url: str, first: DialNexaError, *, resent: bool) -> Lead:
        """Carry on after a failed first attempt, under the retry policy.

        A failure the policy could have retried but did not says why in its message.

        Args:
            url: the lead's URL.
            first: the first attempt's failure.
            resent: whether the first attempt used the call's one resend.
        """
        policy = self._policy
        clock = self._clock
        retrying = policy.new_retrying(clock.sleep, self.stats.on_retry)
        resends = [resent]
        last = first
        try:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    if number == 1:
                        raise first
                    try:
                        return await self._attempt(url, number, resends)
                    except DialNexaError as error:
                        last = error
                        raise
        except DialNexaError as error:
            if error is not last:
                error.attempts = last.attempts  # the client closed while the call waited
                raise
            reason, wait = policy.withheld(error)
            if reason is not None:
                error.message = f"{error.message} (not retried: {reason})"
                if wait > 0:
                    try:
                        await clock.sleep(wait)
                    except DialNexaError as closed:
                        closed.attempts = error.attempts
                        raise
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


def _resolve_api_key(api_key: str | None) -> str:
    """The key given, else ``$DIALNEXA_API_KEY``, checked once for what a header can carry.

    Raises:
        DialNexaError: no key, or one that cannot be sent unchanged; never quoting it.
    """
    key = api_key if api_key is not None else os.environ.get(C.API_KEY_ENV)
    if key is None or key == "":
        raise DialNexaError(
            f"no API key: pass api_key= or set the {C.API_KEY_ENV} environment variable"
        )
    if not isinstance(key, str):
        problem: str | None = f"the API key must be a str, not {type(key).__name__}"
    else:
        name = "the API key" if api_key is not None else f"the API key in ${C.API_KEY_ENV}"
        problem = api_key_problem(key, name)
    if problem is None:
        return key
    api_key = key = None  # the error's traceback keeps this frame and its locals
    raise DialNexaError(problem)


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
