"""The one cattrs converter: how a lead crosses the wire, in both directions.

Structuring is tolerant where the API is loose and strict where a wrong value would be a
silent lie:

- ``status``: a documented value becomes its ``LeadStatus``; any other string is kept as is.
- ``created_at``: ISO 8601 with ``Z``, an offset or none (the API is UTC), any fraction
  length (cut to microseconds), ``T`` or space between date and time; always UTC out.
- ``metadata`` / ``notes``: absent or ``null`` is an empty dict; anything but an object
  is an error.
- ``name`` / ``call_log_id``: absent or ``null`` is ``None``.
- unknown fields are ignored.
- every string field must be a JSON string: ``"id": 42`` is rejected, not turned into
  ``"42"``, because a number where an id belongs means the body is not what we think.

``parse_lead`` and ``decode_lead`` raise ``ResponseValidationError`` and nothing else for
any input.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import re
import reprlib
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

import cattrs
from cattrs.errors import ClassValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._errors import ResponseValidationError
from ._models import Lead, LeadStatus

__all__ = [
    "configure_converter",
    "converter",
    "decode_lead",
    "format_timestamp",
    "lead_to_dict",
    "make_converter",
    "parse_lead",
    "parse_timestamp",
]

_UTC = timezone.utc

_API_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
"""The exact form the API documents."""


if sys.version_info >= (3, 11):

    def _from_api_form(value: str) -> datetime:
        """Parse a string shaped like ``2024-03-01T10:00:00.000Z``, or raise ``ValueError``.

        Python 3.11's ``fromisoformat`` reads this form whole, ``Z`` included, and checks
        every digit, in a tenth of the time of a regular expression.
        """
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not _UTC:  # pragma: no cover - "Z" always gives timezone.utc
            parsed = parsed.astimezone(_UTC)
        return parsed

else:  # pragma: no cover - Python 3.10's fromisoformat refuses "Z"

    def _from_api_form(value: str) -> datetime:
        """Parse a string shaped like ``2024-03-01T10:00:00.000Z``, or raise ``ValueError``."""
        if not _API_FORM.fullmatch(value):
            raise ValueError(value)
        return datetime.fromisoformat(value[:23]).replace(tzinfo=_UTC)


_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2})(?::?([0-9]{2}))?)?"
)

# Bounds what an error message and ``ResponseValidationError.body`` quote from a bad value.
_QUOTE = reprlib.Repr()
_QUOTE.maxstring = 80
_MAX_BODY_TEXT = 2048

_STR_REPEATED = itertools.repeat(str)
"""The second argument of ``isinstance`` for every key, checked at C speed by ``map``."""

_STATUS_BY_VALUE: Mapping[str, LeadStatus] = {status.value: status for status in LeadStatus}


def _kind(value: object) -> str:
    """Name the JSON-ish type of a value for an error message."""
    return "null" if value is None else type(value).__name__


def parse_timestamp(value: object) -> datetime:
    """Parse an ISO 8601 timestamp into a timezone-aware UTC datetime.

    Args:
        value: the JSON value of the field.

    Raises:
        TypeError: the value is not a string.
        ValueError: the string is not an ISO 8601 timestamp or names no real instant.
    """
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 timestamp string, got {_kind(value)}")
    try:
        if len(value) == 24 and value[23] == "Z" and value[10] == "T" and value[19] == ".":
            # The documented form, ``2024-03-01T10:00:00.000Z``: nearly every lead.
            return _from_api_form(value)
        match = _TIMESTAMP.fullmatch(value)
        if match is not None:
            return _timestamp_from_match(match)
    except (ValueError, OverflowError):
        pass
    raise ValueError(f"not an ISO 8601 timestamp: {_QUOTE.repr(value)}")


def _timestamp_from_match(match: re.Match[str]) -> datetime:
    """Build the UTC datetime a general-form timestamp match denotes."""
    year, month, day, hour, minute, second, fraction, sign, off_hours, off_minutes = match.groups()
    # Beyond microseconds is truncated, never rounded, so a value cannot roll into the next second.
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    parsed = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micros, _UTC
    )
    if sign is None:
        return parsed
    hours, minutes = int(off_hours), int(off_minutes or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    offset = timedelta(hours=hours, minutes=minutes)
    return parsed - offset if sign == "+" else parsed + offset


def format_timestamp(value: datetime) -> str:
    """Format a datetime the way the API does: UTC, milliseconds and ``Z``.

    Microseconds are written out only when they are not whole milliseconds, so formatting
    then parsing always gives back the same instant.

    Args:
        value: a timezone-aware datetime.
    """
    value = value.astimezone(_UTC)
    timespec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    return value.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def _structure_str(value: object, _: object = None) -> str:
    """Accept a JSON string only; a number or null where text belongs is an error."""
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {_kind(value)}")


def _structure_optional_str(value: object, _: object = None) -> str | None:
    """Accept a JSON string or null, the latter meaning the value is not set."""
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string or null, got {_kind(value)}")


def _structure_status(value: object, _: object = None) -> LeadStatus | str:
    """Map a documented status to its member and keep any other string as it came."""
    if isinstance(value, str):
        return _STATUS_BY_VALUE.get(value, value)
    raise TypeError(f"expected a string, got {_kind(value)}")


def _structure_json_object(value: object, _: object = None) -> dict[str, Any]:
    """Copy a JSON object; absent-like ``null`` is empty, any other value is an error."""
    if value is None:
        return {}
    if isinstance(value, dict):
        if all(map(isinstance, value, _STR_REPEATED)):
            return dict(value)
        raise TypeError("expected a JSON object, got a dict with non-string keys")
    raise TypeError(f"expected a JSON object or null, got {_kind(value)}")


def _structure_timestamp(value: object, _: object = None) -> datetime:
    """Adapt ``parse_timestamp`` to the two-argument hook signature."""
    return parse_timestamp(value)


def configure_converter(converter: cattrs.Converter) -> None:
    """Register every hook a lead needs on ``converter``; the hooks are generated here, once.

    Args:
        converter: the converter to configure.
    """
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(datetime, _structure_timestamp)
    converter.register_unstructure_hook(datetime, format_timestamp)
    # Field-level hooks skip the converter's generic Optional and Mapping dispatch per call.
    optional_str = override(struct_hook=_structure_optional_str)
    mapping = override(struct_hook=_structure_json_object, unstruct_hook=dict)
    converter.register_structure_hook(
        Lead,
        make_dict_structure_fn(
            Lead,
            converter,
            _cattrs_forbid_extra_keys=False,
            # Detailed validation tags each failure with its field name, which the error
            # message needs; its try blocks cost nothing on the success path.
            _cattrs_detailed_validation=True,
            status=override(struct_hook=_structure_status),
            name=optional_str,
            metadata=mapping,
            notes=mapping,
            call_log_id=optional_str,
        ),
    )
    converter.register_unstructure_hook(
        Lead,
        make_dict_unstructure_fn(
            Lead,
            converter,
            # str() of a member is its value and of a plain string the string itself.
            status=override(unstruct_hook=str),
            metadata=mapping,
            notes=mapping,
        ),
    )


def make_converter() -> cattrs.Converter:
    """Return a new converter configured for the DialNexa wire format."""
    new = cattrs.Converter()
    configure_converter(new)
    return new


converter = make_converter()
_structure_lead: Callable[[Any, type[Lead]], Lead] = converter.get_structure_hook(Lead)
_unstructure_lead: Callable[[Lead], dict[str, Any]] = converter.get_unstructure_hook(Lead)


def lead_to_dict(lead: Lead) -> dict[str, Any]:
    """Return ``lead`` as a JSON-ready dict; see ``Lead.to_dict`` for the exact shape.

    Args:
        lead: the lead to unstructure.
    """
    return _unstructure_lead(lead)


def parse_lead(payload: object) -> Lead:
    """Structure a decoded JSON body into a ``Lead``.

    Args:
        payload: the JSON-decoded response body.

    Raises:
        ResponseValidationError: the payload is not a lead; the message names the field,
            and ``.body`` is the payload.
    """
    if not isinstance(payload, dict):
        raise ResponseValidationError(
            f"lead body is not a JSON object (got {_kind(payload)})", body=payload
        )
    try:
        return _structure_lead(payload, Lead)
    except ClassValidationError as exc:
        raise ResponseValidationError(_describe_failure(exc), body=payload) from exc


def _describe_failure(error: ClassValidationError) -> str:
    """Say which fields were wrong and why, one clause per field."""
    with_notes, without_notes = error.group_exceptions()
    problems = []
    for exc, note in with_notes:
        if isinstance(exc, KeyError):
            problems.append(f"lead is missing required field {note.name!r}")
        else:
            problems.append(f"lead field {note.name!r}: {exc}")
    problems.extend(f"lead is invalid: {exc}" for exc in without_notes)
    return "; ".join(problems)


def _reject_constant(name: str) -> NoReturn:
    """Refuse the ``NaN`` and ``Infinity`` literals that strict JSON does not have."""
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """Parse a JSON number, refusing one too large for a double as orjson does."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number is infinity when parsed as double: {_QUOTE.repr(text)}")
    return value


