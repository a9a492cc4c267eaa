"""A hostile HTTP/1.1 server on 127.0.0.1, and a guard that checks the SDK's invariants.

What it is for: real servers, proxies and networks fail below the level an HTTP mock reaches.
They reset connections, stall mid-body, lie about lengths, trickle bytes forever and send
bodies that decompress to gigabytes. ``HostileServer`` reads requests with asyncio streams and
answers each with a scripted *step*: an async function free to write anything, or nothing, to
the socket. It counts every request it receives per raw path and every connection it holds,
so a test asserts exactly how many attempts reached it and that the client closed them all.

``Guard`` (the ``guard`` fixture) wraps one test: it builds clients and servers, and when the
test ends checks that no connection, task, warning or loop error was left behind, that no
path was tried more than ``max_retries + 1`` times (plus the one resend a call may make of a
request lost on a stale keep-alive connection), and that the API key appears in no log
record, no ``repr(client)`` and no error string.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import json
import logging
import socket
import ssl
import struct
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

import pytest

import dialnexa_async as dnx

API_KEY = "key_hostile:s3cr3t-hostile-never-print-me"
SECRET = API_KEY.split(":", 1)[1]

LEAD: dict[str, Any] = {
    "id": "lead_abc123",
    "campaign_id": "cmp_xyz789",
    "phone_number": "+919876543210",
    "status": "completed",
    "created_at": "2024-03-01T10:00:00.000Z",
}
LEAD_BODY = json.dumps(LEAD).encode()

GRACE = 2.0  # seconds a server waits for the client to close its connections
_CHUNK = 64 * 1024
_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, zero timeout: close() sends RST, not FIN


class Exchange:
    """One request as it arrived, with the streams to answer it.

    Args:
        method: the request method.
        target: the raw request target, byte for byte as the client sent it (latin-1).
        headers: the request headers, names lower-cased.
        reader: the connection's reader.
        writer: the connection's writer.
    """

    def __init__(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.reader = reader
        self.writer = writer
        self.keep_alive = True
        """A step sets this to ``False`` to end the connection after it."""

    async def send(self, data: bytes | memoryview) -> None:
        """Write ``data`` and wait until the transport has taken it."""
        self.writer.write(data)
        await self.writer.drain()

    async def client_left(self) -> None:
        """Return once the client has closed or reset the connection."""
        with contextlib.suppress(ConnectionError, OSError):
            while await self.reader.read(_CHUNK):
                pass

    def reset(self) -> None:
        """Abort the connection so the client receives a TCP RST."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
        self.writer.transport.abort()
        self.keep_alive = False


Step = Callable[[Exchange], Awaitable[None]]


def head(status: int, headers: dict[str, str] | None = None, reason: str = "X") -> bytes:
    """The status line and headers of an answer, blank line included, as UTF-8."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- steps ----------------------------------------------------------------------------------


def reply(
    status: int = 200,
    body: bytes = LEAD_BODY,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    close: bool = False,
) -> Step:
    """A well-formed answer; ``close`` then drops the connection without announcing it."""

    async def step(ex: Exchange) -> None:
        fields = {"Content-Type": content_type, "Content-Length": str(len(body))}
        await ex.send(head(status, {**fields, **(headers or {})}) + body)
        ex.keep_alive = not close

    return step


def status(code: int, **headers: str) -> Step:
    """The API's JSON error envelope with status ``code``; keyword headers use ``_`` for ``-``."""
    body = json.dumps({"statusCode": code, "message": f"injected {code}", "error": "X"})
    fields = {name.replace("_", "-"): value for name, value in headers.items()}
    return reply(code, body.encode(), headers=fields)


def raw(data: bytes) -> Step:
    """Send ``data`` as is, then close the connection."""

    async def step(ex: Exchange) -> None:
        await ex.send(data)
        ex.keep_alive = False

    return step


def reset(after: bytes = b"") -> Step:
    """Send ``after`` (nothing by default), then reset the connection."""

    async def step(ex: Exchange) -> None:
        if after:
            await ex.send(after)
            await asyncio.sleep(0.01)  # let the bytes reach the client before the RST
        ex.reset()

    return step


def silence(after: bytes = b"") -> Step:
    """Send ``after`` (say, a head promising a body), then say nothing until the client leaves."""

    async def step(ex: Exchange) -> None:
        await ex.send(after)
        await ex.client_left()
        ex.keep_alive = False

    return step


def trickle(interval: float = 0.02) -> Step:
    """A 200 whose body (JSON whitespace so far) arrives a byte per ``interval``, forever."""

    async def step(ex: Exchange) -> None:
        left = asyncio.ensure_future(ex.client_left())
        try:
            await ex.send(head(200, {"Content-Type": "application/json", "Content-Length": "9999"}))
            while not left.done():
                await ex.send(b" ")
                await asyncio.wait({left}, timeout=interval)
        except ConnectionError:
            pass
        finally:
            left.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await left
        ex.keep_alive = False

    return step


