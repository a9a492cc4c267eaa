"""The attrs classes a response becomes: ``LeadStatus``, ``Lead`` and ``LeadResult``.

How they cross the wire (JSON field names, timestamps, tolerant status) lives in
``_converter.py``; this module only says what a lead is.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from ._errors import DialNexaError

__all__ = ["Lead", "LeadResult", "LeadStatus"]


class LeadStatus(str, enum.Enum):
    """A lead's documented place in the campaign queue; compares equal to its plain string."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    REMOVED = "removed"

    def __str__(self) -> str:
        # Mixed-in str enums print as "LeadStatus.COMPLETED" before StrEnum (3.11); the wire
        # value is what users print, log and format.
        return self.value


def _to_utc(value: datetime) -> datetime:
    """Return ``value`` in UTC, refusing a naive datetime whose zone would be a guess."""
    if value.__class__ is datetime and value.tzinfo is timezone.utc:
        return value  # what the converter gives: no call needed
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"created_at must be a timezone-aware datetime, got {value!r}")
    if value.tzinfo is timezone.utc:
        return value
    return value.astimezone(timezone.utc)


@attrs.frozen
class Lead:
    """One campaign lead, as ``GET /campaigns-leads/{id}`` returns it.

    ``metadata`` and ``notes`` are left out of the hash (they are dicts), so a lead is
    hashable and equal leads still hash equal.

    Args:
        id: the campaign-lead id.
        campaign_id: the campaign the lead belongs to.
        phone_number: the contact's number, E.164.
        status: a ``LeadStatus`` for a documented value, else the plain string the API sent.
        created_at: when the lead was enrolled; always timezone-aware UTC (an aware
            datetime in another zone is converted, a naive one is refused).
        name: the contact's name, when the API sent one.
        metadata: the dynamic variables sent to the voice agent; empty when absent.
        notes: the schema form's equivalent of ``metadata``; empty when absent.
        call_log_id: the call log of the placed call; ``None`` until a call was placed.
    """

    id: str
    campaign_id: str
    phone_number: str
    status: LeadStatus | str
    created_at: datetime = attrs.field(converter=_to_utc)
    name: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    notes: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    call_log_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the lead as a JSON-ready dict in the API's field names and date format.

        Every field is always present: ``name`` and ``call_log_id`` as ``None`` when unset,
        ``metadata`` and ``notes`` as (shallow-copied) dicts, possibly empty. ``status`` is
        the plain string and ``created_at`` reads like ``2024-03-01T10:00:00.000Z``.
        ``parse_lead(lead.to_dict()) == lead`` holds whenever the mappings hold JSON values.
        """
        # Imported here because the converter imports this module to build its hooks.
        from ._converter import lead_to_dict

        return lead_to_dict(self)


@attrs.frozen
class LeadResult:
    """The outcome of fetching one lead in a bulk call: the lead or the error, never both.

    Args:
        lead_id: the id as the caller gave it.
        lead: the lead, when the fetch succeeded.
        error: why the fetch failed, when it did.

    Raises:
        ValueError: unless exactly one of ``lead`` and ``error`` is set.
    """

    lead_id: str
    lead: Lead | None = None
    error: DialNexaError | None = None

    def __attrs_post_init__(self) -> None:
        if (self.lead is None) == (self.error is None):
            raise ValueError("LeadResult needs exactly one of lead and error")

    @property
    def ok(self) -> bool:
        """Whether the fetch succeeded."""
        return self.lead is not None

    def unwrap(self) -> Lead:
        """Return the lead, or raise the error the fetch ended with."""
        if self.error is not None:
            raise self.error
        assert self.lead is not None  # __attrs_post_init__ guarantees one of the two
        return self.lead
