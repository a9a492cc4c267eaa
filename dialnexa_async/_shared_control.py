"""One client's side of a shared rate store: what it reports, what it adopts, and the fallback.

The client's own mechanisms keep deciding everything they decide alone (probes, trust, the
adaptive rate), except that no window is inferred from bare 429s while the client is joined
(each client would burst its own into the server's one). This bridge adds what a store shares:

- **Reports.** A pause the client began, a pause one of its probes ended, a budget a probe
  beat, and the window budget each answer stated (on the shared sequence number of its
  request) go to the store; urgent ones (those, and a budget stated spent) at once, the rest
  with the next sync.
- **Adoption.** A pause or spent budget another client met is held here as if this client had
  met it, with the same probes; a budget another client found untrustworthy is dropped here.
- **Turns.** While paced, or while answers state a budget, each request syncs once before it
  goes (a shared sequence number, and a slot on the shared schedule). Paced, one request of
  the client at a time books a slot, so a rate that changes applies within a slot or two;
  unpaced, the requests that ask while a sync is out go together in the next one, so a client
  has one sync out at a time. While nothing is throttled a client syncs at most every
  ``REFRESH`` seconds.
- **Fallback.** A store that fails or answers late is left for ``REJOIN_AFTER`` seconds: the
  client paces alone at its share of the last shared rate (the rate over the clients then
  live; its own learned rate is its share already), logs one warning per outage, and rejoins
  at the first sync that succeeds.

Invariants:
- At most one sync per request on the way out, none for a request of an unthrottled client
  between refreshes, and at most one batch sync of the client out at a time.
- Nothing the store holds is adopted twice: a pause by its number, a budget by its end.
- The API key is never reported, logged or used in a key: only its id (``key_id_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import secrets
from typing import TYPE_CHECKING

from ._clock import Clock
from ._pause import MIN_PROBE_GAP, PROBES
from ._rate_store import Observation, RateStore, RateStoreUnavailable, Report, View
from ._sansio.headers import RateLimitInfo

if TYPE_CHECKING:
    from ._rate_control import ClientRateControl, Ticket

__all__ = ["REFRESH", "REJOIN_AFTER", "SharedRateControl", "key_id_of"]

logger = logging.getLogger("dialnexa_async")

REFRESH = 0.05
"""Seconds an unthrottled client goes between syncs: how late it learns of another's pause."""

REJOIN_AFTER = 1.0
"""Seconds after a failed sync before the store is tried again."""

ADOPT_SLACK = 0.005
"""A shared hold that ends less than this after the client's own is the same hold, seen
through a round trip's jitter: adopting it again would restart its probes."""

RECHECK = 0.01
"""Seconds a request the store held waits at least before asking again."""

MAX_PENDING = 256
"""Budget observations kept for the next sync at most (the newest)."""


def key_id_of(api_key: str) -> str:
    """What names a key's shared state: its id (before ``:``), never its secret.

    A key without an id part is named by a short digest of it instead.
    """
    head, colon, _ = api_key.partition(":")
    if colon and head:
        return head
    return "sha256-" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


