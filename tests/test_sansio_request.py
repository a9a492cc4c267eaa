"""Building requests: id validation, path quoting, headers."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialnexa_async._sansio.request import (
    api_key_problem,
    default_headers,
    has_version_segment,
    lead_url,
    normalize_base_url,
    quote_segment,
    sends_in_clear,
    user_agent,
    validate_lead_id,
)

BASE = "https://api.example.test/v1"


@pytest.mark.parametrize(
    ("lead_id", "path"),
    [
        ("lead_abc123", "/campaigns-leads/lead_abc123"),
        ("../admin", "/campaigns-leads/..%2Fadmin"),
        ("a/b", "/campaigns-leads/a%2Fb"),
        ("x?y", "/campaigns-leads/x%3Fy"),
        ("x#y", "/campaigns-leads/x%23y"),
        ("%2F", "/campaigns-leads/%252F"),
        ("%2e%2e", "/campaigns-leads/%252e%252e"),
        ("...", "/campaigns-leads/..."),
        ("lead é", "/campaigns-leads/lead%20%C3%A9"),
    ],
)
def test_lead_url_quotes_the_id_as_one_segment(lead_id: str, path: str) -> None:
    """Every id becomes exactly one percent-encoded segment under the leads path."""
    assert lead_url(BASE, lead_id) == BASE + path


@pytest.mark.parametrize("bad", ["", ".", "..", None, 42, b"lead_1", ["lead_1"]])
def test_bad_ids_raise_value_error(bad: object) -> None:
    """Empty, non-str and dot-segment ids are refused before any request is built."""
    with pytest.raises(ValueError, match="lead id"):
        validate_lead_id(bad)


@given(st.text(min_size=1))
def test_quoting_round_trips_and_never_leaves_a_delimiter(value: str) -> None:
    """Quoting any text gives no '/', '?' or '#' and unquotes back to the same text."""
    quoted = quote_segment(value)
    assert not {"/", "?", "#"} & set(quoted)
    assert unquote(quoted, errors="strict") == value


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [
        ("https://api.dialnexa.com/v1", "https://api.dialnexa.com/v1"),
        ("https://api.dialnexa.com/v1///", "https://api.dialnexa.com/v1"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1"),
    ],
)
def test_base_url_is_normalised(given_url: str, expected: str) -> None:
    """Trailing slashes are dropped so the path is joined with exactly one slash."""
    assert normalize_base_url(given_url) == expected


def test_base_url_without_scheme_is_refused() -> None:
    """A base URL that is not http(s) is a ValueError rather than a confusing request."""
    with pytest.raises(ValueError, match="http"):
        normalize_base_url("api.dialnexa.com/v1")


def test_headers_carry_bearer_key_accept_and_user_agent() -> None:
    """The fixed headers authenticate with a bearer key and name SDK, Python and aiohttp."""
    agent = user_agent("3.99.0")
    headers = default_headers("key_1:secret", agent)
    assert headers["Authorization"] == "Bearer key_1:secret"
    assert headers["Accept"] == "application/json"
    assert agent.startswith("dialnexa-async/")
    assert "aiohttp/3.99.0" in agent
    assert "Python/3." in agent


@pytest.mark.parametrize(
    "key", ["key_1:s3cr3t", "sk_live_0123456789", "".join(chr(c) for c in range(0x21, 0x7F))]
)
def test_a_key_of_visible_ascii_has_no_problem(key: str) -> None:
    """Any key made of visible ASCII characters can be sent unchanged."""
    assert api_key_problem(key) is None


@pytest.mark.parametrize(
    ("key", "fault"),
    [
        ("key_1:s\x00x", "a control character (U+0000) at index 7"),
        ("key_1:s\x0bx", "a control character (U+000B) at index 7"),
        ("key_1:s\x7fx", "a control character (U+007F) at index 7"),
        ("key_1:s\ud800x", "a lone surrogate (U+D800) at index 7"),
        ("key_1:s\u00e9x", "a non-ASCII character (U+00E9) at index 7"),
        ("key_1:s\u00a0x", "a non-ASCII character (U+00A0) at index 7"),
        ("key_1:s x", "a space at index 7"),
        ("key_1:sx\n", "starts or ends with whitespace"),
        ("\tkey_1:sx", "starts or ends with whitespace"),
    ],
)
def test_a_key_problem_names_the_fault_and_never_the_key(key: str, fault: str) -> None:
    """Each character a header cannot carry, or would carry altered, is named by code point and
    index; the message never quotes the key."""
    problem = api_key_problem(key, "the key")
    assert problem is not None
    assert fault in problem
    assert problem.startswith("the key ")
    assert "key_1" not in problem


@pytest.mark.parametrize(
    ("url", "in_clear"),
    [
        ("http://api.dialnexa.com/v1", True),
        ("http://10.1.2.3:8080/v1", True),
        ("http://[2001:db8::1]/v1", True),
        ("http://localhost.example.com/v1", True),
        ("https://api.dialnexa.com/v1", False),
        ("http://127.0.0.1:8080/v1", False),
        ("http://127.200.0.9/v1", False),
        ("http://localhost/v1", False),
        ("http://LocalHost./v1", False),
        ("http://app.localhost/v1", False),
        ("http://[::1]:9/v1", False),
        ("http://[::ffff:127.0.0.1]/v1", False),
    ],
)
def test_sends_in_clear_is_plain_http_off_loopback(url: str, in_clear: bool) -> None:
    """Only http:// to a host that is not loopback sends the key in clear; no name is resolved."""
    assert sends_in_clear(url) is in_clear


@pytest.mark.parametrize(
    "url", ["https://user:pw@api.dialnexa.com/v1", "https://user@h/v1", "http://:pw@127.0.0.1/v1"]
)
def test_base_url_with_credentials_is_refused_without_quoting_them(url: str) -> None:
    """Userinfo in the base URL is a ValueError whose message does not repeat it."""
    with pytest.raises(ValueError, match="credentials") as caught:
        normalize_base_url(url)
    assert "pw" not in str(caught.value)
    assert "user" not in str(caught.value).replace("user:password", "")


def test_base_url_with_an_at_sign_in_its_path_is_accepted() -> None:
    """An ``@`` after the host (in the path) is not userinfo."""
    assert normalize_base_url("https://h/v1/@x/") == "https://h/v1/@x"


@pytest.mark.parametrize(
    ("base_url", "versioned"),
    [
        ("https://api.dialnexa.com/v1", True),
        ("https://api.dialnexa.com/v1/", True),
        ("https://proxy.corp.test/dialnexa/v2", True),
        ("http://127.0.0.1:8080/api/v1beta/", True),
        ("https://api.dialnexa.com", False),
        ("https://api.dialnexa.com/", False),
        ("https://proxy.corp.test/dialnexa", False),
        ("https://v1.dialnexa.test/leads", False),
    ],
)
def test_a_version_segment_is_looked_for_in_the_path(base_url: str, versioned: bool) -> None:
    """Only a path segment like v1 or v2beta counts as the API version, never the host."""
    assert has_version_segment(base_url) is versioned
