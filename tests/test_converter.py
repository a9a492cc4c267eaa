"""Tests for the cattrs converter: parse_lead, decode_lead, timestamps and to_dict."""

from __future__ import annotations

import importlib
import json
import re
import sys
import types
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

import attrs
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dialnexa_async import _converter
from dialnexa_async._converter import (
    decode_lead,
    format_timestamp,
    lead_to_dict,
    make_converter,
    parse_lead,
    parse_timestamp,
)
from dialnexa_async._errors import ResponseValidationError
from dialnexa_async._models import Lead, LeadStatus

from .conftest import LEAD_BODY

UTC = timezone.utc

SCHEMA_FORM: dict[str, Any] = LEAD_BODY  # the schema form of the seed page

EXAMPLE_FORM: dict[str, Any] = {
    "id": "lead_m4b7zx9nq2pw",
    "campaign_id": "cmp_5tw8vz2rnx1q",
    "phone_number": "+919876543210",
    "metadata": {"customer_name": "Priya Sharma", "product": "home_loan"},
    "status": "pending",
    "created_at": "2024-05-01T09:05:00.000Z",
}


def with_changes(**changes: object) -> dict[str, Any]:
    """Return a copy of the example form with some fields replaced."""
    return {**EXAMPLE_FORM, **changes}


def without(key: str) -> dict[str, Any]:
    """Return a copy of the schema form lacking one field."""
    return {k: v for k, v in SCHEMA_FORM.items() if k != key}


try:
    orjson_loads = importlib.import_module("orjson").loads
except ImportError:
    orjson_loads = None

# Each JSON decoder decode_lead can pick; orjson's runs only where it is installed.
LOADERS = [
    pytest.param(_converter._stdlib_loads, id="stdlib"),
    pytest.param(
        orjson_loads,
        id="orjson",
        marks=pytest.mark.skipif(orjson_loads is None, reason="orjson is not installed"),
    ),
]


@pytest.fixture(params=LOADERS)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the test once with each JSON decoder decode_lead can pick."""
    monkeypatch.setattr(_converter, "_loads", request.param)


# --- the documented shapes ---------------------------------------------------------------


def test_schema_form_parses_to_exact_values() -> None:
    """The schema form from the docs parses to exactly its documented field values."""
    lead = parse_lead(SCHEMA_FORM)
    assert lead == Lead(
        id="lead_abc123",
        campaign_id="cmp_xyz789",
        phone_number="+919876543210",
        status=LeadStatus.COMPLETED,
        created_at=datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC),
        name="Priya Sharma",
        metadata={},
        notes={"loan_amount": "250000", "product": "home_loan"},
        call_log_id="log_abc123",
    )
    assert lead.status is LeadStatus.COMPLETED
    assert lead.created_at.tzinfo is UTC


def test_example_form_parses_to_exact_values() -> None:
    """The example form from the docs parses to exactly its documented field values."""
    lead = parse_lead(EXAMPLE_FORM)
    assert lead == Lead(
        id="lead_m4b7zx9nq2pw",
        campaign_id="cmp_5tw8vz2rnx1q",
        phone_number="+919876543210",
        status=LeadStatus.PENDING,
        created_at=datetime(2024, 5, 1, 9, 5, 0, tzinfo=UTC),
        name=None,
        metadata={"customer_name": "Priya Sharma", "product": "home_loan"},
        notes={},
        call_log_id=None,
    )
    assert lead.status is LeadStatus.PENDING


@pytest.mark.parametrize("form", [SCHEMA_FORM, EXAMPLE_FORM], ids=["schema", "example"])
def test_documented_forms_round_trip(form: dict[str, Any]) -> None:
    """parse_lead(lead.to_dict()) gives back an equal lead for both documented forms."""
    lead = parse_lead(form)
    assert parse_lead(lead.to_dict()) == lead
    assert lead_to_dict(lead) == lead.to_dict()


def test_schema_form_to_dict_matches_the_body() -> None:
    """to_dict of the schema form equals the body plus the keys it lacked, as empty/null."""
    assert parse_lead(SCHEMA_FORM).to_dict() == {**SCHEMA_FORM, "metadata": {}}


def test_parse_does_not_alias_the_payload_mappings() -> None:
    """Mutating the payload after parsing does not change the lead's metadata."""
    payload = with_changes(metadata={"product": "home_loan"})
    lead = parse_lead(payload)
    payload["metadata"]["product"] = "car_loan"
    assert lead.metadata == {"product": "home_loan"}