class SharedRateControl:
    """The link between one ``ClientRateControl`` and a ``RateStore``.

    Args:
        control: the client's rate control.
        store: the shared store.
        key_id: the API key's id (``key_id_of``).
        clock: the client's clock.
    """

    def __init__(
        self, control: ClientRateControl, store: RateStore, key_id: str, clock: Clock
    ) -> None:
        self._control = control
        self._store = store
        self._key_id = key_id
        self._clock = clock
        self._client = secrets.token_hex(8)
        self.joined = True
        """Whether the store answered the last sync (before any: assumed)."""
        self.view: View | None = None
        """The store's last answer."""
        self.syncs = 0
        """Syncs that got an answer."""
        self.failures = 0
        """Syncs that did not."""
        self.outages = 0
        """Times the client went from sharing to pacing alone."""
        self._synced_at = -math.inf
        self._pause_until = -math.inf  # the shared pause's end, on this client's clock
        self._retry_at = -math.inf
        self._pending: list[tuple[int, int, float, int | None, float, float, bool]] = []
        self._published_until = -math.inf  # the latest own pause end the store was told
        self._shortened_seen = 0
        self._untrust_sent = False
        self._seen_pause_id = 0
        self._turnstile = asyncio.Lock()
        self._probe_out = False
        self._batch: list[asyncio.Future[tuple[int, float] | None]] = []
        self._driver: asyncio.Task[None] | None = None
        self._publishing: asyncio.Task[None] | None = None
        self._closed = False
        store.attach()

    # --- the hot path --------------------------------------------------------------------------

    def quiet(self, now: float) -> bool:
        """Whether a request may go now without a sync: nothing shared is throttling anyone.

        The first request past a ``REFRESH`` is not quiet (it syncs for the others).
        """
        if not self.joined:
            return now < self._retry_at  # alone: the client's own rules decide
        view = self.view
        if (
            view is None
            or view.rate is not None
            or view.budget_active
            or now < self._pause_until
            or self._control.budget.end > -math.inf
            or self._urgent(now)
        ):
            return False
        if now - self._synced_at >= REFRESH:
            self._synced_at = now  # this request refreshes the view; the others stay quiet
            return False
        return True

    def may_sync(self, now: float) -> bool:
        """Whether a request should sync now: joined, or time to try the store again."""
        if self.joined:
            return True
        if now >= self._retry_at:
            self._retry_at = now + REJOIN_AFTER  # one request tries; the rest pace alone
            return True
        return False

    async def turn(self, probe: bool) -> tuple[float, int] | None:
        """Sync for one request and wait for its slot.

        Returns:
            ``(now, shared sequence number)`` when the request may go; ``None`` when the store
            holds it (the hold is adopted) or failed: the caller looks at its waits again.
        """
        if probe:
            if self._probe_out:
                # This client's probe is on its way: the rest wait for it to be marked sent.
                await self._clock.sleep(RECHECK)
                return None
            self._probe_out = True
            try:
                turn = await self._admit_alone(probe=True)
            finally:
                self._probe_out = False
            if turn is not None and not turn[0]:
                await self._clock.sleep(turn[1])  # another client's probe went just now
                return None
        elif self.view is None or (self.view.rate is not None and self._paced()):
            # One request at a time books a slot, so a rate that changes applies at the next
            # one; and the very first sync goes alone, so the first burst learns the state once.
            batched = False
            async with self._turnstile:
                view = self.view
                if view is None or (view.rate is not None and self._paced()):
                    turn = await self._admit_alone(probe=False)
                elif self.quiet(now := self._clock.monotonic()):
                    return now, 0  # the sync ahead found nothing throttling anyone
                else:
                    batched = True  # unpaced after all: go with the next batch
            if batched:
                turn = await self._admit_together()
        else:
            turn = await self._admit_together()
        if turn is None:
            return None
        seq, wait = turn
        if not seq:
            await self._clock.sleep(min(wait, RECHECK))
            return None
        if wait > 0:
            await self._clock.sleep(wait)
        return self._clock.monotonic(), seq

    def _paced(self) -> bool:
        """Whether this client paces itself (a learned rate or a cap), so takes shared slots."""
        return self._control.send_rate_cap is not None

    async def _admit_alone(self, *, probe: bool) -> tuple[int, float] | None:
        """One sync for one request: ``(seq, wait)``, seq 0 when held; ``None``: failed."""
        view = await self._sync(admit=1, probe=probe)
        if view is None:
            return None
        return (view.seq, view.wait) if view.admitted else (0, view.wait)

    async def _admit_together(self) -> tuple[int, float] | None:
        """Join the next batch: while unpaced, the requests asking meanwhile share one sync."""
        future: asyncio.Future[tuple[int, float] | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._batch.append(future)
        driver = self._driver
        if driver is None or driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        return await future

    async def _drive(self) -> None:
        """Sync for the waiting requests, a batch at a time, until none wait."""
        while self._batch:
            batch = [future for future in self._batch if not future.done()]
            self._batch = []
            if not batch:
                continue
            try:
                view = await self._sync(admit=len(batch))
            except BaseException as error:
                for future in batch:
                    if future.done():
                        continue
                    if isinstance(error, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(error)
                raise
            for number, future in enumerate(batch):
                if future.done():
                    continue  # cancelled meanwhile: its number goes unused
                if view is None:
                    future.set_result(None)
                elif number < view.admitted:
                    future.set_result((view.seq + number, view.wait + number * view.interval))
                else:
                    future.set_result((0, view.wait if not view.admitted else RECHECK))

    def observed(
        self, info: RateLimitInfo | None, ticket: Ticket, now: float, rebase: bool = False
    ) -> None:
        """Note an answer: its stated budget for the next sync; publish a new event at once.

        ``rebase``: the answer is a probe admitted through the shared budget's spent count.
        """
        if (
            info is not None
            and info.remaining is not None
            and info.reset is not None
            and ticket.shared_seq > 0
        ):
            pending = self._pending
            pending.append(
                (
                    ticket.shared_seq,
                    info.remaining,
                    info.reset,
                    info.limit,
                    ticket.sent_at,
                    now,
                    rebase,
                )
            )
            if len(pending) > MAX_PENDING:
                del pending[0]
            if (info.remaining == 0 or rebase) and self.joined:
                self._publish_soon()  # a spent budget: the other clients should stop now
                return
        if self.joined and self._urgent(now):
            self._publish_soon()

    def local_ceiling(self, cap: float | None) -> float | None:
        """The cap on the client's own pacer: its share of the shared rate while cut off.

        The shared rate is the store's pacing rate, the cap, and a window budget's limit
        over its length (alone, the client's own budget counts only its own requests).
        """
        if self.joined:
            return cap
        view = self.view
        if view is None:
            return cap
        budget = self._control.budget
        window = None
        if view.budget_active and budget.limit is not None and budget.length > 0:
            window = budget.limit / budget.length
        shares = max(1, view.clients)
        limits = [x / shares for x in (view.rate, cap, window) if x is not None]
        return min(limits) if limits else None

    async def close(self) -> None:
        """Stop publishing and let go of the store."""
        if self._closed:
            return
        self._closed = True
        driver = self._driver
        if driver is not None and not driver.done():
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
        task = self._publishing
        if task is not None and not task.done():
            # What this client met last (its 429, say) should still reach the others.
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._store.release()

    # --- syncing -------------------------------------------------------------------------------

    def _urgent(self, now: float) -> bool:
        """Whether something happened here that other clients should hear of at once."""
        control = self._control
        pause = control.pause
        return (
            (pause.until > now and pause.until > self._published_until + ADOPT_SLACK)
            or pause.shortened > self._shortened_seen
            or (not control.budget_trusted and not self._untrust_sent)
        )

    def _publish_soon(self) -> None:
        task = self._publishing
        if task is None or task.done():
            self._publishing = asyncio.get_running_loop().create_task(self._publish())

    async def _publish(self) -> None:
        await self._sync()

    def _report(self, now: float, admit: int, probe: bool) -> Report:
        """What to tell the store now; marks what it tells as told."""
        control = self._control
        pause = control.pause
        published = 0.0
        if pause.until > now and pause.until > self._published_until + ADOPT_SLACK:
            published = pause.until - now
            self._published_until = pause.until
        ended = 0
        if pause.shortened > self._shortened_seen:
            self._shortened_seen = pause.shortened
            ended = self._seen_pause_id
        untrust = not control.budget_trusted and not self._untrust_sent
        if untrust:
            self._untrust_sent = True
        pending, self._pending = self._pending, []
        holding = max(pause.until, control.budget_hold.until, control.bare_hold.until) - now
        return Report(
            client=self._client,
            rate=None if control.window.engaged else control.model.rate,
            cap=control.rate_cap,
            admit=admit,
            probe=probe,
            probe_gap=max(MIN_PROBE_GAP, holding / (PROBES + 1)) if probe else 0.0,
            paced=self._paced(),
            honour_pause=pause.trusted,
            pause=published,
            pause_ended=ended,
            untrust=untrust,
            observations=tuple(
                Observation(seq, remaining, reset, limit, now - sent_at, now - arrived, rebase)
                for seq, remaining, reset, limit, sent_at, arrived, rebase in pending
            ),
        )

    async def _sync(self, *, admit: int = 0, probe: bool = False) -> View | None:
        """One round trip: report, then adopt the answer; ``None`` when the store failed."""
        clock = self._clock
        report = self._report(clock.monotonic(), admit, probe)
        try:
            view = await self._store.sync(self._key_id, report)
        except RateStoreUnavailable as error:
            self._down(error)
            return None
        self.syncs += 1
        self._adopt(view, clock.monotonic())
        return view

    def _adopt(self, view: View, now: float) -> None:
        """Hold what the store holds, as if this client had met it."""
        control = self._control
        self.view = view
        self._synced_at = now
        self._pause_until = now + view.pause
        if view.untrusted and control.budget_trusted:
            control.budget_trusted = False
            self._untrust_sent = True
        if view.admitted:
            # Holds wait for a sync that admitted nothing: adopted now, they would hold back
            # the very requests the store just let go.
            self._rejoined(control)
            return
        pause = control.pause
        if view.pause_id != self._seen_pause_id:
            self._seen_pause_id = view.pause_id
            if view.pause > 0 and pause.trusted and now + view.pause > pause.until + ADOPT_SLACK:
                pause.hold(now, view.pause)
            self._published_until = max(self._published_until, pause.until)
        hold = control.budget_hold
        if (
            view.budget_wait > 0
            and control.budget_trusted
            and now + view.budget_wait > hold.until + ADOPT_SLACK
        ):
            # Only the shared count says spent, which requests reaching the server out of
            # order run out early: one probe asks the server at once.
            hold.hold(now, view.budget_wait, probe_now=not view.budget_stated)
        self._rejoined(control)

    def _rejoined(self, control: ClientRateControl) -> None:
        if not self.joined:
            self.joined = True
            logger.info("rate store %r answers again: the limit is shared again", self._store)
            control.share_changed()

    def _down(self, error: RateStoreUnavailable) -> None:
        """Pace alone at this client's share until the store is tried again."""
        self.failures += 1
        self._retry_at = self._clock.monotonic() + REJOIN_AFTER
        # What was told may be lost with the store: tell it again on rejoining.
        self._published_until = -math.inf
        self._untrust_sent = False
        self._pending.clear()
        if self.joined:
            self.joined = False
            self.outages += 1
            logger.warning(
                "rate store %r unavailable (%s): pacing alone at this client's share of "
                "the last shared rate until it answers",
                self._store,
                error,
            )
            self._control.share_changed()
