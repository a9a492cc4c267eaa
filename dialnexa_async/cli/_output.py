"""Where results go: lead records as JSON Lines or CSV, error records as JSON Lines.

Every record is one line, handed to the operating system in one ``write()`` as soon as it is
formatted, so a run that is stopped (even by SIGKILL) leaves only whole lines behind and a
later run can trust every complete line it reads back.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, TextIO

import dialnexa_async as dnx

from ._exit import UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; runs there are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CSV_COLUMNS",
    "CsvFormat",
    "JsonlFormat",
    "LeadFormat",
    "RecordFile",
    "RecordSink",
    "ResultWriter",
    "StreamSink",
    "error_record",
    "format_for",
    "lasting_failure",
    "short_error",
    "stdout_sink",
]

FormatName = Literal["jsonl", "csv"]

CSV_COLUMNS = (
    "id",
    "campaign_id",
    "phone_number",
    "status",
    "created_at",
    "name",
    "call_log_id",
    "metadata",
    "notes",
)
"""The CSV header: ``Lead.to_dict()``'s fields, mappings JSON-encoded into one cell each."""


def _compact(value: object, *, ascii_only: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":"))


class LeadFormat(Protocol):
    """How a lead becomes one line of an output file."""

    name: FormatName

    def header(self) -> str | None:
        """The first line of a new file, or ``None`` when the format has none."""

    def line(self, lead: Mapping[str, Any]) -> str:
        """One lead as one line, ending with a newline.

        Args:
            lead: ``Lead.to_dict()``.
        """


class JsonlFormat:
    """One compact JSON object per line, in the API's field names."""

    name: FormatName = "jsonl"

    def __init__(self, *, ascii_only: bool = False) -> None:
        self._ascii_only = ascii_only

    def header(self) -> str | None:
        """JSON Lines has no header."""
        return None

    def line(self, lead: Mapping[str, Any]) -> str:
        """One lead as a JSON object on one line.

        Args:
            lead: ``Lead.to_dict()``.
        """
        return _compact(lead, ascii_only=self._ascii_only) + "\n"


class CsvFormat:
    """One row per lead under ``CSV_COLUMNS``; ``metadata`` and ``notes`` as JSON text."""

    name: FormatName = "csv"

    def header(self) -> str | None:
        """The column names."""
        return self._row(CSV_COLUMNS)

    def line(self, lead: Mapping[str, Any]) -> str:
        """One lead as one CSV row; ``None`` becomes an empty cell.

        Args:
            lead: ``Lead.to_dict()``; fields outside ``CSV_COLUMNS`` are left out so the
                header of an existing file stays right when a new SDK adds one.
        """
        cells: list[str] = []
        for column in CSV_COLUMNS:
            value = lead.get(column)
            if value is None:
                cells.append("")
            elif isinstance(value, (Mapping, list)):
                cells.append(_compact(value))
            else:
                cells.append(str(value))
        return self._row(cells)

    @staticmethod
    def _row(cells: Any) -> str:
        buffer = io.StringIO()
        # "\n" rather than the RFC's "\r\n": every reader accepts it, and a record then ends
        # where a line ends, which is what resuming checks.
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        return buffer.getvalue()


def format_for(name: FormatName | None, output: str | None) -> LeadFormat:
    """Pick the lead format: the one named, else CSV for a ``.csv`` output, else JSON Lines.

    Args:
        name: ``--format``, when given.
        output: ``--output``, when given.
    """
    if name is None:
        name = "csv" if output is not None and output.lower().endswith(".csv") else "jsonl"
    return CsvFormat() if name == "csv" else JsonlFormat()


def short_error(lead_id: str, error: dnx.DialNexaError) -> str:
    """One line naming the id, the error type and what the server said.

    Args:
        lead_id: the id that failed.
        error: why it failed; its text never holds the API key.
    """
    kind = type(error).__name__
    if isinstance(error, dnx.APIStatusError):
        return f"{lead_id}: {kind} {error.status_code}: {error.message}"
    return f"{lead_id}: {kind}: {error.message}"


def error_record(lead_id: str, error: dnx.DialNexaError) -> dict[str, Any]:
    """The errors-file record of one failed id.

    Args:
        lead_id: the id that failed.
        error: why it failed.
    """
    status = request_id = None
    if isinstance(error, dnx.APIStatusError):
        status, request_id = error.status_code, error.request_id
    return {
        "id": lead_id,
        "error": type(error).__name__,
        "status": status,
        "message": error.message,
        "request_id": request_id,
    }


