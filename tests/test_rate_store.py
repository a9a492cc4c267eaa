"""The shared state of one API key (``SharedLimit``), step by step, with the time given."""

from __future__ import annotations

import math

import pytest

from dialnexa_async._rate_model import CATCH_UP
from dialnexa_async._rate_store import (
    LIVE_SECONDS,
    MemoryRateStore,
    Observation,
    Report,
    SharedLimit,
)


def _ask(limit: SharedLimit, now: float, client: str = "a", **fields: object) -> object:
    return limit.step(Report(client, None, None, admit=1, **fields), now)  # type: ignore[arg-type]


def test_a_pause_holds_every_client_until_its_end_but_lets_a_probe_through() -> None:
    """One client's pause holds another's requests to its end; a probe goes whatever holds."""
    limit = SharedLimit()
    limit.step(Report("a", None, None, pause=2.0), 10.0)
    held = limit.step(Report("b", None, None, admit=1), 10.5)
    assert not held.admitted
    assert held.wait == pytest.approx(1.5)
    assert held.pause == pytest.approx(1.5)
    probe = limit.step(Report("b", None, None, admit=1, probe=True), 10.5)
    assert probe.admitted
    assert limit.step(Report("b", None, None, admit=1), 12.0).admitted


def test_a_pause_only_moves_later_and_ends_early_only_by_its_own_number() -> None:
    """A shorter pause leaves a longer one; a probe's end of an older pause ends nothing."""
    limit = SharedLimit()
    first = limit.step(Report("a", None, None, pause=2.0), 0.0)
    limit.step(Report("b", None, None, pause=1.0), 0.5)
    assert limit.pause_until == 2.0
    longer = limit.step(Report("b", None, None, pause=3.0), 0.5)
    assert longer.pause_id == first.pause_id + 1
    stale = limit.step(Report("a", None, None, pause_ended=first.pause_id), 1.0)
    assert stale.pause == pytest.approx(2.5)
    ended = limit.step(Report("b", None, None, pause_ended=longer.pause_id), 1.0)
    assert ended.pause == 0.0
    assert limit.step(Report("a", None, None, admit=1), 1.0).admitted


def test_a_client_whose_probes_beat_pauses_is_not_held_by_them() -> None:
    """``honour_pause=False`` (its pauses proved wrong) lets a client's requests go."""
    limit = SharedLimit()
    limit.step(Report("a", None, None, pause=5.0), 0.0)
    assert limit.step(Report("b", None, None, admit=1, honour_pause=False), 1.0).admitted


def test_the_budget_counts_every_clients_requests_on_one_sequence() -> None:
    """``remaining: 3`` after request ``s`` lets three more go, from any client, then holds."""
    limit = SharedLimit()
    first = limit.step(Report("a", None, None, admit=1), 0.0)
    seen = Observation(first.seq, remaining=3, reset=1.0, limit=4, sent_age=0.0, age=0.0)
    limit.step(Report("a", None, None, observations=(seen,)), 0.0)
    admitted = [limit.step(Report(c, None, None, admit=1), 0.1).admitted for c in "abcab"]
    assert admitted == [True, True, True, False, False]
    held = limit.step(Report("c", None, None, admit=1), 0.4)
    assert held.budget_wait == pytest.approx(0.6)
    assert held.budget_active
    # The window ends: the known limit lets four more go before answers speak again.
    after = [limit.step(Report("c", None, None, admit=1), 1.0).admitted for _ in range(5)]
    assert after == [True, True, True, True, False]


def test_requests_sent_before_a_budget_was_numbered_are_not_counted_from() -> None:
    """An answer to a request with no shared number (0) states nothing the store can place."""
    limit = SharedLimit()
    limit.step(Report("a", None, None, observations=(Observation(0, 0, 5.0, 1, 0, 0),)), 0.0)
    assert limit.step(Report("a", None, None, admit=1), 0.1).admitted
    assert limit.end == -math.inf


def test_a_budget_found_untrustworthy_holds_no_one() -> None:
    """Once a client reports a probe beat the budget, spent budgets hold nobody."""
    limit = SharedLimit()
    first = limit.step(Report("a", None, None, admit=1), 0.0)
    spent = Observation(first.seq, remaining=0, reset=5.0, limit=1, sent_age=0.0, age=0.0)
    assert not _ask(limit, 0.1, observations=(spent,)).admitted  # type: ignore[attr-defined]
    view = limit.step(Report("b", None, None, admit=1, untrust=True), 0.2)
    assert view.admitted
    assert view.untrusted
    assert not view.budget_active


def test_the_rate_is_the_sum_of_the_live_clients_rates_under_the_lowest_cap() -> None:
    """Each client's learned rate is its share: the store paces all at their sum, capped."""
    limit = SharedLimit()
    limit.step(Report("a", 30.0, None), 0.0)
    assert limit.step(Report("b", 40.0, None), 0.0).rate == 70.0
    assert limit.step(Report("c", None, 50.0), 0.0).rate == 50.0
    # "a" and "c" fall silent: after LIVE_SECONDS only "b" counts.
    late = limit.step(Report("b", 40.0, None), LIVE_SECONDS + 0.1)
    assert late.rate == 40.0
    assert late.clients == 1
    assert limit.step(Report("b", None, None), LIVE_SECONDS + 0.2).rate is None