def test_unknown_fields_are_ignored() -> None:
    """Fields the SDK does not know are ignored instead of failing the parse."""
    payload = with_changes(priority=3, tags=["a"], nested={"x": None}, statusCode=200)
    assert parse_lead(payload) == parse_lead(EXAMPLE_FORM)


# --- status ------------------------------------------------------------------------------


@pytest.mark.parametrize("member", list(LeadStatus))
def test_documented_status_becomes_member(member: LeadStatus) -> None:
    """Every documented status string parses to its LeadStatus member."""
    assert parse_lead(with_changes(status=member.value)).status is member


@pytest.mark.parametrize("value", ["paused", "COMPLETED", "", "in-progress", "queued_for_retry"])
def test_undocumented_status_is_kept_as_plain_string(value: str) -> None:
    """An unknown status parses as its plain str, equal to itself and to no member."""
    lead = parse_lead(with_changes(status=value))
    assert type(lead.status) is str
    assert lead.status == value
    assert lead.status not in list(LeadStatus)
    assert lead.to_dict()["status"] == value


# --- timestamps --------------------------------------------------------------------------

TEN_AM = datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T10:00:00.000Z", TEN_AM),
        ("2024-03-01T10:00:00.123Z", TEN_AM.replace(microsecond=123000)),
        ("2024-03-01T10:00:00Z", TEN_AM),
        ("2024-03-01T10:00:00.1Z", TEN_AM.replace(microsecond=100000)),
        ("2024-03-01T10:00:00.12Z", TEN_AM.replace(microsecond=120000)),
        ("2024-03-01T10:00:00.123456Z", TEN_AM.replace(microsecond=123456)),
        ("2024-03-01T10:00:00.1234567891Z", TEN_AM.replace(microsecond=123456)),
        ("2024-03-01T10:00:00.999999999Z", TEN_AM.replace(microsecond=999999)),
        ("2024-03-01T10:00:00+00:00", TEN_AM),
        ("2024-03-01T10:00:00.000+00:00", TEN_AM),
        ("2024-03-01T10:00:00-00:00", TEN_AM),
        ("2024-03-01T15:30:00+05:30", TEN_AM),
        ("2024-03-01T15:30:00+0530", TEN_AM),
        ("2024-03-01T05:00:00-05", TEN_AM),
        ("2024-03-01T00:00:00.000-10:00", TEN_AM),
        ("2024-03-02T09:59:00+23:59", TEN_AM),
        ("2024-03-01T10:00:00", TEN_AM),
        ("2024-03-01 10:00:00Z", TEN_AM),
        ("2024-03-01t10:00:00z", TEN_AM),
        ("2024-03-01T10:00:00,5Z", TEN_AM.replace(microsecond=500000)),
        ("2024-02-29T23:30:00-01:00", datetime(2024, 3, 1, 0, 30, tzinfo=UTC)),
    ],
)
def test_timestamp_forms(text: str, expected: datetime) -> None:
    """Each accepted ISO 8601 form parses to the right instant, always with the UTC tzinfo."""
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC
    assert parse_lead(with_changes(created_at=text)).created_at == expected


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "",
        "2024-03-01",
        "2024-03-01T10:00",
        "2024-03-01T10:00:00.Z",
        "2024-03-01T10:00:00.000ZZ",
        "2024-03-01T10:00:00.000Z ",
        " 2024-03-01T10:00:00.000Z",
        "2024-03-01X10:00:00.000Z",
        "20240301T100000Z",
        "2024-W09-5T10:00:00Z",
        "2024-13-01T10:00:00.000Z",
        "2024-02-30T10:00:00.000Z",
        "2023-02-29T10:00:00Z",
        "2024-03-01T24:00:00.000Z",
        "2024-03-01T23:59:60.000Z",
        "0000-01-01T00:00:00.000Z",
        "2024-03-01T10:00:00+24:00",
        "2024-03-01T10:00:00+05:60",
        "2024-03-01T10:00:00+5:30",
        "0001-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59-00:01",
        "2024-0३-01T10:00:00.000Z",
        "+2024-03-01T10:00:00.000Z",
    ],
)
def test_bad_timestamps_are_rejected(text: str) -> None:
    """Strings that are not a real ISO 8601 instant raise ValueError quoting the value."""
    with pytest.raises(ValueError, match="not an ISO 8601 timestamp") as caught:
        parse_timestamp(text)
    assert repr(text) in str(caught.value)


