"""Building the request for one lead: the id check, the path, and the fixed headers."""

from __future__ import annotations

import ipaddress
import platform
import re
import sys
from urllib.parse import quote, urlsplit

from .._errors import InvalidLeadIdError
from .._version import __version__

LEADS_PATH = "/campaigns-leads/"

_DOT_SEGMENTS = frozenset({".", ".."})


def validate_lead_id(lead_id: object) -> str:
    """Return ``lead_id`` if it can name a lead, else raise ``InvalidLeadIdError``.

    ``InvalidLeadIdError`` is a ``ValueError`` too.

    Args:
        lead_id: what the caller passed; must be a non-empty ``str`` other than ``.``/``..``,
            which a URL library would resolve into a different path.
    """
    if not isinstance(lead_id, str):
        raise InvalidLeadIdError(f"lead id must be a str, not {type(lead_id).__name__}")
    if not lead_id:
        raise InvalidLeadIdError("lead id must not be empty")
    if lead_id in _DOT_SEGMENTS:
        raise InvalidLeadIdError(f"lead id {lead_id!r} is a dot segment and cannot name a lead")
    if not lead_id.isascii() and not _encodable(lead_id):
        raise InvalidLeadIdError("lead id holds a lone surrogate, which UTF-8 cannot encode")
    return lead_id


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+")


def quote_segment(value: str) -> str:
    """Percent-encode ``value`` as one path segment: ``/``, ``?``, ``#`` and ``%`` included."""
    # Real ids are unreserved characters only, which quote() would return unchanged.
    if _UNRESERVED.fullmatch(value):
        return value
    return quote(value, safe="")


def lead_url(base_url: str, lead_id: str) -> str:
    """The already-encoded URL of one lead under ``base_url`` (which has no trailing slash)."""
    return base_url + LEADS_PATH + quote_segment(validate_lead_id(lead_id))


def normalize_base_url(base_url: str) -> str:
    """Strip the trailing slashes so paths can be appended with one ``/``.

    Raises:
        ValueError: not ``http(s)://``, or credentials (``user:password@``) in it; the message
            never quotes them.
    """
    stripped = base_url.rstrip("/")
    if not stripped.startswith(("http://", "https://")):
        shown = _USERINFO.sub(r"\1***@", stripped)
        raise ValueError(f"base_url must start with http:// or https://, got {shown!r}")
    if "@" in urlsplit(stripped).netloc:
        raise ValueError(
            "base_url must not carry credentials (user:password@host): the API key is the "
            "only credential the API takes, and aiohttp would send these in its place"
        )
    return stripped


_USERINFO = re.compile(r"^([^/?#@]*//)?[^/?#]*@")
"""Whatever stands before an ``@`` in a URL's authority: credentials, never to be shown."""


def sends_in_clear(base_url: str) -> bool:
    """Whether requests to ``base_url`` cross a network unencrypted, key included.

    True for ``http://`` to any host but a loopback one (``localhost``, ``127.0.0.0/8``,
    ``::1``), which never leaves the machine. No name is resolved.
    """
    parts = urlsplit(base_url)
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    return not (address.is_loopback or (mapped is not None and mapped.is_loopback))


def api_key_problem(key: str, name: str = "the API key") -> str | None:
    """Why ``key`` cannot be sent as a bearer token unchanged, or ``None`` when it can.

    What is refused is what a header cannot carry or would carry altered: aiohttp refuses
    control characters on every request, re-encodes other non-ASCII characters as UTF-8 and
    drops a lone surrogate, and a space or a padding newline is never part of a key. The
    answer never quotes the key: it names the fault, the offending character's code point (no
    real key holds one) and its index.

    Args:
        key: the key, a non-empty ``str``.
        name: how the message names the key (say, where it came from).
    """
    if key.isascii() and key.isprintable() and " " not in key:
        return None
    if key != key.strip():
        return f"{name} starts or ends with whitespace (a stray newline or space?): strip it"
    for index, char in enumerate(key):
        if "!" <= char <= "~":
            continue
        code = f"U+{ord(char):04X}"
        if char == " ":
            fault, why = "a space", "a bearer token cannot contain one"
        elif char < " " or char == "\x7f":
            fault, why = f"a control character ({code})", "an HTTP header cannot carry it"
        elif "\ud800" <= char <= "\udfff":
            fault, why = f"a lone surrogate ({code})", "it cannot be encoded at all"
        else:
            fault, why = f"a non-ASCII character ({code})", "keys are ASCII (pasted text?)"
        return f"{name} holds {fault} at index {index}: {why}"
    raise AssertionError("unreachable: a key failing the fast check holds such a character")


_VERSION_SEGMENT = re.compile(r"v[0-9]+[a-z0-9]*", re.IGNORECASE)


def has_version_segment(base_url: str) -> bool:
    """Whether the path of ``base_url`` names an API version (``/v1``, ``/api/v2beta``...).

    The API's routes all live under ``/v1``; without a version segment every request meets
    a 404 for a route that does not exist, unless a proxy adds the version itself.
    """
    path = urlsplit(base_url).path
    return any(_VERSION_SEGMENT.fullmatch(segment) for segment in path.split("/"))


def user_agent(aiohttp_version: str) -> str:
    """The ``User-Agent`` naming the SDK, Python and aiohttp versions."""
    python = f"{platform.python_implementation()}/{sys.version_info[0]}.{sys.version_info[1]}"
    return f"dialnexa-async/{__version__} {python} aiohttp/{aiohttp_version}"


def default_headers(api_key: str, agent: str) -> dict[str, str]:
    """The headers every request carries."""
    return {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "User-Agent": agent,
    }
