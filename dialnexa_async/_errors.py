"""The one exception hierarchy of the SDK.

::

    DialNexaError
    ├── InvalidLeadIdError            a lead id that cannot be sent (also a ValueError)
    ├── APIConnectionError            the request never got an HTTP answer
    │   └── APITimeoutError
    ├── APIStatusError                an HTTP error answer: .status_code .message .body .request_id
    │   ├── BadRequestError           400
    │   ├── AuthenticationError       401
    │   ├── PermissionDeniedError     403
    │   ├── NotFoundError             404
    │   │   └── RouteNotFoundError    404 for a path the API does not route (a wrong base_url)
    │   ├── RateLimitError            429, after retries: .retry_after, .refused_by_client
    │   └── InternalServerError       5xx
    └── ResponseValidationError       a 2xx whose body is not a lead (bad JSON, wrong shape)
        ├── ResponseTooLargeError     the body passed the size cap
        └── UnsupportedEncodingError  a Content-Encoding this installation cannot decode

    InsecureBaseURLWarning            (a UserWarning) the key would travel in clear over http://

Errors carry what the server said and never what the client sent: no request headers. What the
server said passes through the client's ``Redactor`` (``_redact``), so a server echoing the key
cannot put it into ``str()``, ``repr()``, ``.body`` or a log line either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "DialNexaError",
    "InsecureBaseURLWarning",
    "InternalServerError",
    "InvalidLeadIdError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RouteNotFoundError",
    "UnsupportedEncodingError",
    "make_status_error",
]


class DialNexaError(Exception):
    """Base class of every error the SDK raises.

    Args:
        message: a human-readable description; never contains the API key.
        attempts: how many HTTP attempts were made before giving up (0 when none was sent).
    """

    def __init__(self, message: str, *, attempts: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, attempts={self.attempts})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive the default pickling of exceptions.
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[DialNexaError], state: dict[str, Any]) -> DialNexaError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class InvalidLeadIdError(DialNexaError, ValueError):
    """A lead id that cannot name a lead: empty, not a ``str``, or a ``.``/``..`` dot segment.

    Raised by ``get_lead`` before any request; in bulk calls it is that id's result.
    """


class APIConnectionError(DialNexaError):
    """The request never got an HTTP answer: refused, reset, disconnected, truncated, TLS.

    Args:
        retryable: ``False`` for failures another attempt cannot mend, such as a TLS
            certificate the client does not trust.
    """

    def __init__(self, message: str, *, attempts: int = 0, retryable: bool = True) -> None:
        super().__init__(message, attempts=attempts)
        self.retryable = retryable


class APITimeoutError(APIConnectionError, asyncio.TimeoutError):
    """An attempt passed its deadline before the whole answer arrived."""


class APIStatusError(DialNexaError):
    """The server answered with an HTTP error status.

    Args:
        message: the ``message`` of the API's error envelope, or the status line.
        status_code: the HTTP status.
        body: the decoded JSON body when there was one, else the text (possibly truncated).
        request_id: the ``x-request-id`` header of the answer, when present.
        attempts: how many attempts were made.
        retry_after: seconds the server asked to wait (``Retry-After``, or
            ``x-ratelimit-reset`` on a 429), when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object = None,
        request_id: str | None = None,
        attempts: int = 0,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.status_code = status_code
        self.body = body
        self.request_id = request_id
        self.retry_after = retry_after
        self._retry_after_is_reset = False
        """Whether ``retry_after`` is a 429's quota reset rather than a ``Retry-After``."""

    def __str__(self) -> str:
        suffix = f" (request_id={self.request_id})" if self.request_id else ""
        return f"{self.status_code}: {self.message}{suffix}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, message={self.message!r}, "
            f"request_id={self.request_id!r}, attempts={self.attempts})"
        )


class BadRequestError(APIStatusError):
    """400: the request was malformed."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, malformed, revoked or expired."""


class PermissionDeniedError(APIStatusError):
    """403: the key cannot read campaign data in this workspace."""


class NotFoundError(APIStatusError):
    """404: the lead does not exist, was removed, or belongs to another organization.

    Its subclass ``RouteNotFoundError`` is the 404 of a path the API does not have at all.
    """


