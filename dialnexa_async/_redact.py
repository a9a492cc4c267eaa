"""Keeping the API key out of everything the SDK shows: messages, bodies, logs and tracebacks.

A server may echo the request back (a debugging gateway, a misconfigured proxy), and a
traceback printer may show the locals of every frame (``pytest --showlocals``, rich's
``show_locals``, ``traceback.TracebackException(capture_locals=True)``). Two functions make
both safe:

- ``Redactor.scrub``, which the client applies to every error an attempt ends with, before
  the retry loop logs it and before anyone else sees it: the key is masked in whatever the
  server said, and the frames the error has left lose their locals (the transport's hold the
  answer, which may echo the key);
- ``detach``, applied to every foreign exception an SDK error is raised from: aiohttp's frames
  hold the request headers, so a chained exception keeps its type and message, not its frames.
"""

from __future__ import annotations

import json
import traceback

from ._errors import APIStatusError, DialNexaError, ResponseValidationError

__all__ = ["MASK", "Redactor", "detach"]

MASK = "[redacted]"
"""What stands where the key, or its secret part, was."""

MIN_SECRET_CHARS = 6
"""A part of the key shorter than this is not searched for: it would match ordinary words."""


class Redactor:
    """Masks one API key wherever the SDK passes on text it did not write.

    A key of the form ``<id>:<secret>`` is masked whole, and so is its secret part alone (an
    echo may have split the key at the colon); an ``sk_...`` key is masked whole.

    Args:
        key: the API key.
    """

    __slots__ = ("_needles", "_secrets", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        """The key itself, for the headers; held here, behind a repr that hides it."""
        parts = [key]
        _, colon, secret = key.partition(":")
        if colon:
            parts.append(secret)
        # Longest first: the secret part is inside the whole key.
        self._secrets = tuple(part for part in parts if len(part) >= MIN_SECRET_CHARS)
        escaped = (json.dumps(part, ensure_ascii=False)[1:-1] for part in self._secrets)
        # What to look for in JSON text: the parts as they are, then as JSON escapes them.
        self._needles = self._secrets + tuple(e for e in escaped if e not in self._secrets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<hidden>)"

    def text(self, text: str) -> str:
        """``text`` with the key masked; the same object when it held none."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def value(self, value: object) -> object:
        """A decoded body (JSON value or text) with the key masked in every string of it."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int, float)) or not self._needles:
            return value
        try:
            encoded = json.dumps(value, ensure_ascii=False)
            masked = encoded
            for needle in self._needles:
                masked = masked.replace(needle, MASK)
            return value if masked == encoded else json.loads(masked)
        except (TypeError, ValueError, RecursionError):
            # Not JSON after all, or too deep to walk here: keep nothing that went unchecked.
            return f"{MASK} (a body the client could not check for the API key)"

    def scrub(self, error: DialNexaError) -> None:
        """Mask the key in ``error`` and clear the locals of the frames it has left; in place.

        Call it in the ``except`` that caught ``error``, before anything else sees it. Every
        frame below the catching one in its traceback has then been left by ``error`` and has
        finished, so clearing one never touches a running or suspended frame.
        """
        message = self.text(error.message)
        if message is not error.message:
            error.message = message
            error.args = (message,)
        if isinstance(error, (APIStatusError, ResponseValidationError)):
            error.body = self.value(error.body)
            if error.request_id is not None:
                error.request_id = self.text(error.request_id)
        if error.__cause__ is not None:
            detach(error.__cause__)
        if error.__traceback__ is not None and error.__traceback__.tb_next is not None:
            traceback.clear_frames(error.__traceback__.tb_next)


def detach(exc: BaseException) -> BaseException:
    """Strip ``exc``, and every exception it was raised from, of its frames; return ``exc``.

    For a foreign exception (aiohttp's, cattrs') an SDK error is about to be raised from. What
    stays of each is its type and message, still linked by ``__cause__`` (and the members of an
    exception group). Each ``__context__`` is cut rather than followed: at the bottom of the
    chain it may be an exception the caller was handling, which is not the SDK's to change.
    """
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        current.__context__ = None
        if current.__cause__ is not None:
            todo.append(current.__cause__)
        members = getattr(current, "exceptions", ())
        if isinstance(members, tuple):
            todo += [member for member in members if isinstance(member, BaseException)]
    return exc
