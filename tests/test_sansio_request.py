"""Building requests: id validation, path quoting, headers."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialnexa_async._sansio.request import (
    default_headers,
    has_version_segment,
    lead_url,
    normalize_base_url,
    quote_segment,
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
