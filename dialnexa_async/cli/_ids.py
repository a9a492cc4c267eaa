"""Reading lead ids from a file, stdin or the command line, and refusing ids that cannot be.

An id is one line, whitespace-stripped; blank lines and lines starting with ``#`` are skipped.
An id that still holds whitespace, a control or an invisible format character, or that is a
dot segment (``.``, ``..``) can never name a lead, so the whole input is refused (exit 2)
before any request: such lines are almost always a wrong file or a broken export, and
fetching the rest would hide that.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Iterable, Sequence
from typing import BinaryIO

import attrs

from ._exit import UsageError

__all__ = ["InputIds", "ids_from_args", "malformed_reason", "parse_ids", "read_ids"]

SHOWN_BAD_LINES = 5
"""How many malformed lines an error message quotes before saying how many more there are."""

_DOT_SEGMENTS = frozenset({".", ".."})

# Cc: C0/C1 controls (NUL, ESC, DEL...); Cf: invisible format characters such as U+200B
# (zero-width space) and U+FEFF, which sneak in through copy-paste and spreadsheets.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})


@attrs.frozen
class InputIds:
    """The distinct ids of an input, in first-seen order.

    Args:
        ids: each distinct id once, in the order it first appeared.
        duplicates: how many id lines repeated an earlier one.
    """

    ids: list[str]
    duplicates: int = 0


def malformed_reason(lead_id: str) -> str | None:
    """Say why ``lead_id`` can never name a lead, or return ``None`` when it might.

    Args:
        lead_id: an already stripped, non-empty id.
    """
    if lead_id in _DOT_SEGMENTS:
        return "is a dot segment"
    for char in lead_id:
        if char.isspace():
            return f"contains whitespace (U+{ord(char):04X})"
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            return f"contains a control character (U+{ord(char):04X})"
    return None


def _refuse(source: str, bad: Sequence[tuple[int, str, str]], what: str) -> UsageError:
    """Build the one error that lists the first few malformed ids of ``source``."""
    shown = "; ".join(
        f"{what} {number}: {lead_id!r} {reason}"
        for number, lead_id, reason in bad[:SHOWN_BAD_LINES]
    )
    more = f"; and {len(bad) - SHOWN_BAD_LINES} more" if len(bad) > SHOWN_BAD_LINES else ""
    return UsageError(
        f"{len(bad)} malformed id{'s' if len(bad) != 1 else ''} in {source}, nothing was "
        f"fetched: {shown}{more}"
    )


def parse_ids(lines: Iterable[str], source: str) -> InputIds:
    """Turn lines of text into distinct ids, refusing the input if any id is malformed.

    Args:
        lines: the input's lines, with or without their line endings.
        source: how to name the input in error messages, e.g. ``ids.txt`` or ``stdin``.

    Raises:
        UsageError: an id is malformed, or the input holds no id at all.
    """
    seen: dict[str, None] = {}
    duplicates = 0
    bad: list[tuple[int, str, str]] = []
    for number, line in enumerate(lines, start=1):
        lead_id = line.strip()
        if not lead_id or lead_id.startswith("#"):
            continue
        reason = malformed_reason(lead_id)
        if reason is not None:
            bad.append((number, lead_id, reason))
        elif lead_id in seen:
            duplicates += 1
        else:
            seen[lead_id] = None
    if bad:
        raise _refuse(source, bad, "line")
    if not seen:
        raise UsageError(f"no ids in {source}: expected one id per line")
    return InputIds(list(seen), duplicates)


def _decode(data: bytes, source: str) -> str:
    """Decode UTF-8 input (an optional BOM dropped), naming the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{source} is not UTF-8 text (line {line})") from None


def read_ids(path: str, stdin: BinaryIO | None = None) -> InputIds:
    """Read and check every id of a file, or of stdin when ``path`` is ``-``.

    The whole input is read before the first request so that a bad line is reported before
    anything is sent, and so the progress bar knows the total.

    Args:
        path: the file to read, or ``-`` for standard input.
        stdin: the binary stream ``-`` reads; default ``sys.stdin.buffer``.

    Raises:
        UsageError: the input cannot be read, is not UTF-8, is empty or has a malformed id.
    """
    if path == "-":
        source = "stdin"
        data = (stdin if stdin is not None else sys.stdin.buffer).read()
    else:
        source = path
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise UsageError(f"cannot read input {path}: {exc.strerror or exc}") from None
    # Only "\n" ends a line: str.splitlines() would also split on U+2028 or \x1c, turning one
    # corrupt id into two plausible ones instead of reporting it.
    return parse_ids(_decode(data, source).split("\n"), source)


def ids_from_args(values: Sequence[str]) -> list[str]:
    """Check ids given as command-line arguments; duplicates are kept, as the user typed them.

    Args:
        values: the ids, unstripped.

    Raises:
        UsageError: an id is empty or malformed.
    """
    bad: list[tuple[int, str, str]] = []
    for number, lead_id in enumerate(values, start=1):
        reason = "is empty" if not lead_id else malformed_reason(lead_id)
        if reason is not None:
            bad.append((number, lead_id, reason))
    if bad:
        raise _refuse("the arguments", bad, "argument")
    return list(values)
