"""Counting outcomes as results arrive, and the summary printed when a fetch ends."""

from __future__ import annotations

import signal
from collections import Counter

import attrs

import dialnexa_async as dnx

from ._output import lasting_failure

__all__ = ["Skipped", "Tally", "render_summary"]


@attrs.define
class Tally:
    """Outcomes of this run, by kind.

    Args:
        ok: leads fetched.
        failed: failed ids by error type name, e.g. ``{"NotFoundError": 3}``.
        lasting: of the failed ids, those a retry would fail again (see ``lasting_failure``).
    """

    ok: int = 0
    failed: Counter[str] = attrs.field(factory=Counter)
    lasting: int = 0

    def add(self, result: dnx.LeadResult) -> None:
        """Count one result."""
        error = result.error
        if error is None:
            self.ok += 1
            return
        self.failed[type(error).__name__] += 1
        if isinstance(error, dnx.APIStatusError) and lasting_failure(error.status_code):
            self.lasting += 1

    @property
    def done(self) -> int:
        """Results counted so far."""
        return self.ok + sum(self.failed.values())


@attrs.frozen
class Skipped:
    """Ids of the input that earlier runs already settled, so this run did not ask for them.

    Args:
        ok: ids already in the output.
        failed: ids already in the errors file (retried only with ``--retry-errors``).
        lasting: of those, the ids a retry would fail again (see ``lasting_failure``).
    """

    ok: int = 0
    failed: int = 0
    lasting: int = 0


def render_summary(
    tally: Tally,
    stats: dnx.ClientStats,
    *,
    elapsed: float,
    asked: int,
    skipped: Skipped = Skipped(),
    stopped_by: int | None = None,
    refused: dnx.DialNexaError | None = None,
) -> list[str]:
    """The lines of the end-of-run summary.

    Args:
        tally: what this run got.
        stats: the client's traffic counters.
        elapsed: seconds the fetch took.
        asked: ids this run set out to fetch.
        skipped: ids left alone because earlier runs settled them.
        stopped_by: the signal that stopped the run early, if one did.
        refused: the 401/403 (or route 404) that stopped the run, if one did.
    """
    done = tally.done
    rate = done / elapsed if elapsed > 0 else 0.0
    lines = [f"fetched {done} of {asked} ids in {elapsed:.1f}s ({rate:.0f} ids/s)"]
    outcomes = [("ok", tally.ok), *sorted(tally.failed.items(), key=lambda kv: (-kv[1], kv[0]))]
    width = max(len(name) for name, _ in outcomes)
    lines += [f"  {name:<{width}}  {count}" for name, count in outcomes]
    if skipped.ok or skipped.failed:
        lines.append(
            f"skipped {skipped.ok + skipped.failed} ids settled by an earlier run "
            f"({skipped.ok} in the output, {skipped.failed} in the errors file)"
        )
    lines.append(
        f"requests {stats.requests}: {stats.retries} retries, {stats.rate_limited} rate-limited "
        f"(429), {stats.server_errors} server errors, {stats.connection_errors} connection errors"
    )
    lines.append(f"cooldown {stats.cooldown_seconds:.1f}s waiting out the server's rate limit")
    if isinstance(refused, dnx.RouteNotFoundError):
        lines.append(
            f"stopped: the API has no such route ({type(refused).__name__}: "
            f"{refused.message}): check --base-url / DIALNEXA_BASE_URL, which must include "
            f"the API version (/v1); {asked - done} ids were not fetched and not recorded"
        )
    elif refused is not None:
        lines.append(
            f"stopped: the server refused the API key ({type(refused).__name__}: "
            f"{refused.message}); {asked - done} ids were not fetched and not recorded"
        )
    elif stopped_by is not None:
        lines.append(
            f"stopped by {signal.Signals(stopped_by).name} after {done} of {asked} ids; "
            "run the same command again to fetch the rest"
        )
    return lines
