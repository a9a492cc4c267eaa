"""The aiohttp transport: owns the session and connector, sends one GET, maps aiohttp's errors.

Everything that can go wrong below HTTP is translated here into ``APIConnectionError`` or
``APITimeoutError`` (chained with ``from``), and the body is read with a size cap so a huge or
decompressing-bomb answer fails without being buffered.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl as ssl_module
import weakref
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, NamedTuple

import aiohttp
from aiohttp.http_exceptions import ContentEncodingError
from multidict import CIMultiDictProxy
from yarl import URL

from ._constants import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    DialNexaError,
    ResponseTooLargeError,
    UnsupportedEncodingError,
)
from ._lifecycle import CLOSED
from ._redact import detach

__all__ = ["AiohttpTransport", "RawResponse", "StaleConnection"]

SSLOption = ssl_module.SSLContext | bool | None

RECV_SIZE = 64 * 1024
"""Bytes one socket read asks for on the connections the client opens.

asyncio's selector transport allocates a fresh buffer of its ``max_size`` (256 KiB) for every
read. That is above glibc's default mmap threshold, so each read of a one-page answer can
cost an mmap, page faults and an munmap: 15-30 us per request measured here, a quarter of the
client's CPU at full speed. 64 KiB (aiohttp's own read buffer size) stays on the heap.
"""

ACCEPT_ENCODING = str(
    aiohttp.ClientRequest.DEFAULT_HEADERS.get(aiohttp.hdrs.ACCEPT_ENCODING) or "gzip, deflate"
)
"""The encodings this aiohttp can decode here, as aiohttp itself would ask for them.

