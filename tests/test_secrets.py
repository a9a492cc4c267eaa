"""Secrets and hostile answers: the API key stays out of everything the SDK shows.

Each test works at the level a user sees it: a client built with a bad key or URL, a hostile
server on a real loopback socket that refuses, resets or echoes the request, or (where nothing
is on a socket) aioresponses. The ``guard`` fixture then checks what every hostile case must
keep: no connection or task left behind, attempts bounded, the key in no log record.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import traceback
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

import dialnexa_async as dnx
from dialnexa_async._redact import MASK
from dialnexa_async._transport import ACCEPT_ENCODING
from tests.hostile import (
    API_KEY,
    LEAD,
    LEAD_BODY,
    SECRET,
    Exchange,
    Guard,
    Step,
    closed_port,
    guarding,
    head,
    raw,
    reply,
    reset,
)

pytestmark = pytest.mark.integration

PATH = "/v1/campaigns-leads/lead_abc123"


@pytest.fixture
async def guard(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Guard]:
    """Check the invariants of every case once it ends."""
    async with guarding(caplog) as checker:
        yield checker


def linked(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable from it: causes, contexts (suppressed or not)
    and the members of exception groups."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        current = todo.pop()
        if any(current is known for known in seen):
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += list(getattr(current, "exceptions", ()))
    return seen


def shown_with_locals(error: BaseException) -> str:
    """What a traceback printer showing every frame's locals prints for ``error``, and for each
    exception linked to it on its own."""
    return "\n".join(
        "".join(traceback.TracebackException.from_exception(e, capture_locals=True).format())
        for e in linked(error)
    )


def everything_shown(error: BaseException) -> str:
    """Every text the error offers a user: str, repr, traceback, body and request id."""
    body = getattr(error, "body", None)
    return "\n".join(
        [
            str(error),
            repr(error),
            repr(error.args),
            "".join(traceback.format_exception(error)),
            json.dumps(body) if not isinstance(body, str) else body,
            str(getattr(error, "request_id", None)),
        ]
    )


# --- the key, checked once at construction ---------------------------------------------------

BAD_KEYS = {
    "nul": f"key_x:{SECRET}\x00",
    "vertical-tab": f"key_x:{SECRET}\x0b1",
    "delete": f"key_x:\x7f{SECRET}",
    "tab": f"key_x:{SECRET}\tmore",
    "lone-surrogate": f"key_x:{SECRET}\ud800",
    "non-ascii": f"key_x:{SECRET}\u00e9",
    "zero-width-space": f"key_x:{SECRET}\u200b",
    "inner-space": f"key_x: {SECRET}",
    "trailing-newline": f"key_x:{SECRET}\n",
    "leading-space": f" key_x:{SECRET}",
}
BAD_KEY_FAULTS = {
    "nul": f"control character (U+0000) at index {len('key_x:') + len(SECRET)}",
    "vertical-tab": "control character (U+000B)",
    "delete": "control character (U+007F) at index 6",
    "tab": "control character (U+0009)",
    "lone-surrogate": "lone surrogate (U+D800)",
    "non-ascii": "non-ASCII character (U+00E9)",
    "zero-width-space": "non-ASCII character (U+200B)",
    "inner-space": "a space at index 6",
    "trailing-newline": "whitespace",
    "leading-space": "whitespace",
}


@pytest.mark.parametrize("name", BAD_KEYS.keys())
def test_a_key_a_header_cannot_carry_is_refused_at_construction(name: str) -> None:
    """A key holding a character a header cannot carry, or would carry altered, is a
    DialNexaError at construction naming the fault, never quoting the key, and no frame of
    its traceback holds the key."""
    with pytest.raises(dnx.DialNexaError) as caught:
        dnx.AsyncDialNexa(api_key=BAD_KEYS[name], base_url="https://api.dialnexa.test/v1")
    error = caught.value
    assert BAD_KEY_FAULTS[name] in str(error)
    assert str(error).startswith("the API key holds") or "strip it" in str(error)
    assert SECRET not in everything_shown(error)
    assert SECRET not in shown_with_locals(error)


def test_a_bad_key_from_the_environment_says_where_it_came_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad key in DIALNEXA_API_KEY is refused the same way, naming the variable."""
    monkeypatch.setenv("DIALNEXA_API_KEY", f"key_x:{SECRET}\x7f1")
    with pytest.raises(dnx.DialNexaError, match=r"\$DIALNEXA_API_KEY holds a control") as caught:
        dnx.AsyncDialNexa(base_url="https://api.dialnexa.test/v1")
    assert SECRET not in shown_with_locals(caught.value)


