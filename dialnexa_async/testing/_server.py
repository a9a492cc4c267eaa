"""The aiohttp application imitating the DialNexa API on the wire, and its runner."""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from aiohttp import web

from ._config import SimulatorConfig, checked_leads
from ._gate import HTML as _HTML
from ._gate import JSON as _JSON
from ._gate import RateGate, envelope, gateway_page, reason_phrase
from ._leads import ID_PATTERN, lead_body, lead_payload
from ._leads import ID_RE as _ID_RE
from ._options import SimulatorClock, configure
from ._script import Reply, Scripts

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._options import SimulatorOptions

API_PREFIX = "/v1"
LEAD_ROUTE_PREFIX = "/v1/campaigns-leads/"

# Fault kinds, in the order their probabilities are checked.
_RESET = "reset"
_ERROR = "error"
_HTML_502 = "html"
_MALFORMED = "malformed"
_SLOW_BODY = "slow_body"

# Slow bodies are cut into this many pieces, so a client sees several reads per response.
_SLOW_CHUNKS = 4


_UNAUTHORIZED = envelope(401, "Invalid API key")
_FORBIDDEN = envelope(403, "This API key cannot read campaign data in this workspace")
_LEAD_NOT_FOUND = envelope(404, "Lead not found")
_METHOD_NOT_ALLOWED = envelope(405, "Method Not Allowed")
_BAD_ID = envelope(400, [f"id must match {ID_PATTERN}"])
_BAD_GATEWAY_HTML = gateway_page(502)
_SAMPLE_BODY = lead_body("lead_abc123", 0.0)
_LINGER_RST = struct.pack("ii", 1, 0)
# The API's own error bodies where a scripted status has one; others get a generic envelope.
_API_ERRORS = {401: _UNAUTHORIZED, 403: _FORBIDDEN, 404: _LEAD_NOT_FOUND}
_NO_CONTENT = 204