def test_long_bad_timestamp_quote_is_bounded() -> None:
    """A huge bad timestamp is quoted shortened, so the message stays readable."""
    with pytest.raises(ValueError, match="not an ISO 8601 timestamp") as caught:
        parse_timestamp("x" * 100_000)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("value", [None, 1709287200, 1.5, [], {}])
def test_non_string_timestamp_is_a_type_error(value: object) -> None:
    """A non-string created_at is a TypeError naming what was found."""
    with pytest.raises(TypeError, match="expected an ISO 8601 timestamp string"):
        parse_timestamp(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (TEN_AM, "2024-03-01T10:00:00.000Z"),
        (TEN_AM.replace(microsecond=123000), "2024-03-01T10:00:00.123Z"),
        (TEN_AM.replace(microsecond=123456), "2024-03-01T10:00:00.123456Z"),
        (
            datetime(2024, 3, 1, 15, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2024-03-01T10:00:00.000Z",
        ),
        (datetime(5, 1, 2, 3, 4, 5, tzinfo=UTC), "0005-01-02T03:04:05.000Z"),
    ],
)
def test_format_timestamp(value: datetime, text: str) -> None:
    """Timestamps format as UTC with milliseconds and Z, microseconds only when needed."""
    assert format_timestamp(value) == text


_OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(
    instant=st.datetimes(
        min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
    ),
    zone=_OFFSETS,
)
def test_isoformat_in_any_zone_parses_to_same_instant(instant: datetime, zone: timezone) -> None:
    """Any instant written by isoformat() in any whole-minute zone parses back exactly."""
    assert parse_timestamp(instant.astimezone(zone).isoformat()) == instant
    assert parse_timestamp(format_timestamp(instant)) == instant


# --- optional fields and mappings -------------------------------------------------------


@pytest.mark.parametrize("key", ["metadata", "notes"])
@pytest.mark.parametrize("present", ["absent", "null", "empty"])
def test_absent_or_null_mapping_is_empty(key: str, present: str) -> None:
    """metadata/notes absent, null or {} all parse to an empty dict."""
    payload = {k: v for k, v in EXAMPLE_FORM.items() if k not in ("metadata", "notes")}
    if present != "absent":
        payload[key] = None if present == "null" else {}
    assert getattr(parse_lead(payload), key) == {}


@pytest.mark.parametrize("key", ["name", "call_log_id"])
@pytest.mark.parametrize("present", [False, True])
def test_absent_or_null_optional_string_is_none(key: str, present: bool) -> None:
    """name/call_log_id absent or null parse to None."""
    payload = without(key)
    if present:
        payload[key] = None
    assert getattr(parse_lead(payload), key) is None


def test_mapping_values_are_kept_verbatim() -> None:
    """Nested JSON values in metadata come through unchanged."""
    metadata: dict[str, Any] = {
        "n": 1,
        "f": 1.5,
        "b": True,
        "z": None,
        "l": [1, {"a": "b"}],
        "o": {"x": []},
    }
    assert parse_lead(with_changes(metadata=metadata)).metadata == metadata