class RouteNotFoundError(NotFoundError):
    """404 for a path the API does not route: the base URL is wrong, not the lead missing.

    Told apart by what the answer says: the server's unknown-route message (NestJS and
    Express: ``Cannot GET /campaigns-leads/x``), where a missing lead says ``Lead not found``.
    Every other id would fail the same way, so bulk calls stop at the first one, as on a 401.
    """

    def __str__(self) -> str:
        return (
            f"{super().__str__()} (the API has no such route: check base_url, which must "
            "include the API version, e.g. https://api.dialnexa.com/v1)"
        )


class RateLimitError(APIStatusError):
    """429 after retries, or a wait longer than ``max_retry_wait``.

    Two cases, told apart by ``refused_by_client``:

    - ``False``: the server answered 429 (after retries, or asking for a wait longer than
      ``max_retry_wait``). ``retry_after`` holds the seconds it asked to wait, or ``None``
      when it did not say.
    - ``True``: the client withheld the request itself, sending nothing, because it is paused
      by the server's rate limit (an earlier 429 or an exhausted window) for longer than
      ``max_retry_wait``. ``retry_after`` is the pause left; ``attempts`` counts only the
      requests that were sent (0 when the first was withheld). ``status_code`` stays 429, the
      status behind the pause, so code written for 429s handles both alike.

    Args:
        refused_by_client: whether the client withheld the request instead of sending it.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object = None,
        request_id: str | None = None,
        attempts: int = 0,
        retry_after: float | None = None,
        refused_by_client: bool = False,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            body=body,
            request_id=request_id,
            attempts=attempts,
            retry_after=retry_after,
        )
        self.refused_by_client = refused_by_client

    def __str__(self) -> str:
        # A withheld request got no answer: no status line to show.
        return self.message if self.refused_by_client else super().__str__()

    def __repr__(self) -> str:
        base = super().__repr__()
        return base[:-1] + ", refused_by_client=True)" if self.refused_by_client else base


class InternalServerError(APIStatusError):
    """5xx: a transient server or upstream failure that outlasted the retries."""


class ResponseValidationError(DialNexaError):
    """A 2xx answer whose body is not a lead: bad JSON, wrong shape, or too large.

    Args:
        body: the decoded body, or the raw text when it was not JSON (possibly truncated).
        status_code: the HTTP status of the answer.
        request_id: the ``x-request-id`` header of the answer, when present.
    """

    def __init__(
        self,
        message: str,
        *,
        body: object = None,
        status_code: int = 200,
        request_id: str | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.body = body
        self.status_code = status_code
        self.request_id = request_id


class ResponseTooLargeError(ResponseValidationError):
    """The body passed the configured size cap; the rest was not read."""


class UnsupportedEncodingError(ResponseValidationError):
    """The answer's ``Content-Encoding`` is one this installation cannot decode; not retried.

    The client never asks for such an encoding (its ``Accept-Encoding`` names only what aiohttp
    can decode here), so a server sending one anyway will send it again: ``br`` without the
    ``Brotli`` package, ``zstd`` without ``backports.zstd``. aiohttp refuses such an answer with
    its head, before its status is known, so ``status_code`` is 0.
    """


class InsecureBaseURLWarning(UserWarning):
    """``base_url`` is plain ``http://`` to a host that is not loopback: the key travels in clear.

    Issued once, when the client is built. Silence it deliberately with
    ``warnings.filterwarnings("ignore", category=dnx.InsecureBaseURLWarning)``.
    """


_STATUS_ERRORS: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def error_class_for_status(status: int) -> type[APIStatusError]:
    """The exception class for an HTTP error status."""
    if status >= 500:
        return InternalServerError
    return _STATUS_ERRORS.get(status, APIStatusError)


def make_status_error(
    status: int,
    message: str,
    *,
    body: object = None,
    request_id: str | None = None,
    attempts: int = 0,
    retry_after: float | None = None,
) -> APIStatusError:
    """Build the typed error for an HTTP error answer."""
    return error_class_for_status(status)(
        message,
        status_code=status,
        body=body,
        request_id=request_id,
        attempts=attempts,
        retry_after=retry_after,
    )
