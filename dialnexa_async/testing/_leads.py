"""Deterministic campaign leads: the same id always yields the same lead, on any machine."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time

ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
"""What a lead id must match for the API to look it up (else it answers 400)."""

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")

STATUSES = ("pending", "in_progress", "completed", "failed", "removed")
"""The documented lead statuses."""

UNDOCUMENTED_STATUSES = ("voicemail", "scheduled", "do_not_call")
"""Statuses the docs do not list, served when ``unknown_status_rate`` picks an id."""

_FIRST_NAMES = (
    "Priya",
    "Arjun",
    "Ananya",
    "Rohan",
    "Kavya",
    "Vikram",
    "Meera",
    "Aditya",
    "Sneha",
    "Rahul",
    "Isha",
    "Karan",
    "Divya",
    "Nikhil",
    "Pooja",
    "Sanjay",
)
_LAST_NAMES = (
    "Sharma",
    "Iyer",
    "Patel",
    "Reddy",
    "Nair",
    "Gupta",
    "Mehta",
    "Singh",
    "Das",
    "Kulkarni",
    "Menon",
    "Joshi",
)
_PRODUCTS = ("home_loan", "personal_loan", "credit_card", "car_loan", "insurance", "gold_loan")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

# Leads are created between 2023-01-01T00:00:00Z (inclusive) and 2026-01-01T00:00:00Z.
_EPOCH_2023 = 1_672_531_200
_SPAN_MS = (1_767_225_600 - _EPOCH_2023) * 1000

# Compact separators match what a production JSON API sends; one shared encoder is faster
# than json.dumps() with keyword arguments, which builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))

# Scale of the per-id fraction compared against unknown_status_rate.
_FRACTION_SCALE = 1_000_000


# Maps every byte value onto the token alphabet; the slight bias towards its first
# characters does not matter for fake ids, and translate() runs in C.
_TOKEN_TABLE = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) for b in range(256))
_TOKEN_LENGTH = 12


class _Digits:
    """Draws bounded integers from one big hash value, least significant digits first."""

    __slots__ = ("_n",)

    def __init__(self, seed: bytes) -> None:
        self._n = int.from_bytes(seed, "big")

    def below(self, bound: int) -> int:
        self._n, value = divmod(self._n, bound)
        return value


def _timestamp(offset_ms: int) -> str:
    seconds, millis = divmod(offset_ms, 1000)
    t = time.gmtime(_EPOCH_2023 + seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}Z"
    )


def lead_payload(lead_id: str, *, unknown_status_rate: float = 0.0) -> dict[str, object]:
    """Return the JSON object the simulator serves for ``lead_id`` when the lead exists.

    Half the ids (by hash) get the schema form (``name``, ``notes``, ``call_log_id``), the
    others the example form (``metadata``, no ``name`` nor ``call_log_id``). Every field is
    derived from the SHA-512 digest of the id, so results are stable across processes and
    Python versions.

    Args:
        lead_id: The decoded lead id; it is echoed back as ``id``.
        unknown_status_rate: Must equal the simulator's setting for the result to match what
            it serves; ids whose hash fraction falls below it get an undocumented status.
    """
    # Every draw happens unconditionally and in a fixed order, so options that change one
    # field never shift the others.
    digest = hashlib.sha512(lead_id.encode("utf-8", "surrogatepass")).digest()
    tokens = digest[: 2 * _TOKEN_LENGTH].translate(_TOKEN_TABLE).decode("ascii")
    campaign_id = "cmp_" + tokens[:_TOKEN_LENGTH]
    call_log_id = "log_" + tokens[_TOKEN_LENGTH:]
    d = _Digits(digest[2 * _TOKEN_LENGTH :])
    schema_form = d.below(2) == 0
    status = STATUSES[d.below(len(STATUSES))]
    fraction = d.below(_FRACTION_SCALE)
    odd_status = UNDOCUMENTED_STATUSES[d.below(len(UNDOCUMENTED_STATUSES))]
    if fraction < unknown_status_rate * _FRACTION_SCALE:
        status = odd_status
    # Indian mobile numbers start with 6 to 9.
    phone = f"+91{6 + d.below(4)}{d.below(1_000_000_000):09d}"
    name = f"{_FIRST_NAMES[d.below(len(_FIRST_NAMES))]} {_LAST_NAMES[d.below(len(_LAST_NAMES))]}"
    product = _PRODUCTS[d.below(len(_PRODUCTS))]
    loan_amount = str(25_000 * (1 + d.below(80)))
    created_at = _timestamp(d.below(_SPAN_MS))

    if schema_form:
        return {
            "id": lead_id,
            "name": name,
            "phone_number": phone,
            "campaign_id": campaign_id,
            "status": status,
            "notes": {"loan_amount": loan_amount, "product": product},
            "call_log_id": None if status == "pending" else call_log_id,
            "created_at": created_at,
        }
    return {
        "id": lead_id,
        "campaign_id": campaign_id,
        "phone_number": phone,
        "metadata": {"customer_name": name, "product": product},
        "status": status,
        "created_at": created_at,
    }


@functools.lru_cache(maxsize=4096)
def lead_body(lead_id: str, unknown_status_rate: float) -> bytes:
    """Return the encoded body of ``lead_payload``; bounded cache for hot ids in benchmarks."""
    payload = lead_payload(lead_id, unknown_status_rate=unknown_status_rate)
    return _ENCODER.encode(payload).encode("utf-8")
