"""Driving one ``iter_leads`` call to the end, or to a clean stop on SIGINT or SIGTERM.

A signal cancels the task that consumes the results. Results are handled by plain
(synchronous) code between two awaits, so the cancellation can only land while the loop
waits for the next result: the record being written is always finished first. Closing the
iterator then cancels the requests still in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

import dialnexa_async as dnx

from ._progress import Reporter

__all__ = ["Outcome", "run_bulk", "run_until_signal", "stop_on_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# The key is refused, or the base URL names no route, for every id alike: recording it per id
# would make a rerun (with the right key or URL) skip them all.
_REFUSALS = (dnx.AuthenticationError, dnx.PermissionDeniedError, dnx.RouteNotFoundError)


@attrs.frozen
class Outcome:
    """How a bulk run ended.

    Args:
        elapsed: seconds from the first request to the end.
        stopped_by: the signal that stopped it early, if one did.
        refused: the 401/403, or the 404 of a route the API does not have, that stopped it.
    """

    elapsed: float
    stopped_by: int | None = None
    refused: dnx.DialNexaError | None = None


@contextlib.contextmanager
def stop_on_signals(task: asyncio.Task[Any], caught: list[int]) -> Iterator[None]:
    """Cancel ``task`` on the first SIGINT or SIGTERM, noting which one in ``caught``.

    After the first signal the usual handlers are back, so a second Ctrl-C stops a shutdown
    that hangs.

    Args:
        task: the task to cancel.
        caught: receives the signal number.
    """
    loop = asyncio.get_running_loop()
    installed: list[int] = []

    def on_signal(signum: int) -> None:
        caught.append(signum)
        for number in installed:
            loop.remove_signal_handler(number)
        installed.clear()
        task.cancel()

    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
            # Windows, or a loop outside the main thread: Ctrl-C still raises
            # KeyboardInterrupt, which main() turns into exit status 130.
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)


async def run_until_signal(task: asyncio.Task[Any]) -> int | None:
    """Await ``task``, cancelling it on SIGINT or SIGTERM; return that signal, or ``None``.

    A cancellation that no signal caused, and any other exception of the task, propagates.
    """
    caught: list[int] = []
    with stop_on_signals(task, caught):
        try:
            await task
        except asyncio.CancelledError:
            if not caught:
                raise
    return caught[0] if caught else None


async def run_bulk(
    client: dnx.AsyncDialNexa,
    ids: Sequence[str],
    *,
    on_result: Callable[[dnx.LeadResult], None],
    reporter: Reporter,
    concurrency: int | None = None,
) -> Outcome:
    """Fetch ``ids`` and hand each result to ``on_result`` the moment it arrives.

    Args:
        client: the open client.
        ids: distinct ids to fetch.
        on_result: called once per result, synchronously; never interrupted half-way.
        reporter: receives progress snapshots.
        concurrency: requests in flight at most; ``None`` for the SDK's default.
    """
    refused: list[dnx.DialNexaError] = []

    async def consume() -> None:
        results = client.iter_leads(ids, concurrency=concurrency, progress=reporter)
        try:
            async for result in results:
                if isinstance(result.error, _REFUSALS):
                    refused.append(result.error)
                    return
                on_result(result)
        finally:
            # Stops the requests still in flight now, not whenever the generator is collected.
            aclose = getattr(results, "aclose", None)
            if aclose is not None:
                await aclose()

    started = time.monotonic()
    stopped_by = await run_until_signal(asyncio.ensure_future(consume()))
    return Outcome(
        elapsed=time.monotonic() - started,
        stopped_by=stopped_by,
        refused=refused[0] if refused else None,
    )