``br`` only with Brotli installed, ``zstd`` only with a zstd decoder; sent on every request,
so a caller's session defaults cannot ask for an encoding the client cannot read.
"""


class RawResponse(NamedTuple):
    """One HTTP answer, body fully read."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class AiohttpTransport:
    """Sends GET requests over one aiohttp session.

    Args:
        session: a session the caller owns; used as is and never closed, and refused if made
            with ``auth=``. ``None`` to have the transport create its own, lazily, inside the
            running loop.
        headers: the headers every request carries.
        max_connections: the connector's limit for a session the transport creates.
        ssl: ``None`` for default verification, an ``SSLContext`` to customise it, ``False``
            to disable it (never do that against the real API).
        timeout: the deadline of one whole request in seconds, body included.
        max_bytes: the most body bytes a 2xx answer may have.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None,
        headers: Mapping[str, str],
        max_connections: int,
        ssl: SSLOption = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if session is not None and session.auth is not None:
            # aiohttp would refuse every request (a raw ValueError) rather than pick one.
            raise ValueError(
                "the session was made with auth=, which would replace the API key; "
                "pass a session without it"
            )
        self._session = session
        self._owns_session = session is None
        self._headers = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
        # A session of our own carries the headers as its defaults, which aiohttp copies
        # per request at a tenth of the cost of merging per-request headers into them.
        self._request_headers = None if session is None else self._headers
        self._max_connections = max_connections
        self._ssl: ssl_module.SSLContext | bool = True if ssl is None else ssl
        # aiohttp's total timeout runs from sending to the last body byte (the response
        # reads under the same timer), so a trickling body cannot outlive it. It also counts
        # waiting for a pooled connection: the client's slots keep that wait outside.
        self._timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_bytes = max_bytes
        self._closed = False
        # Answers whose body is being read: closing the pool alone would leave such a read
        # waiting for its deadline (aiohttp detaches the body from a connection it closes).
        self._reading: set[aiohttp.ClientResponse] = set()

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use so it binds to the running loop.

        Raises:
            DialNexaError: the transport was closed; it never opens a pool again.
        """
        session = self._session
        if session is None:
            if self._closed:
                raise DialNexaError(CLOSED)
            connector = _PoolAwareConnector(
                limit=self._max_connections,
                limit_per_host=0,
                ssl=self._ssl,
                ttl_dns_cache=300,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers=self._headers,
                raise_for_status=False,
                requote_redirect_url=False,
            )
            _fence_aiohttp_internals(session)
            self._session = session
        return session

    async def get(self, url: str) -> RawResponse:
        """Send one GET and read the whole answer within the timeout.

        Args:
            url: the already percent-encoded URL; it is not re-normalised.
        """
        session = self.session()
        # The connector marks this request if it gets a pooled connection.
        pooled = _task_marker()
        response: aiohttp.ClientResponse | None = None
        failure: DialNexaError
        try:
            # What a caller's session may default otherwise, pinned so that how an answer is
            # classified is the client's alone.
            response = await session.get(
                URL(url, encoded=True),
                headers=self._request_headers,
                allow_redirects=False,
                ssl=self._ssl,
                timeout=self._client_timeout,
                raise_for_status=False,
                auto_decompress=True,
            )
            self._reading.add(response)
            async with response:
                content = response.content
                length = response.content_length
                if (
                    length is not None
                    and length <= self._max_bytes
                    and "content-encoding" not in response.headers
                ):
                    if content.total_bytes == length:
                        # The whole body came with the head, as a small answer does: take it
                        # without the four coroutines of response.read().
                        body = content.read_nowait()
                    else:
                        body = await response.read()
                else:
                    body = await _read_capped(response, self._max_bytes)
                return RawResponse(response.status, response.headers, body)
        except DialNexaError:
            raise
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            failure = APIConnectionError(f"TLS failure: {exc}", retryable=False)
        except aiohttp.ServerTimeoutError as exc:
            failure = APITimeoutError(f"request timed out: {exc}")
        except asyncio.TimeoutError:
            failure = APITimeoutError(f"request took longer than {self._timeout:g}s")
        except aiohttp.ClientResponseError as exc:
            if _cannot_decode(exc):
                failure = UnsupportedEncodingError(
                    f"the answer's Content-Encoding cannot be decoded here: {exc.message}",
                    status_code=0,
                )
            else:
                failure = APIConnectionError(f"invalid HTTP answer: {exc.message}")
        except (aiohttp.ClientError, OSError) as exc:
            detach(exc)  # its frames hold the request headers; it is chained for its text
            if (
                pooled.reused
                and response is None
                and isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError))
            ):
                # A keep-alive connection the server closed while it sat in the pool; no
                # answer came, so the request may be resent at once (RFC 9112 9.3.1).
                raise StaleConnection(f"pooled connection was closed: {exc}") from exc
            raise APIConnectionError(f"connection failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if response is not None:
                self._reading.discard(response)
        # Raised outside the handlers: ``from None`` still keeps aiohttp's exception as
        # ``__context__``, and a ClientResponseError's repr shows the request headers.
        raise failure

    async def close(self) -> None:
        """Close the session if the transport created it; the transport stays closed.

        Every request in flight ends now, a body being read included.
        """
        self._closed = True
        for response in list(self._reading):
            response.close()  # wakes its body's reader with "Connection closed"
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()


def _cannot_decode(error: aiohttp.ClientResponseError) -> bool:
    """Whether aiohttp refused an answer's head for a Content-Encoding it cannot decode here.

    aiohttp raises ``ContentEncodingError`` with the head only for that (a corrupt body fails
    later, while it is read); the ``ClientResponseError`` is raised from it, directly or
    through a copy.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ContentEncodingError):
            return True
        seen = seen.__cause__
    return False


class StaleConnection(APIConnectionError):
    """A keep-alive connection from the pool had been closed; no answer came.

    An idempotent request may then be resent at once (RFC 9112 9.3.1). The dead connection
    is dropped from the pool, so resending ends within the pool's size.
    """


class _Pooled:
    """Whether the request the owning task is sending got a connection from the pool."""

    __slots__ = ("owner", "reused")

    def __init__(self, owner: weakref.ReferenceType[asyncio.Task[Any]] | None) -> None:
        self.owner = owner
        self.reused = False


def _task_marker() -> _Pooled:
    """The current task's marker, cleared for a new request.

    A task sends one request at a time, so one marker per task suffices; setting a context
    variable per request would cost four objects each time. A child task inherits its
    parent's context, so a marker is reused only by the task that set it.
    """
    task = asyncio.current_task()
    pooled = _POOLED.get()
    if pooled is None or pooled.owner is None or pooled.owner() is not task:
        pooled = _Pooled(None if task is None else weakref.ref(task))
        _POOLED.set(pooled)
    else:
        pooled.reused = False
    return pooled


_POOLED: ContextVar[_Pooled | None] = ContextVar("dialnexa_async_pooled", default=None)
"""The marker of the request the current task is sending; the connector sets it."""


class _PoolAwareConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that marks requests served by a pooled (reused) connection.

    aiohttp's tracing can say the same, but enabling it costs every request about 15 us of
    signal dispatch; this costs one context-variable lookup, and only on reuse.
    """

    async def _get(self, key: Any, traces: Any) -> Any:
        connection = await super()._get(key, traces)
        if connection is not None and (pooled := _POOLED.get()) is not None:
            pooled.reused = True
        return connection

    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:
        protocol = await super()._create_connection(req, traces, timeout)
        # Only a plain selector transport has ``max_size``; TLS reads into a reused buffer
        # already, and other loops (uvloop) bring their own.
        transport = getattr(protocol, "transport", None)
        if transport is not None and hasattr(transport, "max_size"):
            transport.max_size = RECV_SIZE
        return protocol


AIOHTTP_HOOKS = {
    "TCPConnector._get": ("key", "traces"),
    "TCPConnector._create_connection": ("req", "traces", "timeout"),
}
"""The private aiohttp methods ``_PoolAwareConnector`` overrides, with the parameters it takes."""


def _fence_aiohttp_internals(session: aiohttp.ClientSession) -> None:
    """Check every private aiohttp hook this module relies on, then turn off the hidden resend.

    aiohttp silently re-sends an idempotent request once when a reused connection turns out
    closed; that hides attempts from the retry policy, whose count and backoff must govern
    every request the server sees. The connector overrides find stale connections and shrink
    the read buffer. An aiohttp that renamed or reshaped any of these would degrade silently
    (extra hidden requests, no stale-connection resend), so it fails here, loudly, before the
    session of a new client sends anything; the session is detached, leaving nothing open.

    Args:
        session: the session the transport just created, with a ``_PoolAwareConnector``.

    Raises:
        DialNexaError: naming each hook this aiohttp no longer has in the expected shape.
    """
    problems: list[str] = []
    for hook, params in AIOHTTP_HOOKS.items():
        method = getattr(aiohttp.TCPConnector, hook.partition(".")[2], None)
        if method is None or not inspect.iscoroutinefunction(method):
            problems.append(f"{hook} is missing or no longer a coroutine function")
        elif (takes := tuple(inspect.signature(method).parameters)[1:]) != params:
            problems.append(f"{hook} takes {takes}, not {params}")
    if not isinstance(getattr(session, "_retry_connection", None), bool):
        problems.append("ClientSession._retry_connection is missing")
    if problems:
        session.detach()
        raise DialNexaError(
            f"aiohttp {aiohttp.__version__} changed private hooks dialnexa-async relies on: "
            f"{'; '.join(problems)}. Install an aiohttp version dialnexa-async supports"
        )
    session._retry_connection = False


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, or ``ResponseTooLargeError`` as soon as a 2xx body passes ``max_bytes``.

    For the answers ``AiohttpTransport.get`` does not read itself: a declared length over the
    cap, no declared length, or a compressed body (whose declared length says nothing of the
    decoded size). An error answer's body is only evidence for the error: past the cap it is
    cut, so a huge proxy page still gives the status error (and its retry), not a validation
    error.
    """
    evidence = response.status >= 300
    length = response.content_length
    if length is not None and length > max_bytes and not evidence:
        response.close()
        raise _too_large(response, max_bytes)
    # Read piece by piece and stop at the cap.
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.readany():
        size += len(chunk)
        if size > max_bytes:
            response.close()
            if evidence:
                return b"".join([*chunks, chunk])[:max_bytes]
            raise _too_large(response, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(response: aiohttp.ClientResponse, max_bytes: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"response body is larger than max_response_bytes={max_bytes}",
        status_code=response.status,
        request_id=response.headers.get("x-request-id"),
    )