# The stdlib decoder is made as strict as orjson where that is cheap. They still differ on
# two rarities: orjson refuses lone surrogate escapes ("\ud800") and reads integers beyond
# 64 bits as floats, where the stdlib keeps both; either way the result is a Lead or a
# ResponseValidationError.
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _stdlib_loads(body: bytes) -> Any:
    """Decode UTF-8 JSON the way orjson does: no NaN or Infinity, no UTF-16/32 sniffing."""
    return _JSON_DECODER.decode(body.decode("utf-8"))


def _select_loads() -> Callable[[bytes], Any]:
    """Pick orjson when it is installed, else the stdlib decoder."""
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:
        return _stdlib_loads
    loads: Callable[[bytes], Any] = orjson.loads
    return loads


_loads = _select_loads()


def decode_lead(body: bytes) -> Lead:
    """Decode a raw response body and structure it into a ``Lead``.

    Args:
        body: the raw bytes of a 2xx answer.

    Raises:
        ResponseValidationError: the body is not UTF-8 JSON or not a lead; ``.body`` is the
            decoded value, or the (truncated) text when it was not JSON.
    """
    try:
        payload = _loads(body)
    except (ValueError, RecursionError) as exc:
        # orjson.JSONDecodeError, json.JSONDecodeError and UnicodeDecodeError are all
        # ValueErrors; RecursionError is the stdlib's answer to deeply nested arrays.
        text = body[:_MAX_BODY_TEXT].decode("utf-8", errors="replace")
        raise ResponseValidationError(f"lead body is not valid JSON: {exc}", body=text) from exc
    return parse_lead(payload)
