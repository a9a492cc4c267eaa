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
    InsecureBaseURLWarning,
    InternalServerError,
    InvalidLeadIdError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    ResponseValidationError,
    RouteNotFoundError,
    UnsupportedEncodingError,
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
    "InsecureBaseURLWarning",
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
    "RouteNotFoundError",
    "SystemClock",
    "UnsupportedEncodingError",
    "VirtualClock",
    "__version__",
]
