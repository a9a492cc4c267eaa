"""The window budget stated in rate-limit headers, pure and clock-driven."""

from __future__ import annotations

import math

import pytest

from dialnexa_async._header_budget import FRESH_SLACK, HeaderBudget
from dialnexa_async._rate_control import Ticket
from dialnexa_async._sansio.headers import RateLimitInfo

Seen = tuple[int, float, float, int, float]
"""One answer: (request number, sent at, answered at, remaining, reset)."""


def _budget(answers: list[Seen], limit: int | None = 10) -> HeaderBudget:
    """A budget that has read ``answers``, each stating ``limit``."""
    budget = HeaderBudget()
    for seq, sent_at, now, remaining, reset in answers:
        budget.observe(RateLimitInfo(limit, remaining, reset), Ticket(seq, sent_at), now)
    return budget


def test_no_headers_no_budget() -> None:
    """Before any headers every request fits and none waits."""
    budget = HeaderBudget()
    assert budget.exhausted(10**9) is False
    assert budget.wait(10**9, 0.0) == 0.0


@pytest.mark.parametrize(
    ("seq", "remaining", "last_fitting"),
    [(1, 3, 4), (1, 0, 1), (5, 2, 7), (10, 0, 10)],
)
def test_remaining_counts_the_requests_sent_after_the_answered_one(
    seq: int, remaining: int, last_fitting: int
) -> None:
    """remaining: r for request s lets requests up to s + r go and holds the next till the end."""
    budget = _budget([(seq, 0.0, 0.5, remaining, 5.0)])
    for sent in range(seq, last_fitting):
        assert budget.exhausted(sent) is False
        assert budget.wait(sent, 0.5) == 0.0
    assert budget.exhausted(last_fitting) is True
    assert budget.wait(last_fitting, 0.5) == pytest.approx(5.0)
    assert budget.wait(last_fitting, 2.5) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("answers", "end", "last_seq"),
    [
        # The server rounds "0.4 s left" up to 1 s: the earlier estimate (t=1.0) stands.
        ([(1, 0.0, 0.0, 2, 1.0), (3, 0.0, 0.6, 0, 1.0)], 1.0, 3),
        # A later answer with an earlier end tightens it.
        ([(1, 0.0, 0.0, 5, 3.0), (2, 0.0, 0.5, 4, 1.0)], 1.5, 6),
        # A later answer claiming more room than the first allowed does not widen the budget.
        ([(1, 0.0, 0.0, 2, 3.0), (2, 0.0, 0.5, 9, 2.5)], 3.0, 3),
        # An answer to a request sent after the tracked window ended opens a new window.
        ([(1, 0.0, 0.0, 0, 1.0), (2, 1.5, 1.6, 4, 9.0)], 10.6, 6),
    ],
)
def test_the_window_end_and_budget_only_move_earlier_within_a_window(
    answers: list[Seen], end: float, last_seq: int
) -> None:
    """Within one window the end is the earliest arrival + reset and the budget the smallest."""
    budget = _budget(answers)
    assert budget.end == pytest.approx(end)
    assert budget.last_seq == last_seq


@pytest.mark.parametrize(("limit", "fits"), [(4, 4), (1, 1), (None, math.inf)])
def test_a_new_window_admits_the_known_limit(limit: int | None, fits: float) -> None:
    """Once the window is over, ``limit`` requests fit, and the next waits two window lengths."""
    budget = _budget([(1, 0.0, 0.0, 0, 1.0)], limit=limit)
    assert budget.wait(1, 0.5) == pytest.approx(0.5)
    assert budget.wait(1, 1.0) == 0.0  # the window is over
    assert budget.last_seq == 1 + fits
    if limit is not None:
        for sent in range(1, 1 + limit):
            assert budget.wait(sent, 1.0) == 0.0
        # No answer from the new window yet: its end is bounded by two window lengths.
        assert budget.wait(1 + limit, 1.0) == pytest.approx(2 * 1.0)
    else:
        assert budget.wait(10**9, 1.0) == 0.0