# --- validation errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([SCHEMA_FORM], "lead body is not a JSON object (got list)"),
        (None, "lead body is not a JSON object (got null)"),
        ("lead_abc123", "lead body is not a JSON object (got str)"),
        (42, "lead body is not a JSON object (got int)"),
        (without("id"), "lead is missing required field 'id'"),
        (without("campaign_id"), "lead is missing required field 'campaign_id'"),
        (without("phone_number"), "lead is missing required field 'phone_number'"),
        (without("status"), "lead is missing required field 'status'"),
        (without("created_at"), "lead is missing required field 'created_at'"),
        (with_changes(id=12345), "lead field 'id': expected a string, got int"),
        (with_changes(id=None), "lead field 'id': expected a string, got null"),
        (with_changes(campaign_id=["c"]), "lead field 'campaign_id': expected a string, got list"),
        (with_changes(phone_number=919876543210), "lead field 'phone_number': expected a string"),
        (with_changes(status=None), "lead field 'status': expected a string, got null"),
        (with_changes(status=1), "lead field 'status': expected a string, got int"),
        (
            with_changes(created_at="yesterday"),
            "lead field 'created_at': not an ISO 8601 timestamp: 'yesterday'",
        ),
        (
            with_changes(created_at=1709287200),
            "lead field 'created_at': expected an ISO 8601 timestamp string, got int",
        ),
        (with_changes(name=7), "lead field 'name': expected a string or null, got int"),
        (
            with_changes(call_log_id={"id": "x"}),
            "lead field 'call_log_id': expected a string or null, got dict",
        ),
        (
            with_changes(metadata=["a"]),
            "lead field 'metadata': expected a JSON object or null, got list",
        ),
        (
            with_changes(notes="n"),
            "lead field 'notes': expected a JSON object or null, got str",
        ),
        (
            with_changes(metadata={1: "a"}),
            "lead field 'metadata': expected a JSON object, got a dict with non-string keys",
        ),
    ],
)
def test_validation_error_names_the_field(payload: object, message: str) -> None:
    """Each kind of bad body raises ResponseValidationError naming the field, with the body."""
    with pytest.raises(ResponseValidationError) as caught:
        parse_lead(payload)
    assert str(caught.value).startswith(message)
    assert caught.value.body is payload


def test_every_bad_field_is_reported() -> None:
    """A body with several bad fields names each of them in one message."""
    payload = {"id": 1, "campaign_id": "c", "status": "x", "created_at": "soon"}
    with pytest.raises(ResponseValidationError) as caught:
        parse_lead(payload)
    message = str(caught.value)
    assert "lead field 'id'" in message
    assert "missing required field 'phone_number'" in message
    assert "lead field 'created_at'" in message
    assert "campaign_id" not in message


# --- decode_lead ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", [SCHEMA_FORM, EXAMPLE_FORM], ids=["schema", "example"])
def test_decode_lead_matches_parse_lead(loader: None, form: dict[str, Any]) -> None:
    """decode_lead on the encoded body equals parse_lead on the dict, with either decoder."""
    assert decode_lead(json.dumps(form).encode()) == parse_lead(form)


def test_decode_lead_accepts_non_ascii(loader: None) -> None:
    """UTF-8 text and escapes in values decode the same with either decoder."""
    body = json.dumps(with_changes(metadata={"customer_name": "प्रिया"}), ensure_ascii=False)
    assert decode_lead(body.encode()).metadata == {"customer_name": "प्रिया"}
    escaped = json.dumps(with_changes(metadata={"customer_name": "प्रिया"}))
    assert decode_lead(escaped.encode()).metadata == {"customer_name": "प्रिया"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"id": "lead_abc123"',
        b'{"id": "\xff\xfe"}',
        b"\xef\xbb\xbf{}",
        json.dumps(EXAMPLE_FORM).encode("utf-16"),
        b'{"id": NaN}',
        b'{"id": Infinity}',
        b'{"id": -Infinity}',
        b'{"metadata": {"x": 1e400}}',
        b'{"metadata": {"x": ' + b"1" * 5000 + b"}}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"id": "lead"} trailing',
    ],
    ids=[
        "empty",
        "text",
        "html",
        "truncated",
        "bad-utf8",
        "bom",
        "utf16",
        "nan",
        "infinity",
        "neg-infinity",
        "float-overflow",
        "huge-int",
        "deep-array",
        "deep-object",
        "trailing",
    ],
)
def test_decode_lead_rejects_non_json(loader: None, body: bytes) -> None:
    """Bytes that are not strict UTF-8 JSON raise ResponseValidationError with either decoder."""
    with pytest.raises(ResponseValidationError, match="lead body is not valid JSON") as caught:
        decode_lead(body)
    assert isinstance(caught.value.body, str)
    assert len(caught.value.body) <= 2048


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "lead body is not a JSON object (got list)"),
        (b"null", "lead body is not a JSON object (got null)"),
        (b'"x"', "lead body is not a JSON object (got str)"),
        (b'{"statusCode": 404, "message": "Lead not found", "error": "Not Found"}', "lead is"),
    ],
)
def test_decode_lead_rejects_json_that_is_not_a_lead(
    loader: None, body: bytes, message: str
) -> None:
    """JSON that is not a lead raises ResponseValidationError carrying the decoded value."""
    with pytest.raises(ResponseValidationError, match=re.escape(message)) as caught:
        decode_lead(body)
    assert caught.value.body == json.loads(body)