def test_an_error_at_construction_shows_no_key_in_its_frames() -> None:
    """Any other argument error raised while the client is built (here a bad timeout) keeps no
    frame whose locals hold the key."""
    with pytest.raises(ValueError, match="timeout") as caught:
        dnx.AsyncDialNexa(api_key=API_KEY, base_url="https://api.dialnexa.test/v1", timeout=-1)
    assert SECRET not in shown_with_locals(caught.value)


async def test_every_visible_ascii_key_is_accepted_and_sent_unaltered(guard: Guard) -> None:
    """The check refuses nothing a header carries: a key of every visible ASCII character
    reaches the server byte for byte."""
    key = "key_all:" + "".join(chr(c) for c in range(0x21, 0x7F))
    async with guard.server(reply()) as server:
        client = dnx.AsyncDialNexa(api_key=key, base_url=server.base_url, clock=guard.clock)
        guard.clients.append(client)
        async with client:
            await client.get_lead("lead_abc123")
    assert server.headers[0]["authorization"] == f"Bearer {key}"


# --- no frame, no chained cause holds the key ------------------------------------------------


async def _refused(guard: Guard) -> BaseException:
    client = guard.client(f"http://127.0.0.1:{closed_port()}/v1", max_retries=0)
    async with client:
        return await guard.fails(client.get_lead("lead_abc123"), dnx.APIConnectionError)


def _echo_head(ex: Exchange) -> bytes:
    """A 200 head promising more body than comes, echoing the key in a response header."""
    auth = ex.headers["authorization"]
    return head(200, {"Content-Length": "1000", "X-Echo-Authorization": auth})


async def _reset(guard: Guard, after: Callable[[Exchange], bytes] | None) -> BaseException:
    async def step(ex: Exchange) -> None:
        await reset(after(ex) if after else b"")(ex)

    async with guard.server(step) as server, guard.client(server, max_retries=0) as client:
        return await guard.fails(client.get_lead("lead_abc123"), dnx.APIConnectionError)


@pytest.mark.parametrize(
    "fault",
    [
        _refused,
        lambda guard: _reset(guard, None),
        lambda guard: _reset(guard, _echo_head),
    ],
    ids=["refused", "reset", "reset-mid-body-after-echoing-head"],
)
async def test_no_frame_of_a_connection_error_or_its_causes_holds_the_key(
    guard: Guard, fault: Any
) -> None:
    """A refused or reset connection: neither the SDK error nor any exception chained to it
    shows the key when printed with every frame's locals (pytest --showlocals, rich's
    show_locals, capture_locals); aiohttp's exception stays chained for its type and text."""
    error = await fault(guard)
    chain = linked(error)
    assert any(isinstance(e, (aiohttp.ClientError, OSError)) for e in chain[1:])
    assert SECRET not in shown_with_locals(error)


async def test_the_callers_own_exception_in_the_chain_is_left_alone(guard: Guard) -> None:
    """An SDK call failing inside the caller's ``except`` block leaves the caller's exception
    as it was: its traceback is neither dropped nor cleared."""

    def callers_frame() -> None:
        marker = "the caller's own local"  # noqa: F841 - shown by capture_locals below
        raise KeyError("the caller's own failure")

    try:
        callers_frame()
    except KeyError as caught:
        own, tb = caught, caught.__traceback__
        error = await _refused(guard)
    assert own.__traceback__ is tb
    assert "the caller's own local" in shown_with_locals(own)
    assert SECRET not in shown_with_locals(error)


