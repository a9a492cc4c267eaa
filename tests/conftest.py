"""Shared fixtures: a client on a virtual clock and aioresponses (the testing kit's)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

import dialnexa_async as dnx
from dialnexa_async.testing import aioresponses

# pytester runs small pytest sessions of their own: how the plugin is proven to load.
pytest_plugins = ["pytester"]

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
def mock_api(dialnexa_aioresponses: aioresponses) -> aioresponses:
    """aioresponses intercepting every aiohttp request of the test: the plugin's fixture."""
    return dialnexa_aioresponses


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
