"""What an earlier run already wrote: the ids in the output and errors files, and repair.

A run writes whole lines only, so an incomplete last line means it was cut off by something
stronger than the CLI (SIGKILL, a full disk, a crash mid-write). That one tail is removed and
its id fetched again. Anything else that does not read back (a complete line that is not a
record, a different CSV header) is not ours to repair: the run refuses to append (exit 2)
instead of mixing formats or deleting someone's data.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import attrs

from ._exit import UsageError
from ._output import CSV_COLUMNS, RecordFile, lasting_failure

__all__ = ["Existing", "drop_ids", "scan_csv", "scan_jsonl"]


@attrs.frozen
class Existing:
    """The records already in a file.

    Args:
        ids: the id of each complete record, in file order.
        valid_end: the byte offset where the complete records end; anything after it is the
            incomplete tail of an interrupted write.
        size: the file's length when scanned.
        has_header: whether a CSV file already starts with its header.
        lasting: ids of an errors file whose failure a retry would get again (a 404).
    """

    ids: list[str]
    valid_end: int
    size: int
    has_header: bool = False
    lasting: frozenset[str] = frozenset()

    @property
    def torn_bytes(self) -> int:
        """How many bytes of incomplete tail follow the last complete record."""
        return self.size - self.valid_end


def _corrupt(path: str, what: str, line: int, problem: str) -> UsageError:
    return UsageError(
        f"{what} {path} line {line} {problem}; refusing to append to it "
        "(move it aside, or pass another path)"
    )


def scan_jsonl(file: BinaryIO, path: str, what: str) -> Existing:
    """Read the id of every line of a JSON Lines file written by an earlier run.

    Args:
        file: the file opened for binary reading, at its start.
        path: its path, for messages.
        what: how to name it in messages, e.g. ``output``.

    Raises:
        UsageError: a complete line is not a JSON object with a string ``id``.
    """
    ids: list[str] = []
    lasting: set[str] = set()
    offset = 0
    for number, raw in enumerate(file, start=1):
        if not raw.endswith(b"\n"):
            # Only the last line can lack its newline: the torn tail.
            return Existing(ids, offset, offset + len(raw), lasting=frozenset(lasting))
        try:
            record = json.loads(raw)
        except ValueError:
            raise _corrupt(path, what, number, "is not JSON") from None
        lead_id = record.get("id") if isinstance(record, dict) else None
        if not isinstance(lead_id, str):
            raise _corrupt(path, what, number, 'is not a JSON object with a string "id"')
        ids.append(lead_id)
        # Only an errors record has "error"; a lead's "status" is a word, never a number.
        if "error" in record and lasting_failure(record.get("status")):
            lasting.add(lead_id)
        offset += len(raw)
    return Existing(ids, offset, offset, lasting=frozenset(lasting))


class _Lines:
    """Decoded lines of a binary file, remembering the byte offset after the last one given."""

    def __init__(self, file: BinaryIO, path: str, what: str) -> None:
        self._file = file
        self._path = path
        self._what = what
        self.end = 0
        self.last_complete = True

    def __iter__(self) -> Iterator[str]:
        for number, raw in enumerate(self._file, start=1):
            self.end += len(raw)
            self.last_complete = raw.endswith(b"\n")
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _corrupt(self._path, self._what, number, "is not UTF-8") from None


def scan_csv(
    file: BinaryIO, path: str, what: str, columns: Sequence[str] = CSV_COLUMNS
) -> Existing:
    """Read the id of every row of a CSV file written by an earlier run.

    A record ends with a newline outside quotes; one that reaches the end of the file
    without it is the torn tail, even when it spans several lines.

    Args:
        file: the file opened for binary reading, at its start.
        path: its path, for messages.
        what: how to name it in messages.
        columns: the header the file must start with.

    Raises:
        UsageError: the header differs from ``columns`` or a complete row has the wrong
            number of cells.
    """
    lines = _Lines(file, path, what)
    # strict: a quote left open at the end of the file raises instead of passing as a row.
    reader = csv.reader(lines, strict=True)
    ids: list[str] = []
    valid_end = 0
    has_header = False
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return Existing(ids, valid_end, lines.end, has_header)
        except csv.Error:
            # An open quote ran into the end of the file: the last record was cut off.
            return Existing(ids, valid_end, lines.end, has_header)
        if not lines.last_complete:
            return Existing(ids, valid_end, lines.end, has_header)
        if not has_header:
            if tuple(row) != tuple(columns):
                raise UsageError(
                    f"{what} {path} is not a CSV export with the columns "
                    f"{','.join(columns)}; refusing to append to it (pass another path)"
                )
            has_header = True
        elif len(row) != len(columns):
            raise _corrupt(path, what, reader.line_num, f"has {len(row)} cells, not {len(columns)}")
        else:
            ids.append(row[0])
        valid_end = lines.end


def drop_ids(records: RecordFile, keep_end: int, drop: frozenset[str]) -> RecordFile:
    """Rewrite a JSON Lines file without the records of ``drop``, atomically.

    The kept lines go to a new file beside the old one, which then takes its name with
    ``os.replace``: a run stopped at any moment leaves either the old file or the new one,
    never half of each. A dropped id is then in no file, so the next run fetches it.

    Args:
        records: the open, locked file; it is closed and replaced.
        keep_end: where its complete records end; the torn tail after it is dropped too.
        drop: ids whose records are removed.

    Returns:
        The new file, open and locked.
    """
    path = records.path
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".dialnexa-", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        fresh = RecordFile(temp, records.what)
        try:
            with open(path, "rb") as old:
                remaining = keep_end
                for raw in old:
                    if remaining <= 0:
                        break
                    remaining -= len(raw)
                    # Every line up to keep_end was checked by scan_jsonl.
                    if json.loads(raw)["id"] not in drop:
                        fresh.write(raw.decode("utf-8"))
            with contextlib.suppress(OSError):
                # Keep the permissions the user gave the original file.
                os.chmod(temp, os.stat(path).st_mode & 0o7777)
            os.replace(temp, path)
        except BaseException:
            fresh.close()
            raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    records.close()
    fresh.path = path
    return fresh