class SimulatorStats:
    """Counters the simulator keeps about the traffic it answered.

    Attributes:
        requests: Requests received, whatever became of them.
        by_status: Answers sent, by HTTP status (resets are not answers).
        rate_limited: 429s sent by the rate limiter.
        resets: Connections aborted with a TCP RST.
        faults: Injected faults by kind (``reset``, ``error``, ``html``, ``malformed``,
            ``slow_body``).
        scripted: Requests answered (or reset) by a scripted ``Reply``.
        attempts_by_id: Requests per decoded lead id, counted on arrival; stays empty when
            ``track_ids`` is off.
        in_flight: Requests being handled right now.
        max_in_flight: Peak of ``in_flight`` since the last reset.
    """

    __slots__ = (
        "attempts_by_id",
        "by_status",
        "faults",
        "in_flight",
        "max_in_flight",
        "rate_limited",
        "requests",
        "resets",
        "scripted",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.by_status: Counter[int] = Counter()
        self.rate_limited = 0
        self.resets = 0
        self.faults: Counter[str] = Counter()
        self.scripted = 0
        self.attempts_by_id: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0

    def reset(self) -> None:
        """Zero every counter; ``in_flight`` is a live gauge, so it is kept and seeds the peak."""
        self.requests = 0
        self.by_status = Counter()
        self.rate_limited = 0
        self.resets = 0
        self.faults = Counter()
        self.scripted = 0
        self.attempts_by_id = Counter()
        self.max_in_flight = self.in_flight

    def __repr__(self) -> str:
        return (
            f"SimulatorStats(requests={self.requests}, by_status={dict(self.by_status)}, "
            f"rate_limited={self.rate_limited}, resets={self.resets}, "
            f"scripted={self.scripted}, in_flight={self.in_flight}, "
            f"max_in_flight={self.max_in_flight})"
        )


def _request_path(raw_target: str) -> str:
    """Return the still percent-encoded path of a request target, without its query."""
    if not raw_target.startswith("/"):
        # Absolute-form target, as a client talking to a proxy may send.
        return urlsplit(raw_target).path or "/"
    query = raw_target.find("?")
    return raw_target if query < 0 else raw_target[:query]


class _SimulatorState:
    """Per-application state: config, stats, random stream, rate gate, and the handler."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = SimulatorStats()
        self.rng = random.Random(config.seed)
        self.gate = RateGate(config)
        self.scripts = Scripts()
        self.request_counter = 0

    def payload(self, lead_id: str) -> dict[str, Any]:
        """The lead served for an id that exists: generated, with any preloaded fields on top."""
        cfg = self.config
        generated = lead_payload(lead_id, unknown_status_rate=cfg.unknown_status_rate)
        return {**generated, **cfg.leads.get(lead_id, {})}

    def lead_body(self, lead_id: str) -> bytes:
        """The encoded ``payload`` of an id; the cached generated body when nothing is preloaded."""
        cfg = self.config
        if lead_id in cfg.leads:
            return json.dumps(self.payload(lead_id), separators=(",", ":")).encode("utf-8")
        return lead_body(lead_id, cfg.unknown_status_rate)

    def reset(self) -> None:
        """Zero the stats, forget the limiter's counts and restart the seeded random stream."""
        self.stats.reset()
        self.rng = random.Random(self.config.seed)
        self.gate.reset()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request; see the package docs for the order of checks."""
        stats = self.stats
        cfg = self.config
        stats.requests += 1
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight
        try:
            return await self._answer(request, cfg, stats)
        finally:
            stats.in_flight -= 1

    async def _answer(
        self, request: web.Request, cfg: SimulatorConfig, stats: SimulatorStats
    ) -> web.StreamResponse:
        self.request_counter += 1
        headers = {"x-request-id": f"req_{self.request_counter:012x}"}

        # Every random draw for this request happens here, before the first await, so the
        # fate of the n-th request received depends only on the seed and n, not on how
        # concurrent handlers interleave later.
        rng = self.rng
        delay = cfg.latency
        if cfg.latency_jitter > 0:
            delay += rng.uniform(0.0, cfg.latency_jitter)
        retry_after = cfg.retry_after
        send_retry_after = (
            retry_after if isinstance(retry_after, bool) else rng.random() < retry_after
        )
        fault: str | None = None
        error_status = 500
        if cfg.reset_rate > 0 and rng.random() < cfg.reset_rate:
            fault = _RESET
        elif cfg.error_rate > 0 and rng.random() < cfg.error_rate:
            fault = _ERROR
            error_status = rng.choice(cfg.error_statuses)
        elif cfg.html_rate > 0 and rng.random() < cfg.html_rate:
            fault = _HTML_502
        elif cfg.malformed_rate > 0 and rng.random() < cfg.malformed_rate:
            fault = _MALFORMED
        elif cfg.slow_body_rate > 0 and rng.random() < cfg.slow_body_rate:
            fault = _SLOW_BODY

        path = _request_path(request.raw_path)
        lead_id: str | None = None
        if path.startswith(LEAD_ROUTE_PREFIX):
            segment = path[len(LEAD_ROUTE_PREFIX) :]
            if segment and "/" not in segment:
                # Decoded exactly once, after splitting, so %2F stays inside the id.
                lead_id = unquote(segment)
                if cfg.track_ids:
                    stats.attempts_by_id[lead_id] += 1

        gate = self.gate
        answer = gate.check(cfg.clock(), cfg.wall_clock(), send_retry_after)
        # Each check() is matched by one done(), refusals included; an admitted request holds
        # its concurrency slot until then, however its answer ends.
        try:
            headers.update(answer.headers)
            if not answer.admitted:
                stats.rate_limited += 1
                return self._reply(answer.status, answer.body, answer.content_type, headers)
            if answer.delay > 0:
                # A queueing gateway holds the request until the work ahead of it drains.
                await asyncio.sleep(answer.delay)
            if delay > 0:
                # The API's own time, behind the gateway: a refusal above came at once, and an
                # admitted request holds its place in a concurrency limit meanwhile.
                await asyncio.sleep(delay)
            return await self._past_gate(request, cfg, fault, error_status, path, lead_id, headers)
        finally:
            gate.done(cfg.clock())

    async def _past_gate(
        self,
        request: web.Request,
        cfg: SimulatorConfig,
        fault: str | None,
        error_status: int,
        path: str,
        lead_id: str | None,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        """Answer a request the rate gate let through: a scripted reply, a fault, or the API."""
        if lead_id is not None:
            reply = self.scripts.take(lead_id)
            if reply is not None:
                # A script speaks for the API behind the gateway: no injected fault applies.
                return await self._scripted(request, cfg, reply, path, lead_id, headers)
        slow = False
        if fault is not None:
            self.stats.faults[fault] += 1
            if fault == _RESET:
                return self._reset(request)
            if fault == _ERROR:
                return self._reply(
                    error_status,
                    envelope(error_status, reason_phrase(error_status)),
                    _JSON,
                    headers,
                )
            if fault == _HTML_502:
                headers["Server"] = "nginx"
                return self._reply(502, _BAD_GATEWAY_HTML, _HTML, headers)
            if fault == _MALFORMED:
                whole = _SAMPLE_BODY
                if lead_id is not None and _ID_RE.fullmatch(lead_id):
                    whole = self.lead_body(lead_id)
                # Any strict prefix of a JSON object is invalid JSON.
                return self._reply(200, whole[: len(whole) // 2], _JSON, headers)
            slow = True

        status, body = self._resolve(request, cfg, path, lead_id, headers)
        if slow:
            return await self._stream_slowly(request, cfg, status, body, headers)
        return self._reply(status, body, _JSON, headers)

    def _resolve(
        self,
        request: web.Request,
        cfg: SimulatorConfig,
        path: str,
        lead_id: str | None,
        headers: dict[str, str],
    ) -> tuple[int, bytes]:
        if lead_id is None:
            # The envelope is the NestJS one, and NestJS words unknown routes this way; the
            # retired unversioned routes are simply unknown now.
            return 404, envelope(404, f"Cannot {request.method} {path}")
        if request.method != "GET":
            headers["Allow"] = "GET"
            return 405, _METHOD_NOT_ALLOWED

        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return 401, _UNAUTHORIZED
        if token in cfg.forbidden_keys:
            return 403, _FORBIDDEN
        if cfg.api_key is not None and not hmac.compare_digest(
            token.encode("utf-8", "surrogateescape"), cfg.api_key.encode("utf-8")
        ):
            return 401, _UNAUTHORIZED

        if not _ID_RE.fullmatch(lead_id):
            return 400, _BAD_ID
        known = cfg.known_ids
        if lead_id not in cfg.leads and (
            lead_id.startswith("missing") or (known is not None and lead_id not in known)
        ):
            return 404, _LEAD_NOT_FOUND
        return 200, self.lead_body(lead_id)

    async def _scripted(
        self,
        request: web.Request,
        cfg: SimulatorConfig,
        reply: Reply,
        path: str,
        lead_id: str,
        headers: dict[str, str],
    ) -> web.Response:
        """Answer as a scripted reply says: after its delay, a reset or its status and body."""
        self.stats.scripted += 1
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        if reply.reset:
            return self._reset(request)
        headers.update(reply.headers)
        if reply.status is None:
            status, body = self._resolve(request, cfg, path, lead_id, headers)
            return self._reply(status, body, _JSON, headers)
        status = reply.status
        scripted = reply.encoded_body
        if scripted is None:
            if 200 <= status < 300 and status != _NO_CONTENT:
                scripted = self.lead_body(lead_id)
            elif status >= 400:
                scripted = _API_ERRORS.get(status) or envelope(status, reason_phrase(status))
        has_type = any(name.lower() == "content-type" for name in headers)
        content_type = None if has_type or scripted is None else reply.content_type
        return self._reply(status, scripted, content_type, headers)

    def _reply(
        self, status: int, body: bytes | None, content_type: str | None, headers: dict[str, str]
    ) -> web.Response:
        self.stats.by_status[status] += 1
        return web.Response(status=status, body=body, content_type=content_type, headers=headers)

    def _reset(self, request: web.Request) -> web.Response:
        """Abort the connection so the peer receives a TCP RST instead of any response byte."""
        self.stats.resets += 1
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger on with a zero timeout makes close() send RST instead of FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            transport.abort()
        # aiohttp fails to write this to the aborted transport and treats that as a client
        # disconnect, which it logs at debug level only; raising here would log a traceback.
        return web.Response(status=502)

    async def _stream_slowly(
        self,
        request: web.Request,
        cfg: SimulatorConfig,
        status: int,
        body: bytes,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        self.stats.by_status[status] += 1
        response = web.StreamResponse(status=status, headers=headers)
        response.content_type = _JSON
        response.content_length = len(body)
        step = max(1, -(-len(body) // _SLOW_CHUNKS))
        try:
            await response.prepare(request)
            for offset in range(0, len(body), step):
                if offset:
                    await asyncio.sleep(cfg.slow_body_delay)
                await response.write(body[offset : offset + step])
            await response.write_eof()
        except ConnectionError:
            # The client gave up mid-body; aiohttp handles the rest quietly.
            pass
        return response


STATS_KEY = web.AppKey("dialnexa_simulator_stats", SimulatorStats)
"""Application key of the ``SimulatorStats`` of an app built by ``make_app``."""

CONFIG_KEY = web.AppKey("dialnexa_simulator_config", SimulatorConfig)
"""Application key of the live ``SimulatorConfig`` of an app built by ``make_app``."""

_STATE_KEY = web.AppKey("dialnexa_simulator_state", _SimulatorState)


def make_app(config: SimulatorConfig | None = None) -> web.Application:
    """Build the simulator application, with its stats and config under the exported keys.

    Args:
        config: Behaviour of the simulated API; the object is used live, not copied, so
            changing its fields later changes how the app answers.
    """
    state = _SimulatorState(config if config is not None else SimulatorConfig())
    app = web.Application()
    # One catch-all route: paths are matched by hand on the raw target so that an encoded
    # slash in an id never acts as a separator.
    app.router.add_route("*", "/{tail:.*}", state.handle)
    app[_STATE_KEY] = state
    app[STATS_KEY] = state.stats
    app[CONFIG_KEY] = state.config
    return app


class Simulator:
    """Run the simulated API on a local socket, as an async context manager.

    Example::

        clock = dialnexa_async.VirtualClock()
        async with Simulator(rate_limit=5, clock=clock) as sim:
            sim.add_lead("lead_1", status="failed")
            sim.script("lead_2", Reply(status=503, times=2))
            async with dialnexa_async.AsyncDialNexa(
                api_key="sk_test", base_url=sim.base_url, clock=clock
            ) as client:
                ...

    Args:
        config: Base configuration; used live (not copied) unless ``clock`` or options are
            given.
        host: Address to bind.
        port: Port to bind; 0 picks a free one, readable from ``.port`` once started.
        shutdown_timeout: Seconds in-flight requests get to finish when stopping.
        clock: The clock the rate limiter counts on. Give the client's
            ``dialnexa_async.VirtualClock`` here so that the client's virtual waits are the
            time the limiter sees pass (it then also dates ``Retry-After`` and epoch resets);
            a plain callable sets only ``SimulatorConfig.clock``. Latency, queueing and
            scripted delays always take real time.
        **options: ``SimulatorConfig`` fields (see ``SimulatorOptions``) replacing those of
            ``config``; an unknown name is a ``TypeError``.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 0.25,
        clock: SimulatorClock | Callable[[], float] | None = None,
        **options: Unpack[SimulatorOptions],
    ) -> None:
        base = configure(config if config is not None else SimulatorConfig(), clock, options)
        self._app = make_app(base)
        self._state = self._app[_STATE_KEY]
        self._host = host
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def add_lead(self, lead_id: str, **fields: Any) -> None:
        """Preload a lead: it exists, with these fields over its generated ones.

        Calling it again for the same id replaces its fields. Works before or while running.

        Args:
            lead_id: A well-formed lead id (``ID_PATTERN``).
            **fields: API field names and JSON values, e.g. ``status="completed"``.
        """
        cfg = self._state.config
        cfg.leads = {**cfg.leads, **checked_leads({lead_id: fields})}

    def script(self, lead_id: str, *replies: Reply) -> None:
        """Script the next answers to ``lead_id``, replacing any script it had.

        Each request for the id that passes the rate gate takes the next reply (a reply
        answers ``times`` requests); when the script is done the id gets the API's own
        answer again. No replies clears the id's script.

        Args:
            lead_id: A well-formed lead id (``ID_PATTERN``).
            *replies: The answers, in order.
        """
        self._state.scripts.set(lead_id, replies)

    def script_remaining(self, lead_id: str) -> int | None:
        """Requests the id's script still answers: 0 when done, ``None`` when it never ends."""
        return self._state.scripts.remaining(lead_id)

    def lead_payload(self, lead_id: str) -> dict[str, Any]:
        """The JSON object this simulator serves for ``lead_id`` when the lead exists.

        Args:
            lead_id: A lead id; preloaded fields and ``unknown_status_rate`` are applied.
        """
        return self._state.payload(lead_id)

    @property
    def app(self) -> web.Application:
        """The aiohttp application being served."""
        return self._app

    @property
    def config(self) -> SimulatorConfig:
        """The live configuration; assign its fields to change behaviour mid-run."""
        return self._state.config

    @property
    def stats(self) -> SimulatorStats:
        """Traffic counters; call ``stats.reset()`` to zero them."""
        return self._state.stats

    @property
    def host(self) -> str:
        """The bound address."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port; only known once started."""
        if self._port is None:
            raise RuntimeError("the simulator is not running")
        return self._port

    @property
    def origin(self) -> str:
        """``http://host:port`` without the API version, for probing retired routes."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL to give a client, ``http://host:port/v1``."""
        return self.origin + API_PREFIX

    def reset(self) -> None:
        """Zero the stats, forget the limiter's counts, and reseed the random stream.

        Scripts and preloaded leads stay as they are.
        """
        self._state.reset()

    async def start(self) -> None:
        """Bind the socket and begin serving."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        # No access log: it costs time at benchmark rates and must never echo request headers.
        runner = web.AppRunner(
            self._app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port, backlog=1024)
            await site.start()
            self._port = int(runner.addresses[0][1])
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        runner, self._runner = self._runner, None
        self._port = None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    stop: asyncio.Event,
    on_ready: Callable[[Simulator], None] | None = None,
) -> None:
    """Serve until ``stop`` is set, then shut down cleanly.

    Args:
        config: Behaviour of the simulated API.
        host: Address to bind.
        port: Port to bind; 0 picks a free one.
        stop: Set it to make the server stop.
        on_ready: Called once with the running simulator, e.g. to announce its URL.
    """
    async with Simulator(config, host=host, port=port) as sim:
        if on_ready is not None:
            on_ready(sim)
        await stop.wait()