def lasting_failure(status: object) -> bool:
    """Whether a failure is the server's lasting answer about the id, which a retry gets again.

    That is a 4xx answer other than 408 and 429 (a 404 above all). A failure without a status
    (a connection fault, a timeout, a body that was not a lead) or with a 408, 429 or 5xx may
    pass on another try.

    Args:
        status: the ``status`` of an errors-file record (``None`` when no HTTP answer).
    """
    return isinstance(status, int) and 400 <= status < 500 and status not in (408, 429)


class RecordSink(Protocol):
    """Somewhere whole lines are appended."""

    def write(self, text: str) -> None:
        """Append ``text`` (whole lines) and hand it to the operating system now."""

    def close(self) -> None:
        """Flush and release the destination."""


class StreamSink:
    """Lines to an already open text stream such as stdout, flushed after each write.

    Args:
        stream: the stream; it is flushed but never closed.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        """Write and flush ``text``."""
        self._stream.write(text)
        self._stream.flush()

    def close(self) -> None:
        """Flush the stream, leaving it open."""
        self._stream.flush()


class RecordFile:
    """An append-only file of one-line records, locked against a second concurrent run.

    Args:
        path: the file; created when missing.
        what: how to name it in messages, e.g. ``output`` or ``errors file``.

    Raises:
        UsageError: the file cannot be opened for appending, or another run holds it.
    """

    def __init__(self, path: str, what: str) -> None:
        self.path = path
        self.what = what
        try:
            # Unbuffered: each write() below is one system call holding whole lines.
            self._file = open(path, "a+b", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise UsageError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
        try:
            _lock(self._file.fileno(), path, what)
        except BaseException:
            self._file.close()
            raise

    def size(self) -> int:
        """The file's current length in bytes."""
        return os.fstat(self._file.fileno()).st_size

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes, dropping an incomplete last line.

        Args:
            size: the new length.
        """
        self._file.truncate(size)

    def write(self, text: str) -> None:
        """Append ``text`` now, retrying the rare partial write until all of it is out.

        Raises:
            UsageError: the system refused the write.
        """
        data = memoryview(text.encode("utf-8"))
        try:
            while data:
                written = self._file.write(data)
                data = data[written or 0 :]
        except OSError as exc:
            # A full disk or a vanished mount: stop the run; the lines already written stay,
            # and a half-written one is cut off by the next run.
            raise UsageError(f"cannot write {self.what} {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        """Push the file to disk and close it; harmless twice."""
        if self._file.closed:
            return
        # A pipe or a terminal given as a path cannot be synced; that is fine.
        with contextlib.suppress(OSError):
            os.fsync(self._file.fileno())
        self._file.close()


def _lock(fd: int, path: str, what: str) -> None:
    """Take an exclusive lock so two runs never append to one file and duplicate ids."""
    if fcntl is None:  # pragma: no cover
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UsageError(f"{what} {path} is in use by another dialnexa-async run") from None
    except OSError:  # pragma: no cover - a filesystem without locks: run unlocked
        pass


def stdout_sink() -> StreamSink:
    """A sink writing to the current ``sys.stdout``."""
    return StreamSink(sys.stdout)


MAX_PRINTED_ERRORS = 20
"""Failures printed one by one when there is no errors file; past it, only counted."""


class ResultWriter:
    """Writes each result the moment it arrives: a lead to the output, a failure to errors.

    An id is written at most once, whatever the caller hands in, so a finished run holds
    exactly one line per distinct id across the two files.

    Args:
        leads: where lead lines go.
        lead_format: how a lead becomes a line.
        errors: where error records go; ``None`` to print failures instead.
        say: prints one line (the progress reporter's ``message``).
        on_written: called with each result actually written, e.g. to count it.
    """

    def __init__(
        self,
        leads: RecordSink,
        lead_format: LeadFormat,
        errors: RecordSink | None,
        say: Callable[[str], None],
        on_written: Callable[[dnx.LeadResult], None],
    ) -> None:
        self._leads = leads
        self._format = lead_format
        self._errors = errors
        self._say = say
        self._on_written = on_written
        self._written: set[str] = set()
        self._printed = 0

    def __call__(self, result: dnx.LeadResult) -> None:
        """Write one result, unless its id was already written."""
        lead_id = result.lead_id
        if lead_id in self._written:
            return
        self._written.add(lead_id)
        if result.lead is not None:
            self._leads.write(self._format.line(result.lead.to_dict()))
        elif result.error is not None:
            if self._errors is not None:
                self._errors.write(_compact(error_record(lead_id, result.error)) + "\n")
            else:
                self._print(short_error(lead_id, result.error))
        self._on_written(result)

    def _print(self, line: str) -> None:
        self._printed += 1
        if self._printed <= MAX_PRINTED_ERRORS:
            self._say(line)
        elif self._printed == MAX_PRINTED_ERRORS + 1:
            self._say("more failures are only counted; pass --errors FILE to record them all")