async def test_a_validation_error_and_its_cattrs_cause_hold_no_echoed_key(guard: Guard) -> None:
    """A 2xx echoing the request in a body that is not a lead: the ResponseValidationError,
    the cattrs errors it is raised from and every frame of them show the key nowhere."""

    async def step(ex: Exchange) -> None:
        body = json.dumps({**LEAD, "status": 5, "echo": ex.headers["authorization"]})
        await reply(body=body.encode())(ex)

    async with guard.server(step) as server, guard.client(server) as client:
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.ResponseValidationError)
    assert server.requests == {PATH: 1}
    assert error.__cause__ is not None
    assert error.body["echo"] == f"Bearer {MASK}"
    assert SECRET not in shown_with_locals(error)


# --- what the server echoes is redacted ------------------------------------------------------


def _envelope(status: int, message: str, **extra: Any) -> bytes:
    return json.dumps({"statusCode": status, "message": message, "error": "X", **extra}).encode()


def _echo(build: Callable[[str, str], Step]) -> Step:
    """A step built per request from the Authorization value and its secret part."""

    async def step(ex: Exchange) -> None:
        auth = ex.headers["authorization"]
        await build(auth, auth.rpartition(":")[2])(ex)

    return step


ECHOES: dict[str, tuple[Step, type[dnx.DialNexaError]]] = {
    "502-message-retried-and-logged": (
        _echo(lambda auth, _: reply(502, _envelope(502, f"upstream refused {auth}"))),
        dnx.InternalServerError,
    ),
    "400-body-field": (
        _echo(
            lambda auth, _: reply(
                400, _envelope(400, "bad", request={"headers": {"authorization": auth}})
            )
        ),
        dnx.BadRequestError,
    ),
    "404-request-id": (
        _echo(
            lambda auth, _: reply(
                404, _envelope(404, "Lead not found"), headers={"X-Request-Id": auth}
            )
        ),
        dnx.NotFoundError,
    ),
    "503-html-secret-part-only": (
        _echo(
            lambda _, secret: reply(
                503, f"<html>token {secret} rejected</html>".encode(), content_type="text/html"
            )
        ),
        dnx.InternalServerError,
    ),
    "200-not-a-lead": (
        _echo(lambda auth, _: reply(200, json.dumps({"you sent": auth}).encode())),
        dnx.ResponseValidationError,
    ),
    "garbage-status-line": (
        _echo(lambda auth, _: raw(f"HTTP/1.1 {auth}\r\n\r\n".encode())),
        dnx.APIConnectionError,
    ),
}


