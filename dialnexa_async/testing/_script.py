"""Scripted answers: what the simulated API says to one id, request by request.

A script is a queue of ``Reply`` objects per lead id. Each request for that id that passes
the rate gate takes the reply at the head of its queue; a reply answers ``times`` requests
(or every one from then on), and once the queue is empty the id gets the API's own answer
again. So "fail twice, then succeed" is one ``Reply(status=503, times=2)``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from ._leads import ID_PATTERN, ID_RE

_MIN_STATUS = 100
_MAX_STATUS = 599


@dataclasses.dataclass(frozen=True)
class Reply:
    """One scripted answer to a request for a given lead id.

    Args:
        status: The HTTP status; ``None`` keeps the API's own answer for the id (its key
            check and lookup included), to add only ``delay`` or ``headers`` to it.
        body: ``bytes`` or ``str`` are sent as they are, a ``dict`` or ``list`` as JSON;
            ``None`` sends the API's own body for ``status``: the id's lead for a 2xx (its
            preloaded fields included), the API's error envelope for a 4xx or 5xx.
        headers: Headers added to the answer (after the rate-limit headers, so they win).
        content_type: Content-Type of the body, unless ``headers`` sets one.
        delay: Seconds of real time to wait before answering (or resetting).
        reset: Abort the connection with a TCP RST instead of answering.
        times: How many requests this reply answers; ``None``: every later request.
    """

    status: int | None = None
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0
    reset: bool = False
    times: int | None = 1
    _encoded: bytes | None = dataclasses.field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        """Reject a reply that could not be sent as asked, before any request."""
        if self.status is not None and not _MIN_STATUS <= self.status <= _MAX_STATUS:
            raise ValueError(f"status must be an HTTP status, got {self.status!r}")
        if not (self.delay >= 0 and math.isfinite(self.delay)):
            raise ValueError(f"delay must be a finite number of seconds >= 0, got {self.delay!r}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be at least 1 (or None for always), got {self.times!r}")
        if self.reset and (self.status is not None or self.body is not None or self.headers):
            raise ValueError("a reset sends no answer: give it no status, body nor headers")
        if self.body is not None and self.status is None:
            raise ValueError("a body needs the status it is sent with")
        for name, value in self.headers.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
        object.__setattr__(self, "headers", dict(self.headers))
        object.__setattr__(self, "_encoded", _encode(self.body))

    @property
    def encoded_body(self) -> bytes | None:
        """The body as sent, or ``None`` when the API's own body for the status is sent."""
        return self._encoded


def _encode(body: bytes | str | dict[str, Any] | list[Any] | None) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (dict, list)):
        try:
            return json.dumps(body, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise TypeError(f"body is not JSON: {exc}") from None
    raise TypeError(f"body must be bytes, str, a dict or a list, got {type(body).__name__}")


class _Entry:
    """A reply in a queue, with the requests it still answers (``None``: all of them)."""

    __slots__ = ("left", "reply")

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.left = reply.times


class Scripts:
    """The scripted replies of every id; each request for a scripted id consumes one."""

    def __init__(self) -> None:
        # Invariant: no queue is empty; an id whose script is done has no entry.
        self._queues: dict[str, deque[_Entry]] = {}

    def set(self, lead_id: str, replies: Iterable[Reply]) -> None:
        """Make ``replies`` the id's whole script (none clears it).

        Args:
            lead_id: A well-formed lead id.
            replies: The answers, in order.
        """
        if not isinstance(lead_id, str) or not ID_RE.fullmatch(lead_id):
            raise ValueError(f"a scripted id must match {ID_PATTERN}, got {lead_id!r}")
        queue: deque[_Entry] = deque()
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"a script holds Reply objects, got {reply!r}")
            queue.append(_Entry(reply))
        if queue:
            self._queues[lead_id] = queue
        else:
            self._queues.pop(lead_id, None)

    def take(self, lead_id: str) -> Reply | None:
        """The reply for this request to ``lead_id``, or ``None`` when its script is done."""
        queue = self._queues.get(lead_id)
        if queue is None:
            return None
        entry = queue[0]
        if entry.left is not None:
            entry.left -= 1
            if entry.left == 0:
                queue.popleft()
                if not queue:
                    del self._queues[lead_id]
        return entry.reply

    def remaining(self, lead_id: str) -> int | None:
        """Requests the id's script still answers; ``None`` when a reply answers all of them."""
        total = 0
        for entry in self._queues.get(lead_id, ()):
            if entry.left is None:
                return None
            total += entry.left
        return total

    def clear(self) -> None:
        """Forget every script."""
        self._queues.clear()
