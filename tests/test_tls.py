"""TLS: certificates are verified by default, a trust failure is typed and never retried, and
``ssl=`` lets a caller trust a private CA."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme

import dialnexa_async as dnx
from tests.hostile import Guard, guarding, reply

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not hasattr(asyncio.StreamWriter, "start_tls"),
        reason="the hostile server upgrades to TLS with StreamWriter.start_tls (Python 3.11+)",
    ),
]


@pytest.fixture
async def guard(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Guard]:
    """Check the invariants of every case once it ends."""
    async with guarding(caplog) as checker:
        yield checker


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority no system trusts."""
    return trustme.CA()


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A server-side context with a certificate for ``names`` signed by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """A client-side context that trusts ``ca`` (and verifies hostnames)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_untrusted_certificate_fails_once_and_is_not_retried(
    guard: Guard, ca: trustme.CA
) -> None:
    """By default an unknown CA is refused: APIConnectionError (not retryable) after exactly one
    connection attempt, and no request is ever sent over it."""
    async with (
        guard.server(reply(), tls=server_context(ca, "127.0.0.1")) as server,
        guard.client(server, max_retries=3) as client,
    ):
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.APIConnectionError)
    assert error.retryable is False
    assert error.attempts == 1
    assert "TLS" in str(error)
    assert server.connections == 1
    assert server.tls_failures == 1
    assert server.total == 0


async def test_wrong_hostname_fails_once_and_is_not_retried(guard: Guard, ca: trustme.CA) -> None:
    """A trusted certificate for another host is refused after one attempt, not retried."""
    async with (
        guard.server(reply(), tls=server_context(ca, "api.dialnexa.com")) as server,
        guard.client(server, max_retries=3, ssl=trusting(ca)) as client,
    ):
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.APIConnectionError)
    assert error.retryable is False
    assert error.attempts == 1
    assert server.connections == 1
    assert server.total == 0


async def test_ssl_context_trusting_the_ca_succeeds(guard: Guard, ca: trustme.CA) -> None:
    """A client given ``ssl=`` a context that trusts the CA fetches the lead over HTTPS."""
    async with (
        guard.server(reply(), tls=server_context(ca, "127.0.0.1")) as server,
        guard.client(server, ssl=trusting(ca)) as client,
    ):
        lead = await client.get_lead("lead_abc123")
        again = await client.get_lead("lead_abc123")
    assert lead == again
    assert lead.id == "lead_abc123"
    assert server.requests == {"/v1/campaigns-leads/lead_abc123": 2}
    assert server.connections == 1
    assert server.tls_failures == 0
