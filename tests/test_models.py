"""Tests for the attrs models: LeadStatus, Lead and LeadResult."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import attrs
import pytest

from dialnexa_async._errors import NotFoundError, ResponseValidationError
from dialnexa_async._models import Lead, LeadResult, LeadStatus

CREATED = datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)


def make_lead(**changes: object) -> Lead:
    fields: dict[str, object] = {
        "id": "lead_abc123",
        "campaign_id": "cmp_xyz789",
        "phone_number": "+919876543210",
        "status": LeadStatus.COMPLETED,
        "created_at": CREATED,
    }
    fields.update(changes)
    return Lead(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("member", "value"),
    [
        (LeadStatus.PENDING, "pending"),
        (LeadStatus.IN_PROGRESS, "in_progress"),
        (LeadStatus.COMPLETED, "completed"),
        (LeadStatus.FAILED, "failed"),
        (LeadStatus.REMOVED, "removed"),
    ],
)
def test_status_member_is_its_wire_string(member: LeadStatus, value: str) -> None:
    """Each documented status equals, prints, formats and hashes as its plain wire string."""
    assert member == value
    assert value == member
    assert str(member) == value
    assert f"{member}" == value
    assert hash(member) == hash(value)
    assert LeadStatus(value) is member


def test_status_has_exactly_the_documented_members() -> None:
    """LeadStatus lists the five documented queue states and nothing else."""
    assert [m.value for m in LeadStatus] == [
        "pending",
        "in_progress",
        "completed",
        "failed",
        "removed",
    ]


def test_lead_defaults_for_optional_fields() -> None:
    """A lead built from the required fields has no name or call log and empty mappings."""
    lead = make_lead()
    assert lead.name is None
    assert lead.call_log_id is None
    assert lead.metadata == {}
    assert lead.notes == {}


def test_lead_default_mappings_are_not_shared() -> None:
    """Two leads do not share one default dict, so one cannot leak into the other."""
    assert make_lead().metadata is not make_lead().metadata


def test_lead_is_frozen() -> None:
    """Assigning to a field of a lead raises instead of silently changing it."""
    lead = make_lead()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        lead.id = "other"  # type: ignore[misc]


def test_lead_is_hashable_despite_dict_fields() -> None:
    """Leads hash (mappings are left out of the hash) and equal leads hash equal."""
    a = make_lead(metadata={"k": "v"})
    b = make_lead(metadata={"k": "v"})
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, make_lead(id="other")}) == 2


def test_lead_equality_includes_mappings() -> None:
    """Leads differing only in metadata are not equal, though they may hash alike."""
    assert make_lead(metadata={"k": "v"}) != make_lead(metadata={"k": "w"})


def test_lead_status_compares_to_plain_string() -> None:
    """A lead's status compares equal to the plain string the user writes."""
    assert make_lead(status=LeadStatus.COMPLETED).status == "completed"
    assert make_lead(status="paused").status == "paused"


def test_lead_converts_aware_created_at_to_utc() -> None:
    """An aware datetime in another zone is stored as the same instant in UTC."""
    ist = timezone(timedelta(hours=5, minutes=30))
    lead = make_lead(created_at=datetime(2024, 3, 1, 15, 30, tzinfo=ist))
    assert lead.created_at == CREATED
    assert lead.created_at.tzinfo is timezone.utc


@pytest.mark.parametrize("value", [datetime(2024, 3, 1, 10, 0), "2024-03-01T10:00:00.000Z"])
def test_lead_refuses_naive_or_non_datetime_created_at(value: object) -> None:
    """A naive datetime or a string for created_at is refused rather than guessed at."""
    with pytest.raises(ValueError, match="timezone-aware"):
        make_lead(created_at=value)


def test_lead_to_dict_emits_every_key_in_wire_form() -> None:
    """to_dict gives all nine API fields, status as a plain str and the API's date format."""
    lead = make_lead(name="Priya Sharma", metadata={"product": "home_loan"})
    result = lead.to_dict()
    assert result == {
        "id": "lead_abc123",
        "campaign_id": "cmp_xyz789",
        "phone_number": "+919876543210",
        "status": "completed",
        "created_at": "2024-03-01T10:00:00.000Z",
        "name": "Priya Sharma",
        "metadata": {"product": "home_loan"},
        "notes": {},
        "call_log_id": None,
    }
    assert type(result["status"]) is str


def test_lead_to_dict_copies_mappings() -> None:
    """Mutating the dict from to_dict leaves the lead's own mappings untouched."""
    lead = make_lead(metadata={"product": "home_loan"})
    lead.to_dict()["metadata"]["product"] = "car_loan"
    assert lead.metadata == {"product": "home_loan"}


def test_result_with_lead_is_ok() -> None:
    """A result holding a lead is ok and unwraps to that lead."""
    lead = make_lead()
    result = LeadResult("lead_abc123", lead=lead)
    assert result.ok
    assert result.error is None
    assert result.unwrap() is lead


def test_result_with_error_is_not_ok() -> None:
    """A result holding an error is not ok and unwrap raises that very error."""
    error = NotFoundError("Lead not found", status_code=404)
    result = LeadResult("lead_abc123", error=error)
    assert not result.ok
    assert result.lead is None
    with pytest.raises(NotFoundError) as caught:
        result.unwrap()
    assert caught.value is error


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"lead": make_lead(), "error": NotFoundError("Lead not found", status_code=404)},
    ],
    ids=["neither", "both"],
)
def test_result_needs_exactly_one_of_lead_and_error(kwargs: dict[str, object]) -> None:
    """A result with neither or both of lead and error cannot be built."""
    with pytest.raises(ValueError, match="exactly one"):
        LeadResult("lead_abc123", **kwargs)  # type: ignore[arg-type]


def test_result_with_error_pickles() -> None:
    """A result holding a keyword-only error survives pickling with the error's fields."""
    error = ResponseValidationError("bad", body={"x": 1}, status_code=200, request_id="r1")
    result = pickle.loads(pickle.dumps(LeadResult("lead_abc123", error=error)))
    assert result.lead_id == "lead_abc123"
    assert type(result.error) is ResponseValidationError
    assert result.error.message == "bad"
    assert result.error.body == {"x": 1}
    assert result.error.request_id == "r1"
    assert not result.ok


def test_result_with_lead_pickles() -> None:
    """A result holding a lead survives pickling as an equal lead with its status member."""
    lead = make_lead(name="Priya", notes={"a": [1, 2]}, call_log_id="log_1")
    result = pickle.loads(pickle.dumps(LeadResult("lead_abc123", lead=lead)))
    assert result.lead == lead
    assert result.lead is not None
    assert result.lead.status is LeadStatus.COMPLETED