def test_select_loads_falls_back_to_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without orjson installed the stdlib decoder is picked."""
    monkeypatch.setitem(sys.modules, "orjson", None)
    assert _converter._select_loads() is _converter._stdlib_loads


def test_select_loads_prefers_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    """With orjson importable its loads is picked."""

    def fake_loads(body: bytes) -> Any:
        return {}

    fake = types.ModuleType("orjson")
    monkeypatch.setattr(fake, "loads", fake_loads, raising=False)
    monkeypatch.setitem(sys.modules, "orjson", fake)
    assert _converter._select_loads() is fake_loads


# --- the converter -------------------------------------------------------------------------


def test_make_converter_builds_an_equivalent_converter() -> None:
    """A fresh converter structures and unstructures leads like the module's own."""
    fresh = make_converter()
    assert fresh is not _converter.converter
    lead = fresh.structure(SCHEMA_FORM, Lead)
    assert lead == parse_lead(SCHEMA_FORM)
    assert fresh.unstructure(lead) == lead.to_dict()


# --- properties ----------------------------------------------------------------------------

# Integers stay within 64 bits, where both decoders read them back as the same int.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
any_decoded = st.recursive(
    json_scalars | st.integers() | st.floats(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
timestamps = st.datetimes(timezones=st.just(UTC)).map(format_timestamp)
ids = st.text(min_size=1)


json_objects = st.dictionaries(st.text(), json_values, max_size=4)
plausible_bodies = st.fixed_dictionaries(
    {
        "id": ids,
        "campaign_id": ids,
        "phone_number": st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True),
        "status": st.sampled_from([s.value for s in LeadStatus]) | st.text(),
        "created_at": timestamps | st.text(),
    },
    optional={
        "name": st.none() | st.text(),
        "metadata": st.none() | json_objects,
        "notes": st.none() | json_objects,
        "call_log_id": st.none() | ids,
        "extra": any_decoded,
    },
)
FIELDS = sorted(attrs.fields_dict(Lead))


@st.composite
def lead_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible lead body with some fields (often none) dropped or set to any JSON value."""
    body = draw(plausible_bodies)
    for key in draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=3)):
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(any_decoded)
    return body


def _lead_or_validation_error(call: Callable[[], Lead]) -> Lead | None:
    """Run a parse; allow only a Lead or a ResponseValidationError out of it."""
    try:
        lead = call()
    except ResponseValidationError:
        event("validation error")
        return None
    event("lead")
    return lead


@settings(max_examples=300)
@given(payload=any_decoded | lead_shaped())
def test_parse_lead_returns_lead_or_validation_error(payload: object) -> None:
    """parse_lead on any decoded JSON value returns a Lead or raises ResponseValidationError."""
    lead = _lead_or_validation_error(lambda: parse_lead(payload))
    if lead is not None:
        assert parse_lead(lead.to_dict()) == lead


@pytest.mark.parametrize("loads", LOADERS)
@settings(max_examples=300)
@given(body=st.binary() | lead_shaped().map(lambda d: json.dumps(d).encode()))
def test_decode_lead_returns_lead_or_validation_error(
    loads: Callable[[bytes], Any], body: bytes
) -> None:
    """decode_lead on any bytes returns a Lead or raises ResponseValidationError."""
    with mock.patch.object(_converter, "_loads", loads):
        _lead_or_validation_error(lambda: decode_lead(body))


valid_leads = st.builds(
    Lead,
    id=ids,
    campaign_id=ids,
    phone_number=st.text(),
    status=st.sampled_from(list(LeadStatus)) | st.text(),
    created_at=st.datetimes(timezones=st.just(UTC)),
    name=st.none() | st.text(),
    metadata=st.dictionaries(st.text(), json_values, max_size=4),
    notes=st.dictionaries(st.text(), json_values, max_size=4),
    call_log_id=st.none() | ids,
)


@pytest.mark.parametrize("loads", LOADERS)
@given(lead=valid_leads)
def test_any_lead_round_trips_through_json(loads: Callable[[bytes], Any], lead: Lead) -> None:
    """Every lead survives to_dict, JSON encoding and decode_lead unchanged."""
    assert parse_lead(lead.to_dict()) == lead
    with mock.patch.object(_converter, "_loads", loads):
        assert decode_lead(json.dumps(lead.to_dict()).encode()) == lead