def test_paced_requests_are_booked_one_interval_apart_across_clients() -> None:
    """Requests asked for at the same moment are booked on one schedule at the shared rate."""
    limit = SharedLimit()
    waits = [limit.step(Report(c, None, 20.0, admit=1), 1.0).wait for c in "abcdabcd"]
    assert waits == pytest.approx([i / 20 for i in range(8)])
    # A slot taken a little late keeps the schedule; after an idle spell it starts from now.
    limit = SharedLimit()
    limit.step(Report("a", None, 20.0, admit=1), 1.0)
    assert limit.step(Report("a", None, 20.0, admit=1), 1.05 + CATCH_UP / 2).wait == 0.0
    assert limit.tat == pytest.approx(1.10)  # the late slot kept its place, 1.05
    limit.step(Report("a", None, 20.0, admit=1), 5.0)
    assert limit.tat == pytest.approx(5.05)


def test_a_probe_is_never_paced() -> None:
    """A probe through a hold takes a number but no slot: its own spacing applies."""
    limit = SharedLimit()
    limit.step(Report("a", None, 1.0, admit=1), 0.0)
    probe = limit.step(Report("a", None, 1.0, admit=1, probe=True), 0.0)
    assert probe.admitted
    assert probe.wait == 0.0


def test_a_store_made_afresh_numbers_above_every_number_before_it() -> None:
    """Numbers start at the store's time in microseconds: a restart cannot reuse one."""
    before = SharedLimit()
    old = [before.step(Report("a", None, None, admit=1), 100.0).seq for _ in range(1000)]
    after = SharedLimit()
    assert after.step(Report("a", None, None, admit=1), 100.01).seq > max(old)


async def test_the_memory_store_keeps_one_state_per_key_id() -> None:
    """Clients of two keys on one in-memory store never share a pause."""
    store = MemoryRateStore()
    await store.sync("key_a", Report("a", None, None, pause=60.0))
    assert not (await store.sync("key_a", Report("b", None, None, admit=1))).admitted
    assert (await store.sync("key_b", Report("b", None, None, admit=1))).admitted


def _spend(limit: SharedLimit, now: float, remaining: int, count: int) -> list[int]:
    """Number ``count`` requests, then report the first one's answer (``remaining``)."""
    seqs = []
    for _ in range(count):
        view = limit.step(Report("a", None, None, admit=1), now)
        assert view.admitted
        seqs.append(view.seq)
    seen = Observation(seqs[0], remaining, reset=1.0, limit=10, sent_age=0.0, age=0.0)
    limit.step(Report("a", None, None, observations=(seen,)), now)
    return seqs


def test_a_probe_admitted_through_the_shared_count_recounts_the_budget() -> None:
    """The count (number + remaining) ran out before the server said so, as requests of many
    clients reach it out of order: the probe's own answer recounts, and the headers stay
    trusted."""
    limit = SharedLimit()
    seqs = _spend(limit, 0.0, remaining=2, count=3)
    held = limit.step(Report("b", None, None, admit=1), 0.1)
    assert not held.admitted
    assert not held.budget_stated  # only the count says spent
    probe = limit.step(Report("b", None, None, admit=1, probe=True, probe_gap=0.05), 0.1)
    assert probe.admitted
    assert probe.seq == seqs[-1] + 1
    seen = Observation(probe.seq, 4, reset=0.9, limit=10, sent_age=0.0, age=0.0, rebase=True)
    view = limit.step(Report("b", None, None, admit=1, observations=(seen,)), 0.11)
    assert view.admitted
    assert not view.untrusted
    assert limit.last_seq == probe.seq + 4


def test_a_probe_admitted_after_the_server_said_spent_ends_trust_in_the_headers() -> None:
    """Admitted after an answer stated ``remaining: 0`` in the same window: no fixed window."""
    limit = SharedLimit()
    _spend(limit, 0.0, remaining=0, count=2)
    held = limit.step(Report("b", None, None, admit=1), 0.1)
    assert not held.admitted
    assert held.budget_stated
    probe = limit.step(Report("b", None, None, admit=1, probe=True, probe_gap=0.05), 0.1)
    seen = Observation(probe.seq, 3, reset=0.9, limit=10, sent_age=0.0, age=0.0, rebase=True)
    view = limit.step(Report("b", None, None, observations=(seen,)), 0.11)
    assert view.untrusted


def test_an_answer_numbered_before_the_window_opened_is_not_counted() -> None:
    """The old window's last answers, reported late, do not spend the new window."""
    limit = SharedLimit()
    seqs = _spend(limit, 0.0, remaining=0, count=2)
    assert limit.step(Report("a", None, None, admit=1), 1.1).admitted  # a new window opens
    late = Observation(seqs[1], 0, reset=0.1, limit=10, sent_age=1.0, age=0.0)
    view = limit.step(Report("a", None, None, admit=1, observations=(late,)), 1.11)
    assert view.admitted
    assert not view.budget_stated