@pytest.mark.parametrize("case", ECHOES.keys())
async def test_a_server_echoing_the_key_never_puts_it_in_what_the_sdk_shows(
    guard: Guard, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    """Whatever a gateway echoes (the whole key or its secret part, in the message, the body,
    the request id, the status line), the error's str, repr, args, traceback, body and request
    id and every log line (the WARNING of a retry too) show it masked, never in clear."""
    step, kind = ECHOES[case]
    async with guard.server(step) as server, guard.client(server) as client:
        error = await guard.fails(client.get_lead("lead_abc123"), kind)
    shown = everything_shown(error)
    assert SECRET not in shown
    assert SECRET not in shown_with_locals(error)
    assert MASK in shown  # the echo arrived, and was masked
    assert SECRET not in caplog.text  # the guard checks it too; here it must also be seen
    if case.startswith("502"):
        assert server.requests == {PATH: 3}
        retries = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert retries
        assert all(MASK in r.getMessage() for r in retries)


async def test_bulk_results_carry_the_same_redacted_errors(guard: Guard) -> None:
    """An error delivered as a get_leads value is redacted just like a raised one."""
    step = _echo(lambda auth, _: reply(404, _envelope(404, f"no lead for {auth}")))
    async with guard.server(step) as server, guard.client(server) as client:
        (result,) = await client.get_leads(["lead_abc123"])
    assert isinstance(result.error, dnx.NotFoundError)
    assert result.error.message == f"no lead for Bearer {MASK}"
    assert SECRET not in repr(result)
    assert SECRET not in shown_with_locals(result.error)


# --- base_url: credentials and plain http ----------------------------------------------------


@pytest.mark.parametrize(
    "url", ["https://user:pw-s3cr3t@api.dialnexa.test/v1", "https://:pw-s3cr3t@h.test/v1"]
)
def test_credentials_in_base_url_are_refused_without_being_shown(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A base_url carrying user:password@ is a ValueError (aiohttp would send them instead of
    the key) whose message never quotes them, from the argument or the environment."""
    with pytest.raises(ValueError, match="credentials") as caught:
        dnx.AsyncDialNexa(api_key=API_KEY, base_url=url)
    assert "pw-s3cr3t" not in str(caught.value)
    monkeypatch.setenv("DIALNEXA_BASE_URL", url)
    with pytest.raises(ValueError, match="credentials") as caught:
        dnx.AsyncDialNexa(api_key=API_KEY)
    assert "pw-s3cr3t" not in str(caught.value)


def test_a_non_http_base_url_with_credentials_is_refused_without_quoting_them() -> None:
    """The scheme check quotes the URL it refuses, but with its credentials masked."""
    with pytest.raises(ValueError, match=r"got 'ftp://\*\*\*@h\.test/v1'"):
        dnx.AsyncDialNexa(api_key=API_KEY, base_url="ftp://user:pw-s3cr3t@h.test/v1")


async def test_plain_http_to_a_remote_host_warns_once(mock_api: aioresponses) -> None:
    """http:// to a host that is not loopback warns once, at construction, with
    InsecureBaseURLWarning pointing at the caller's line; calls add no more warnings."""
    url = "http://api.dialnexa.test/v1"
    mock_api.get(f"{url}/campaigns-leads/lead_abc123", payload=LEAD, repeat=True)
    with pytest.warns(dnx.InsecureBaseURLWarning, match="unencrypted") as caught:
        client = dnx.AsyncDialNexa(api_key=API_KEY, base_url=url, clock=dnx.VirtualClock())
    assert len(caught) == 1
    assert caught[0].filename == __file__
    assert SECRET not in str(caught[0].message)
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        async with client:
            for _ in range(3):
                await client.get_lead("lead_abc123")
    assert later == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v1",
        "http://127.9.9.9/v1",
        "http://localhost:8080/v1",
        "http://[::1]:8080/v1",
        "https://api.dialnexa.test/v1",
    ],
)
def test_loopback_http_and_https_do_not_warn(url: str) -> None:
    """The simulator's loopback http:// and any https:// build a client without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dnx.AsyncDialNexa(api_key=API_KEY, base_url=url)


def test_repr_of_a_client_shows_neither_key_nor_credentials() -> None:
    """repr(client) names the URL and settings, never the key."""
    client = dnx.AsyncDialNexa(api_key=API_KEY, base_url="https://api.dialnexa.test/v1")
    assert "api.dialnexa.test" in repr(client)
    assert SECRET not in repr(client)
    assert SECRET not in repr(vars(client))


# --- classification is the SDK's own, whatever session it is given ---------------------------


async def test_a_session_raising_for_status_does_not_change_classification(guard: Guard) -> None:
    """A caller's session made with raise_for_status=True: a 404 is still NotFoundError after
    one attempt, not a retried connection error."""
    body = _envelope(404, "Lead not found")
    async with (
        guard.server(reply(404, body)) as server,
        aiohttp.ClientSession(raise_for_status=True) as session,
        guard.client(server, session=session) as client,
    ):
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.NotFoundError)
    assert error.attempts == 1
    assert server.requests == {PATH: 1}


async def test_a_session_with_its_own_auth_is_refused_at_construction() -> None:
    """A caller's session made with auth= would replace the key (aiohttp then refuses every
    request with a raw ValueError): the client refuses it up front, saying why."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # auth= is deprecated in aiohttp
        session = aiohttp.ClientSession(auth=aiohttp.BasicAuth("user", "pw"))
    async with session:
        with pytest.raises(ValueError, match="auth="):
            dnx.AsyncDialNexa(api_key=API_KEY, base_url="https://h.test/v1", session=session)


