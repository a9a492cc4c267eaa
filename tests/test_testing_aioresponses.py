"""The kit's aioresponses works on the installed aiohttp, and only while it is started."""

from __future__ import annotations

import aiohttp
import aioresponses as original
import aioresponses.core as original_core
import pytest
from aioresponses import CallbackResult

import dialnexa_async as dnx
from dialnexa_async.testing import aioresponses
from dialnexa_async.testing._aioresponses import _NEEDS_STREAM_WRITER

from .conftest import API_KEY, BASE_URL, LEAD_BODY, LEAD_URL

URL = "http://mocked.invalid/x"


async def test_a_mocked_request_is_answered_and_the_fix_is_undone_after() -> None:
    """Inside the context a GET gets its fake answer; after it aioresponses is as it was."""
    with aioresponses() as mocked:
        mocked.get(URL, payload={"ok": True}, headers={"x-request-id": "req_1"})
        async with aiohttp.ClientSession() as session, session.get(URL) as resp:
            assert resp.status == 200
            assert resp.headers["x-request-id"] == "req_1"
            assert await resp.json() == {"ok": True}
    assert original_core.ClientResponse is aiohttp.ClientResponse


@pytest.mark.skipif(not _NEEDS_STREAM_WRITER, reason="this aiohttp takes aioresponses' arguments")
async def test_the_original_still_breaks_on_this_aiohttp() -> None:
    """The kit changes nothing globally: the original aioresponses keeps failing here."""
    with original.aioresponses() as mocked:
        mocked.get(URL, payload={"ok": True})
        async with aiohttp.ClientSession() as session:
            with pytest.raises(TypeError, match="stream_writer"):
                await session.get(URL)


async def test_callbacks_and_the_decorator_form_work() -> None:
    """A callback's ``CallbackResult`` is built the compatible way too, in the decorator form."""

    def answer(url: object, **kwargs: object) -> CallbackResult:
        return CallbackResult(status=503, body='{"message": "down"}')

    @aioresponses()
    async def run(mocked: aioresponses) -> int:
        mocked.get(URL, callback=answer)
        async with aiohttp.ClientSession() as session, session.get(URL) as resp:
            return resp.status

    assert await run() == 503


async def test_the_plugins_fixture_mocks_the_sdk(
    dialnexa_aioresponses: aioresponses, dialnexa_clock: dnx.VirtualClock
) -> None:
    """``dialnexa_aioresponses`` intercepts the client's requests: a 503 then the lead."""
    dialnexa_aioresponses.get(LEAD_URL, status=503, body='{"message": "down"}')
    dialnexa_aioresponses.get(LEAD_URL, payload=LEAD_BODY)
    async with dnx.AsyncDialNexa(api_key=API_KEY, base_url=BASE_URL, clock=dialnexa_clock) as c:
        lead = await c.get_lead("lead_abc123")
    assert lead.name == "Priya Sharma"
    assert len(dialnexa_clock.sleeps) == 1
