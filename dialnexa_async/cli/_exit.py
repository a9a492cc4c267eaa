"""Exit statuses of the command line, and the error that ends a run as a usage error."""

from __future__ import annotations

import signal

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "exit_status_for_signal",
]

EXIT_OK = 0
"""Every lead asked for was fetched (or the command had nothing to fetch)."""

EXIT_FAILED = 1
"""At least one lead could not be fetched, or the server refused the API key."""

EXIT_USAGE = 2
"""Bad flags, a missing key, unreadable input or an unwritable output; nothing was sent."""


def exit_status_for_signal(signum: int) -> int:
    """The shell's convention for a process stopped by a signal: 128 plus its number.

    Args:
        signum: the signal that stopped the run, e.g. ``signal.SIGINT`` (130).
    """
    return 128 + int(signal.Signals(signum))


class UsageError(Exception):
    """A problem the user can fix before any request is sent; the CLI exits with status 2.

    The message is printed as is on one line, so it must be short and never hold the API key.
    """
