"""Async Python SDK for the DialNexa voice-AI calling API."""

from ._bulk import BulkProgress
from ._client import AsyncDialNexa
from ._clock import Clock, SystemClock, VirtualClock
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DialNexaError,
    InternalServerError,
    InvalidLeadIdError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    ResponseValidationError,
)
from ._models import Lead, LeadResult, LeadStatus
from ._redis_store import RedisRateStore
from ._stats import ClientStats
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncDialNexa",
    "AuthenticationError",
    "BadRequestError",
    "BulkProgress",
    "ClientStats",
    "Clock",
    "DialNexaError",
    "InternalServerError",
    "InvalidLeadIdError",
    "Lead",
    "LeadResult",
    "LeadStatus",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedisRateStore",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "SystemClock",
    "VirtualClock",
    "__version__",
]
