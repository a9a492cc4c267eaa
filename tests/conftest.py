"""Shared fixtures: a client on a virtual clock, aioresponses, and the local simulator."""

from __future__ import annotations

import inspect
import json
import re
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioresponses.core as aioresponses_core
import pytest
from aiohttp import ClientResponse
from aioresponses import aioresponses

import dialnexa_async as dnx


class _CompatClientResponse(ClientResponse):
    """aioresponses 0.7.9 builds responses without aiohttp 3.14's ``stream_writer`` argument.

    Until pnuckowski/aioresponses#289 is released, hand it a finished writer (the request is
    already "sent" when aioresponses builds its answer). A no-op where the argument is passed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _NEEDS_STREAM_WRITER and "stream_writer" not in kwargs:
            kwargs["stream_writer"] = types.SimpleNamespace(output_size=0)
        super().__init__(*args, **kwargs)


_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(ClientResponse.__init__).parameters
aioresponses_core.ClientResponse = _CompatClientResponse  # type: ignore[attr-defined]

API_KEY = "key_test:s3cr3t-never-print-me"
BASE_URL = "https://api.dialnexa.test/v1"
LEAD_URL = re.compile(r"^https://api\.dialnexa\.test/v1/campaigns-leads/.*$")

LEAD_BODY: dict[str, Any] = {
    "id": "lead_abc123",
    "name": "Priya Sharma",
    "phone_number": "+919876543210",
    "campaign_id": "cmp_xyz789",
    "status": "completed",
    "notes": {"loan_amount": "250000", "product": "home_loan"},
    "call_log_id": "log_abc123",
    "created_at": "2024-03-01T10:00:00.000Z",
}


def envelope(status: int, message: object, error: str = "Error") -> str:
    """The API's error body."""
    return json.dumps({"statusCode": status, "message": message, "error": error})


@pytest.fixture
def mock_api() -> Iterator[aioresponses]:
    """aioresponses intercepting every aiohttp request of the test."""
    with aioresponses() as mocked:
        yield mocked


@pytest.fixture
def clock() -> dnx.VirtualClock:
    """A clock on which every wait is instant and recorded."""
    return dnx.VirtualClock()


@pytest.fixture
async def client(clock: dnx.VirtualClock) -> AsyncIterator[dnx.AsyncDialNexa]:
    """A client of the mocked API with instant waits."""
    async with dnx.AsyncDialNexa(api_key=API_KEY, base_url=BASE_URL, clock=clock) as c:
        yield c


def request_count(mocked: aioresponses) -> int:
    """How many requests aioresponses saw, over every URL."""
    return sum(len(calls) for calls in mocked.requests.values())
