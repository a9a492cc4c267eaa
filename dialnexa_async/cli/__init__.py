"""The ``dialnexa-async`` command line (``pip install 'dialnexa-async[cli]'``).

::

    dialnexa-async demo                      # a bulk fetch against a local simulator
    dialnexa-async get lead_abc123           # print leads as JSON
    dialnexa-async fetch --input ids.txt --output leads.jsonl --errors errors.jsonl
    dialnexa-async simulate --port 8080      # the simulator, for your own tests

It uses only the public SDK (``dialnexa_async`` and ``dialnexa_async.testing``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from ._args import PROG, parse_args
from ._commands import fetch_command, get_command, simulate_command
from ._demo import demo_command
from ._exit import EXIT_FAILED, EXIT_USAGE, UsageError, exit_status_for_signal

__all__ = ["main", "run"]

_COMMANDS: dict[str, Callable[[argparse.Namespace], Awaitable[int]]] = {
    "demo": demo_command,
    "fetch": fetch_command,
    "get": get_command,
    "simulate": simulate_command,
}


async def run(argv: Sequence[str] | None = None) -> int:
    """Run one command in the current event loop; return the exit status.

    Usage errors print one line on stderr and return 2, never a traceback.

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.
    """
    try:
        ns = parse_args(argv)
    except SystemExit as exc:
        # argparse has printed the usage and the error (or the help) already.
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if getattr(ns, "refused_api_key", None) is not None:
            raise UsageError(
                "there is no --api-key flag (a key on the command line lands in shell history "
                "and process listings): set DIALNEXA_API_KEY or pass --api-key-file PATH"
            )
        return await _COMMANDS[ns.command](ns)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: run one command in a new event loop; return the exit status.

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.
    """
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        # A Ctrl-C outside a fetch (or a second one during its shutdown).
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return exit_status_for_signal(signal.SIGINT)
    except BrokenPipeError:
        # The reader of stdout went away (``| head``): stop quietly, as other tools do, and
        # keep Python from failing again while flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
