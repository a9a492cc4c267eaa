"""Command line: ``python -m dialnexa_async.testing --port 8080 [flags]``."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence

from ._config import build_parser, config_from_args
from ._server import Simulator, serve


def _announce(sim: Simulator) -> None:
    # One flushed line, so a parent process reading our stdout knows the port is bound.
    print(f"DialNexa simulator listening on {sim.base_url}", flush=True)


async def _run(argv: Sequence[str] | None) -> None:
    ns = build_parser().parse_args(argv)
    config = config_from_args(ns)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except NotImplementedError:  # pragma: no cover - Windows has no loop signal handlers
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set))
    await serve(config, host=ns.host, port=ns.port, stop=stop, on_ready=_announce)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGINT or SIGTERM; return the process exit status.

    Args:
        argv: Flags to parse instead of ``sys.argv[1:]``.
    """
    try:
        asyncio.run(_run(argv))
    except OSError as exc:
        print(f"dialnexa simulator: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