def test_the_window_length_is_the_longest_reset_seen() -> None:
    """length is the longest reset read, and the limit the last one stated."""
    budget = HeaderBudget()
    budget.observe(RateLimitInfo(10, 9, 4.0), Ticket(1, 0.0), 0.0)
    budget.observe(RateLimitInfo(None, 8, 3.5), Ticket(2, 0.0), 0.5)
    assert budget.length == 4.0
    assert budget.limit == 10
    budget.observe(RateLimitInfo(20, 0, 10.0), Ticket(3, 5.0), 5.0)
    assert budget.length == 10.0
    assert budget.limit == 20


def test_an_answer_from_before_the_window_opened_is_not_counted() -> None:
    """A request in flight across a window's start answers for the old window: its
    ``remaining: 0`` must not spend the new window's budget."""
    budget = _budget([(1, 0.0, 0.01, 0, 1.0)], limit=10)
    assert budget.wait(1, 0.5) == pytest.approx(0.51)  # spent until the window's end
    assert budget.wait(1, 1.2) == 0.0  # the window ended: ten more numbered 2..11 fit
    budget.observe(RateLimitInfo(10, 0, 0.5), Ticket(1, 0.9), 1.21)  # the old window speaks
    assert budget.last_seq == 11
    assert budget.wait(5, 1.22) == 0.0
    budget.observe(RateLimitInfo(10, 6, 0.9), Ticket(3, 1.2), 1.23)  # the new one does
    assert budget.last_seq == 9


def test_a_recount_raises_a_budget_only_the_clients_count_spent() -> None:
    """Answers out of order left ``s + r`` short; a probe the server admitted recounts it."""
    # Request 9 reached the server before 8 (5 left then), so 8 saw 2 left: 8 + 2 = 10 is short.
    budget = _budget([(8, 0.0, 0.1, 2, 1.0), (9, 0.0, 0.1, 5, 1.0)])
    assert budget.last_seq == 10
    assert budget.spent_seq == math.inf  # no answer said spent: only the count did
    assert budget.recount(RateLimitInfo(10, 3, 0.8), Ticket(11, 0.2)) is True
    assert budget.last_seq == 14
    assert budget.exhausted(13) is False


def test_no_recount_after_an_answer_stated_the_budget_spent() -> None:
    """Admitted after the server itself said ``remaining: 0``: no fixed window, no recount."""
    budget = _budget([(5, 0.0, 0.1, 0, 1.0)])
    assert budget.spent_seq == 5
    assert budget.recount(RateLimitInfo(10, 4, 0.7), Ticket(6, 0.3)) is False
    assert budget.last_seq == 5


def test_a_new_window_forgets_the_old_ones_spent_answer() -> None:
    """Once the window the client tracked is over, only answers from the new one say spent."""
    budget = _budget([(5, 0.0, 0.1, 0, 1.0)])
    assert budget.wait(5, 1.2) == 0.0
    assert budget.spent_seq == math.inf
    assert budget.recount(RateLimitInfo(10, 3, 0.7), Ticket(7, 1.2)) is True


@pytest.mark.parametrize(
    ("remaining", "fixed"),
    [
        (9, True),  # the first of ten new requests counted: a fixed window that reopened
        (10 - 3 - FRESH_SLACK, True),  # three sent since, and a few probes' slack
        (0, False),  # it remembers requests from before the end: a sliding window
    ],
)
def test_a_fresh_window_that_remembers_older_requests_is_no_fixed_window(
    remaining: int, fixed: bool
) -> None:
    """After the end passed, a window counting more than the client sent since is sliding."""
    budget = _budget([(5, 0.0, 0.1, 0, 1.0)])
    assert budget.wait(5, 1.2) == 0.0  # the client takes the window as fresh from request 6
    assert budget.fresh is True
    ok = budget.observe(RateLimitInfo(10, remaining, 1.0), Ticket(6, 1.2), 1.25, sent=8)
    assert ok is fixed
    # Another client's requests count too when the key is shared: no verdict without ``sent``.
    again = _budget([(5, 0.0, 0.1, 0, 1.0)])
    again.wait(5, 1.2)
    assert again.observe(RateLimitInfo(10, remaining, 1.0), Ticket(6, 1.2), 1.25) is True