def stream(headers: dict[str, str], pieces: Callable[[], Iterable[bytes | memoryview]]) -> Step:
    """A 200 with ``headers`` whose body is written piece by piece, never held whole."""

    async def step(ex: Exchange) -> None:
        with contextlib.suppress(ConnectionError):
            await ex.send(head(200, headers))
            for piece in pieces():
                await ex.send(piece)
        ex.keep_alive = False

    return step


def huge(size: int, *, declare_length: bool) -> Step:
    """A ``size``-byte body, with its ``Content-Length`` or delimited by closing the connection."""
    headers = {"Content-Type": "application/json"}
    if declare_length:
        headers["Content-Length"] = str(size)
    else:
        headers["Connection"] = "close"
    blank = b" " * _CHUNK
    return stream(headers, lambda: itertools.repeat(blank, size // _CHUNK))


@functools.cache
def gzip_bomb_bytes(decoded: int = 1 << 30) -> bytes:
    """A gzip stream of ``decoded`` zero bytes (1 GiB: about 4.5 MB), built once per session."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    parts = [packer.compress(zeros) for _ in range(decoded // len(zeros))]
    parts.append(packer.flush())
    return b"".join(parts)


def gzip_bomb() -> Step:
    """A 200 whose gzip body is a few megabytes on the wire and a gigabyte once decoded."""
    bomb = memoryview(gzip_bomb_bytes())
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Content-Length": str(len(bomb)),
    }
    return stream(headers, lambda: (bomb[i : i + _CHUNK] for i in range(0, len(bomb), _CHUNK)))


def by_path(routes: dict[str, Step], default: Step) -> Step:
    """Answer with the step routed to the request's raw path (after ``/v1``), else ``default``."""

    async def step(ex: Exchange) -> None:
        await routes.get(ex.target.removeprefix("/v1"), default)(ex)

    return step


# --- the server -----------------------------------------------------------------------------


class HostileServer:
    """Serve HTTP/1.1 on 127.0.0.1, answering the n-th request with the n-th step.

    The last step repeats forever. Use it as ``async with HostileServer(...) as server``.

    Args:
        *script: the steps, in the order requests arrive; default: a valid lead, always.
        tls: a server-side ``SSLContext`` to speak HTTPS.
        grace: seconds to wait, when stopping, for the client to close its connections.
    """

    def __init__(
        self, *script: Step, tls: ssl.SSLContext | None = None, grace: float = GRACE
    ) -> None:
        self._script = script or (reply(),)
        self._tls = tls
        self._grace = grace
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.requests: Counter[str] = Counter()
        """Requests received per raw path (the target up to any ``?``)."""
        self.targets: list[str] = []
        """Every raw request target, in arrival order."""
        self.headers: list[dict[str, str]] = []
        """The headers of every request, in arrival order."""
        self.connections = 0
        """TCP connections accepted."""
        self.open_connections = 0
        """Connections not yet closed."""
        self.active = 0
        """Requests whose step is still running."""
        self.peak_open = 0
        """The most connections open at once."""
        self.tls_failures = 0
        """Connections whose TLS handshake failed."""
        self.left_open = 0
        """Connections the client had not closed when the server stopped (after a grace)."""
        self.crashes: list[Exception] = []
        """Exceptions raised by steps: bugs in a test, re-raised when the server stops."""

    @property
    def total(self) -> int:
        """Requests received, over every path."""
        return len(self.targets)

    @property
    def port(self) -> int:
        """The bound port."""
        assert self._server is not None, "the server is not running"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        """The API root to give a client."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        if self._handlers:
            # Every step ends once its client leaves, so a handler still running after the
            # grace is a connection the client never closed.
            await asyncio.wait(self._handlers, timeout=self._grace)
        self.left_open = self.open_connections
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        if self.crashes and exc is None:
            raise self.crashes[0]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        self.peak_open = max(self.peak_open, self.open_connections)
        try:
            if self._tls is not None:
                try:
                    # StreamWriter.start_tls is 3.11+; test_tls skips below that.
                    await writer.start_tls(self._tls)  # type: ignore[attr-defined,unused-ignore]
                except (ssl.SSLError, ConnectionError, OSError):
                    self.tls_failures += 1
                    return
            while await self._answer_one(reader, writer):
                pass
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception as error:
            self.crashes.append(error)
        finally:
            self.open_connections -= 1
            writer.transport.abort()

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and run its step; whether the connection stays open."""
        try:
            request = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed the connection between requests
        line, *fields = request.decode("latin-1").split("\r\n")
        method, target, _ = line.split(" ", 2)
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (field.partition(":") for field in fields if field)
        )
        self.targets.append(target)
        self.headers.append(headers)
        self.requests[target.partition("?")[0]] += 1
        step = self._script[min(self.total - 1, len(self._script) - 1)]
        exchange = Exchange(method, target, headers, reader, writer)
        self.active += 1
        try:
            await step(exchange)
        finally:
            self.active -= 1
        return exchange.keep_alive and not writer.is_closing()


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait until ``predicate()`` holds, polling the loop; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the guard ------------------------------------------------------------------------------


class Guard:
    """Builds the clients and servers of one test and checks the invariants when it ends."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.clock = dnx.VirtualClock()
        self.max_retries = 0
        self.calls_per_path = 1
        """How many calls the test makes per path; attempts per path may reach this many times
        ``max_retries + 1``."""
        self.clients: list[dnx.AsyncDialNexa] = []
        self.servers: list[HostileServer] = []
        self.loop_errors: list[dict[str, Any]] = []

    def server(self, *script: Step, **options: Any) -> HostileServer:
        """A hostile server whose connections are checked when the test ends."""
        server = HostileServer(*script, **options)
        self.servers.append(server)
        return server

    def client(
        self, base_url: str | HostileServer, *, max_retries: int = 2, **options: Any
    ) -> dnx.AsyncDialNexa:
        """A client with the test key and instant waits, unless ``clock=`` says otherwise."""
        if isinstance(base_url, HostileServer):
            base_url = base_url.base_url
        options.setdefault("clock", self.clock)
        client = dnx.AsyncDialNexa(
            api_key=API_KEY, base_url=base_url, max_retries=max_retries, **options
        )
        self.max_retries = max(self.max_retries, max_retries)
        self.clients.append(client)
        return client

    async def fails(self, call: Awaitable[Any], kind: type[BaseException]) -> Any:
        """Await ``call``, which must raise exactly ``kind``; return the error after checking it."""
        try:
            await call
        except BaseException as error:
            if type(error) is not kind:
                raise AssertionError(f"expected {kind.__name__}, got {error!r}") from error
            self.check_error(error)
            return error
        raise AssertionError(f"expected {kind.__name__}, nothing was raised")

    def check_error(self, error: BaseException) -> None:
        """The error, its traceback, its causes and their frames' locals never show the key;
        attempts stay bounded."""
        shown = [str(error), repr(error), "".join(traceback.format_exception(error))]
        # As pytest --showlocals or rich's show_locals would print it: every frame's locals.
        shown.append(
            "".join(
                traceback.TracebackException.from_exception(error, capture_locals=True).format()
            )
        )
        for text in shown:
            assert SECRET not in text, f"the API key leaked through {type(error).__name__}"
        attempts = getattr(error, "attempts", 0)
        assert attempts <= self.max_retries + 1, f"{attempts} attempts for {error!r}"

    async def finish(self, tasks_before: set[asyncio.Task[Any]]) -> None:
        """Check every invariant once the test body is done."""
        for client in self.clients:
            assert client.closed, "a client was never closed"
            assert SECRET not in repr(client)
            assert SECRET not in repr(client.stats)
        # A call may resend once, at once, a request whose pooled connection died unanswered.
        resends = sum(client.stats.resends for client in self.clients)
        for server in self.servers:
            assert server.left_open == 0, f"{server.left_open} connection(s) left open"
            for path, count in server.requests.items():
                bound = self.calls_per_path * (self.max_retries + 1) + resends
                assert count <= bound, f"{count} attempts at {path}, more than {bound}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
            await asyncio.sleep(0)
        resource = [w for w in caught if issubclass(w.category, ResourceWarning)]
        assert not resource, [str(w.message) for w in resource]
        assert not self.loop_errors, self.loop_errors
        pending = asyncio.all_tasks() - tasks_before - {asyncio.current_task()}
        assert not pending, f"tasks left pending: {pending}"
        for record in self.caplog.records:
            assert SECRET not in record.getMessage(), f"key in log record {record.name}"
        assert SECRET not in self.caplog.text


@contextlib.asynccontextmanager
async def guarding(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Guard]:
    """A ``Guard`` for one test, with every logger captured at DEBUG; checks run at exit.

    Each test module wraps it in its own ``guard`` fixture.
    """
    caplog.set_level(logging.DEBUG)
    loop = asyncio.get_running_loop()
    checker = Guard(caplog)
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: checker.loop_errors.append(context))
    before = asyncio.all_tasks()
    try:
        yield checker
        await checker.finish(before)
    finally:
        loop.set_exception_handler(previous)