async def test_a_session_without_decompression_still_reads_gzip(guard: Guard) -> None:
    """A caller's session made with auto_decompress=False: a gzip answer is still the lead."""
    packed = gzip.compress(LEAD_BODY)
    answer = reply(200, packed, headers={"Content-Encoding": "gzip"})
    async with (
        guard.server(answer) as server,
        aiohttp.ClientSession(auto_decompress=False) as session,
        guard.client(server, session=session) as client,
    ):
        lead = await client.get_lead("lead_abc123")
    assert lead.id == LEAD["id"]


def _decodable() -> set[str]:
    """The encodings aiohttp can decode in this installation."""
    names = {"gzip", "deflate"}
    if importlib.util.find_spec("brotli") or importlib.util.find_spec("brotlicffi"):
        names.add("br")
    if "zstd" in ACCEPT_ENCODING:
        names.add("zstd")
    return names


def test_aiohttp_still_says_which_encodings_it_can_decode() -> None:
    """The fence on aiohttp's ``ClientRequest.DEFAULT_HEADERS``: if aiohttp stops listing what it
    decodes there, the client falls back to gzip and deflate alone; this fails first."""
    assert aiohttp.hdrs.ACCEPT_ENCODING in aiohttp.ClientRequest.DEFAULT_HEADERS
    assert aiohttp.ClientRequest.DEFAULT_HEADERS[aiohttp.hdrs.ACCEPT_ENCODING] == ACCEPT_ENCODING


@pytest.mark.parametrize("own_session", [True, False], ids=["own-session", "callers-session"])
async def test_accept_encoding_names_only_what_can_be_decoded(
    guard: Guard, own_session: bool
) -> None:
    """Every request asks for exactly the encodings this installation decodes (br only with
    Brotli), even through a session whose defaults ask for br and zstd."""
    async with (
        guard.server(reply()) as server,
        aiohttp.ClientSession(headers={"Accept-Encoding": "br, zstd"}) as session,
    ):
        options = {} if own_session else {"session": session}
        async with guard.client(server, **options) as client:
            await client.get_lead("lead_abc123")
    asked = {name.strip() for name in server.headers[0]["accept-encoding"].split(",")}
    assert asked == _decodable()


@pytest.mark.parametrize("encoding", ["br", "zstd"])
async def test_an_encoding_that_cannot_be_decoded_fails_once_typed(
    guard: Guard, encoding: str
) -> None:
    """An answer in an encoding this installation cannot decode (br without Brotli) is an
    UnsupportedEncodingError, a ResponseValidationError, after one attempt: another attempt
    would get the same answer."""
    if encoding in _decodable():
        pytest.skip(f"{encoding} can be decoded in this installation")
    answer = reply(200, b"\x8b\x02\x80", headers={"Content-Encoding": encoding})
    async with guard.server(answer) as server, guard.client(server) as client:
        error = await guard.fails(client.get_lead("lead_abc123"), dnx.UnsupportedEncodingError)
    assert isinstance(error, dnx.ResponseValidationError)
    assert error.attempts == 1
    assert server.requests == {PATH: 1}
    assert client.stats.retries == 0
    assert encoding in str(error)
