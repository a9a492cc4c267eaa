"""The private aiohttp (and asyncio) hooks the transport relies on, fenced.

The transport overrides ``TCPConnector._get`` and ``TCPConnector._create_connection``, turns
off ``ClientSession._retry_connection`` and shrinks the selector transport's ``max_size``.
None of these is public, so an aiohttp or Python upgrade may rename or reshape one without
notice. Each test here names the hook it checks in its failure message, and the behaviour
tests fail when a hook is no longer called, rather than letting the SDK degrade silently.
"""

from __future__ import annotations

import asyncio.selector_events as selector_events
import inspect
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import dialnexa_async as dnx
from dialnexa_async._transport import AIOHTTP_HOOKS, RECV_SIZE
from tests.hostile import Guard, guarding, head, raw, reply, silence

pytestmark = pytest.mark.integration

CHANGED = "aiohttp {version} changed {hook}, which dialnexa_async/_transport.py relies on: {what}"


@pytest.fixture
async def guard(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Guard]:
    """Checks no connection, task, warning or key leak is left behind."""
    async with guarding(caplog) as checker:
        yield checker


def changed(hook: str, what: str) -> str:
    """The failure message: which hook of which aiohttp changed, and how."""
    return CHANGED.format(version=aiohttp.__version__, hook=hook, what=what)


@pytest.mark.parametrize(("hook", "params"), AIOHTTP_HOOKS.items())
def test_connector_hooks_keep_the_shape_the_transport_overrides(
    hook: str, params: tuple[str, ...]
) -> None:
    """``TCPConnector._get`` and ``_create_connection`` exist, are coroutines, take our args."""
    method = getattr(aiohttp.TCPConnector, hook.partition(".")[2], None)
    assert method is not None, changed(hook, "it is gone")
    assert inspect.iscoroutinefunction(method), changed(hook, "it is no longer async")
    signature = inspect.signature(method)
    assert tuple(signature.parameters)[1:] == params, changed(hook, f"now {signature}")


async def test_session_still_has_the_hidden_resend_switch() -> None:
    """``ClientSession._retry_connection`` exists and is on by default: the transport's off."""
    async with aiohttp.ClientSession() as session:
        default = getattr(session, "_retry_connection", None)
    hook = "ClientSession._retry_connection"
    assert default is True, changed(hook, f"a new session has {default!r}, not True")
    async with dnx.AsyncDialNexa(api_key="sk", base_url="http://127.0.0.1:9/v1") as client:
        assert client._transport.session()._retry_connection is False


def test_selector_transport_still_reads_into_max_size() -> None:
    """asyncio's selector socket transport still sizes each ``recv()`` by ``max_size``."""
    hook = "asyncio _SelectorSocketTransport.max_size"
    transport_class = selector_events._SelectorSocketTransport
    size = getattr(transport_class, "max_size", None)
    assert isinstance(size, int), f"Python changed {hook}: {size!r}"
    assert "self.max_size" in inspect.getsource(transport_class), f"Python no longer reads {hook}"


async def test_connections_the_client_opens_read_in_64_kib(guard: Guard) -> None:
    """``_create_connection`` is still called: the client's connections get ``RECV_SIZE``."""
    # A head promising a body that never comes keeps the connection in the response's hands.
    promise = silence(head(200, {"Content-Length": "10"}))
    async with guard.server(promise) as server, guard.client(server) as client:
        session = client._transport.session()
        async with session.get(f"{server.base_url}/campaigns-leads/lead_1") as response:
            assert response.connection is not None
            transport: Any = response.connection.transport
            response.close()
    assert transport.max_size == RECV_SIZE, changed(
        "TCPConnector._create_connection", "the connector's override was not called"
    )


async def test_a_stale_pooled_connection_is_resent_by_the_sdk_not_by_aiohttp(
    guard: Guard,
) -> None:
    """A keep-alive connection closed under a request is resent once, counted as a resend.

    The SDK sees it only if ``TCPConnector._get`` still marks pooled connections (else the
    call fails: retrying is off), and counts it only if ``ClientSession._retry_connection``
    still stops aiohttp resending it on its own (else ``resends`` stays 0).
    """
    # The second request arrives on the first one's connection, which then closes unanswered.
    script = (reply(), raw(b""), reply())
    guard.calls_per_path = 2  # the resend reaches the server as a second request
    async with guard.server(*script) as server, guard.client(server, max_retries=0) as client:
        await client.get_lead("lead_1")
        try:
            await client.get_lead("lead_2")
        except dnx.APIConnectionError as error:
            raise AssertionError(changed("TCPConnector._get", "no pooled connection seen")) from (
                error
            )
        assert client.stats.resends == 1, changed(
            "ClientSession._retry_connection", "aiohttp resent the request itself"
        )
        assert client.stats.requests == 2
    assert (server.total, server.connections) == (3, 2)


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        (("BaseConnector", "_get", None), "TCPConnector._get is missing"),
        (("BaseConnector", "_get", lambda self, key: None), "TCPConnector._get is missing or no"),
        (
            ("TCPConnector", "_create_connection", lambda *a: None),
            "TCPConnector._create_connection is missing or no longer a coroutine",
        ),
    ],
)
async def test_a_changed_hook_fails_the_call_loudly_and_leaves_nothing_open(
    guard: Guard, monkeypatch: pytest.MonkeyPatch, patch: tuple[str, str, Any], named: str
) -> None:
    """An aiohttp without a hook in the shape the transport overrides: a clear error, no send."""
    owner, name, value = patch
    if value is None:
        monkeypatch.delattr(getattr(aiohttp, owner), name)
    else:
        monkeypatch.setattr(getattr(aiohttp, owner), name, value)
    async with guard.server(reply()) as server, guard.client(server) as client:
        error = await guard.fails(client.get_lead("lead_1"), dnx.DialNexaError)
    assert f"aiohttp {aiohttp.__version__} changed private hooks" in str(error)
    assert named in str(error)
    assert server.total == 0


async def test_a_reshaped_hook_is_named_with_its_new_signature(
    guard: Guard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook that gained or lost a parameter is reported with the signature it now has."""

    async def _get(self: Any, key: Any, traces: Any, extra: Any) -> Any:
        return None

    monkeypatch.setattr(aiohttp.TCPConnector, "_get", _get)
    async with guard.server(reply()) as server, guard.client(server) as client:
        error = await guard.fails(client.get_lead("lead_1"), dnx.DialNexaError)
    assert "TCPConnector._get takes ('key', 'traces', 'extra'), not ('key', 'traces')" in str(error)
    assert server.total == 0


async def test_a_session_without_the_resend_switch_fails_loudly(
    guard: Guard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An aiohttp whose sessions lack ``_retry_connection`` is refused, not used with it on."""
    original = aiohttp.ClientSession.__init__

    def init(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        del self._retry_connection

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", init)
    async with guard.server(reply()) as server, guard.client(server) as client:
        error = await guard.fails(client.get_lead("lead_1"), dnx.DialNexaError)
    assert "ClientSession._retry_connection is missing" in str(error)
    assert server.total == 0
