"""get_leads / iter_leads: ordering, duplicates, laziness, caps, cancellation, fail-fast, budget.

Unit-level and fast: aioresponses with per-id callbacks on a virtual clock for the logic, and
the simulator in-process on loopback where the server's own view (requests in flight,
connections) is what is being proved. The cancellation tests run the simulator on a loop in
another thread, so that every task left on the test's loop can only be the client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import threading
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote

import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

import dialnexa_async as dnx
from dialnexa_async import _bulk
from dialnexa_async._retry_budget import CAPACITY, RETRY_COST
from dialnexa_async.testing import Simulator

from .conftest import LEAD_BODY, LEAD_URL, envelope, request_count

KEY = "sk_test"


# --- helpers -----------------------------------------------------------------------------------


def lead_api(
    mock_api: aioresponses,
    *,
    delays: Mapping[str, float] | None = None,
    down: Iterable[str] = (),
    first_503: Iterable[str] = (),
    first_429: Iterable[str] = (),
) -> Counter[str]:
    """Serve leads by id through aioresponses and return the per-id request counter.

    ``missing*`` ids answer 404, ``down`` ids 503 forever, ``first_503`` / ``first_429`` ids
    fail their first attempt only; ``delays`` holds real seconds to wait before answering.
    """
    seen: Counter[str] = Counter()
    down, first_503, first_429 = set(down), set(first_503), set(first_429)

    async def answer(url: URL, **_: Any) -> CallbackResult:
        lead_id = unquote(url.raw_parts[-1])
        seen[lead_id] += 1
        if delays and lead_id in delays:
            await asyncio.sleep(delays[lead_id])
        if lead_id.startswith("missing"):
            return CallbackResult(status=404, body=envelope(404, "Lead not found"))
        if lead_id in down or (lead_id in first_503 and seen[lead_id] == 1):
            return CallbackResult(status=503, body=envelope(503, "down"))
        if lead_id in first_429 and seen[lead_id] == 1:
            return CallbackResult(
                status=429, body=envelope(429, "slow down"), headers={"Retry-After": "0"}
            )
        return CallbackResult(payload={**LEAD_BODY, "id": lead_id})

    mock_api.get(LEAD_URL, callback=answer, repeat=True)
    return seen


def sim_client(sim: Simulator, **kwargs: Any) -> dnx.AsyncDialNexa:
    """A client of ``sim`` with the simulator's key."""
    kwargs.setdefault("api_key", KEY)
    return dnx.AsyncDialNexa(base_url=sim.base_url, **kwargs)


@contextlib.contextmanager
def simulator_in_thread(**config: Any) -> Iterator[Simulator]:
    """Run a simulator on its own loop in another thread, so its tasks stay off this loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sim = Simulator(**config)
    try:
        asyncio.run_coroutine_threadsafe(sim.start(), loop).result(10)
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def acquired_connections(client: dnx.AsyncDialNexa) -> int:
    """Connections the client's connector has handed out and not got back."""
    connector = client._transport.session().connector
    assert connector is not None
    return len(connector._acquired)  # aiohttp's BaseConnector: the set of connections in use


def ids_of(n: int, prefix: str = "lead_") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# --- get_leads: order, duplicates, errors as values ----------------------------------------------


async def test_get_leads_keeps_input_order_whatever_the_completion_order(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """Results come back in input order even when the answers arrive in reverse."""
    ids = ids_of(8)
    lead_api(mock_api, delays={lead_id: 0.004 * (8 - i) for i, lead_id in enumerate(ids)})
    results = await client.get_leads(ids)
    assert [r.lead_id for r in results] == ids
    assert [r.lead.id for r in results if r.lead is not None] == ids


async def test_get_leads_fetches_a_duplicate_once_and_shares_its_result(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """A repeated id costs one request and the same result object stands at each position."""
    seen = lead_api(mock_api)
    ids = ["lead_b", "lead_a", "lead_b", "missing_1", "lead_a", "missing_1", "lead_b"]
    results = await client.get_leads(ids)
    assert [r.lead_id for r in results] == ids
    assert request_count(mock_api) == 3
    assert seen == {"lead_a": 1, "lead_b": 1, "missing_1": 1}
    assert results[0] is results[2] is results[6]
    assert results[1] is results[4]
    assert results[3] is results[5]
    assert isinstance(results[3].error, dnx.NotFoundError)


async def test_get_leads_turns_bad_ids_into_values_without_a_request(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """Empty, dot, non-str and unhashable ids become InvalidLeadIdError results; others succeed."""
    seen = lead_api(mock_api)
    unhashable: list[str] = ["lead_x"]
    bad: list[Any] = ["", ".", "..", None, 42, unhashable]
    ids: list[Any] = ["lead_1", *bad, "lead_2", unhashable]
    results = await client.get_leads(ids)
    assert len(results) == len(ids)
    assert [r.ok for r in results] == [True] + [False] * len(bad) + [True, False]
    for result, given in zip(results[1:-2], bad, strict=True):
        assert result.lead_id is given
        assert isinstance(result.error, dnx.InvalidLeadIdError)
        assert isinstance(result.error, ValueError)
        assert result.error.attempts == 0
    assert results[-1] is results[6]  # the same unhashable object twice is one input
    assert seen == {"lead_1": 1, "lead_2": 1}


async def test_get_leads_unknown_ids_are_not_found_values(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """An unknown id gives a NotFoundError value after one attempt; the known ones succeed."""
    seen = lead_api(mock_api)
    results = await client.get_leads(["missing_1", "lead_1", "missing_2"])
    assert [type(r.error) for r in results] == [dnx.NotFoundError, type(None), dnx.NotFoundError]
    assert results[1].lead is not None
    assert results[1].lead.id == "lead_1"
    assert seen == {"missing_1": 1, "lead_1": 1, "missing_2": 1}


async def test_get_leads_a_failing_id_never_aborts_the_others(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """An id that answers 503 forever ends as an InternalServerError value; the rest succeed."""
    seen = lead_api(mock_api, down={"lead_down"})
    ids = [*ids_of(10), "lead_down", *ids_of(10, "more_")]
    results = await client.get_leads(ids)
    failed = [r for r in results if not r.ok]
    assert [r.lead_id for r in failed] == ["lead_down"]
    assert isinstance(failed[0].error, dnx.InternalServerError)
    assert failed[0].error.attempts == 4  # the client's default three retries, then the value
    assert seen["lead_down"] == 4
    assert sum(r.ok for r in results) == 20


async def test_bulk_calls_reject_a_bad_concurrency(client: dnx.AsyncDialNexa) -> None:
    """concurrency must be a positive int, checked before any request."""
    with pytest.raises(ValueError, match="concurrency"):
        await client.get_leads(["lead_1"], concurrency=0)
    with pytest.raises(ValueError, match="concurrency"):
        async for _ in client.iter_leads(["lead_1"], concurrency=-1):
            pass


@pytest.mark.parametrize("bare", ["lead_1", b"lead_1", bytearray(b"lead_1")])
async def test_bulk_calls_refuse_a_bare_string_before_any_request(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, bare: Any
) -> None:
    """A bare str (or bytes) is one id, not an iterable of ids: get_leads and iter_leads raise
    TypeError naming the fix instead of fetching "l", "e", "a", "d", "_", "1"."""
    lead_api(mock_api)
    with pytest.raises(TypeError, match=r"pass \[lead_id\]"):
        await client.get_leads(bare)
    with pytest.raises(TypeError, match=r"pass \[lead_id\]"):
        client.iter_leads(bare)  # at the call, before any iteration
    assert request_count(mock_api) == 0
    assert [r.lead_id for r in await client.get_leads(["lead_1"])] == ["lead_1"]


# --- iter_leads: inputs, completion order, laziness --------------------------------------------


def _sync_gen(ids: list[str]) -> Iterator[str]:
    yield from ids


async def _async_gen(ids: list[str]) -> AsyncIterator[str]:
    for lead_id in ids:
        await asyncio.sleep(0)
        yield lead_id


@pytest.mark.parametrize("kind", ["list", "generator", "async generator"])
async def test_iter_leads_takes_lists_generators_and_async_generators(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, kind: str
) -> None:
    """Every kind of input yields exactly one result per id."""
    seen = lead_api(mock_api)
    ids = [*ids_of(150), "missing_1"]
    source: _bulk.LeadIds = ids
    if kind == "generator":
        source = _sync_gen(ids)
    elif kind == "async generator":
        source = _async_gen(ids)
    results = [r async for r in client.iter_leads(source, concurrency=7)]
    assert sorted(r.lead_id for r in results) == sorted(ids)
    assert sum(not r.ok for r in results) == 1
    assert set(seen.values()) == {1}


async def test_iter_leads_yields_in_completion_order(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """A slow first id does not hold back the fast ones behind it."""
    ids = ids_of(6)
    lead_api(mock_api, delays={"lead_0": 0.05, "lead_1": 0.03, "lead_2": 0.01})
    order = [r.lead_id async for r in client.iter_leads(ids, concurrency=6)]
    assert sorted(order) == ids
    assert order != ids
    assert order[-3:] == ["lead_2", "lead_1", "lead_0"]


async def test_get_leads_accepts_an_async_iterable(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """get_leads reads an async iterable to the end and keeps its order."""
    lead_api(mock_api)
    ids = [*ids_of(20), "lead_3"]
    results = await client.get_leads(_async_gen(ids))
    assert [r.lead_id for r in results] == ids
    assert results[3] is results[-1]


@pytest.mark.parametrize("workers", [1, 4, 16])
async def test_iter_leads_pulls_ids_lazily(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, workers: int
) -> None:
    """After k results at most k + 2 * workers - 1 ids were pulled from the input.

    The bound is the implementation's: each of ``workers`` tasks holds at most one id whose
    result it has not queued yet, and the results queue (``maxsize=workers``) has just given
    up the k-th result, so it holds at most ``workers - 1`` more.
    """
    lead_api(mock_api)
    pulled = 0

    def source() -> Iterator[str]:
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield f"lead_{i}"

    slack = []
    k = 0
    async for _ in client.iter_leads(source(), concurrency=workers):
        k += 1
        slack.append(pulled - k)
    assert k == 1000
    assert max(slack) <= 2 * workers - 1
    assert max(slack) >= workers  # it does run ahead: the workers are kept busy


async def test_iter_leads_over_ten_million_ids_stops_early_and_fast(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """A 10,000,000-id generator is read only as far as the consumer goes, and ends at once."""
    lead_api(mock_api)
    pulled = 0

    def source() -> Iterator[str]:
        nonlocal pulled
        for i in range(10_000_000):
            pulled += 1
            yield f"lead_{i}"

    started = time.perf_counter()
    received = 0
    async with contextlib.aclosing(client.iter_leads(source(), concurrency=16)) as results:
        async for result in results:
            assert result.ok
            received += 1
            if received == 300:
                break
    assert time.perf_counter() - started < 10
    assert received == 300
    assert pulled <= 300 + 2 * 16
    assert request_count(mock_api) <= pulled


# --- concurrency caps seen by the server ---------------------------------------------------------


async def test_server_never_sees_more_than_the_call_concurrency() -> None:
    """get_leads(concurrency=5) keeps at most five requests in flight at the server."""
    async with Simulator(latency=0.02) as sim, sim_client(sim) as client:
        results = await client.get_leads(ids_of(100), concurrency=5)
        assert all(r.ok for r in results)
        assert sim.stats.max_in_flight == 5


async def test_two_bulk_calls_share_the_client_max_concurrency() -> None:
    """Two concurrent get_leads on one client never have more than max_concurrency in flight."""
    async with Simulator(latency=0.02) as sim, sim_client(sim, max_concurrency=8) as client:
        first, second = await asyncio.gather(
            client.get_leads(ids_of(80, "a_")), client.get_leads(ids_of(80, "b_"))
        )
        assert all(r.ok for r in first + second)
        assert sim.stats.requests == 160
        assert sim.stats.max_in_flight == 8


async def test_call_concurrency_is_capped_by_the_client_max() -> None:
    """concurrency=50 on a client with max_concurrency=4 still keeps four in flight at most."""
    async with Simulator(latency=0.02) as sim, sim_client(sim, max_concurrency=4) as client:
        results = await client.get_leads(ids_of(60), concurrency=50)
        assert all(r.ok for r in results)
        assert sim.stats.max_in_flight == 4


# --- cancellation ---------------------------------------------------------------------------------


def _assert_clean(client: dnx.AsyncDialNexa, before: set[asyncio.Task[Any]]) -> None:
    """No task the run created is pending, no connection and no limiter slot is held."""
    leftover = asyncio.all_tasks() - before
    assert leftover == set(), leftover
    assert acquired_connections(client) == 0
    assert client._rate.concurrency.in_flight == 0


async def test_cancelling_get_leads_at_random_points_leaves_nothing_behind() -> None:
    """Cancelling a get_leads task cancels and awaits every request; the client still works."""
    rng = random.Random(20240501)
    with (
        simulator_in_thread(latency=0.005, latency_jitter=0.01, seed=3) as sim,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        async with sim_client(sim) as client:
            await client.get_lead("lead_warmup")
            cancelled_mid_run = 0
            for _ in range(12):
                before = asyncio.all_tasks()
                sent_before = sim.stats.requests
                task = asyncio.create_task(client.get_leads(ids_of(400), concurrency=16))
                await asyncio.sleep(rng.uniform(0.0, 0.12))
                task.cancel()
                await asyncio.wait([task])
                if task.cancelled() and sim.stats.requests > sent_before:
                    cancelled_mid_run += 1
                _assert_clean(client, before)
                assert (await client.get_lead("lead_after")).id == "lead_after"
            assert cancelled_mid_run >= 6
        gc.collect()
    assert [str(w.message) for w in caught] == []


async def test_breaking_out_of_aclosing_at_random_points_leaves_nothing_behind() -> None:
    """A break inside aclosing(iter_leads(...)) cancels in-flight requests before the next line."""
    rng = random.Random(7)
    with (
        simulator_in_thread(latency=0.005, latency_jitter=0.01, seed=5) as sim,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        async with sim_client(sim) as client:
            await client.get_lead("lead_warmup")
            for _ in range(12):
                stop_at = rng.randrange(1, 300)
                before = asyncio.all_tasks()
                received = 0
                async with contextlib.aclosing(
                    client.iter_leads(ids_of(400), concurrency=16)
                ) as results:
                    async for _result in results:
                        received += 1
                        if received == stop_at:
                            break
                assert received == stop_at
                _assert_clean(client, before)
                assert (await client.get_lead("lead_after")).id == "lead_after"
        gc.collect()
    assert [str(w.message) for w in caught] == []


async def test_plain_break_is_cleaned_up_by_the_loop_soon_after() -> None:
    """Without aclosing, asyncio finalizes the abandoned generator within a few loop turns."""
    with (
        simulator_in_thread(latency=0.005, latency_jitter=0.01, seed=9) as sim,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        async with sim_client(sim) as client:
            await client.get_lead("lead_warmup")
            for stop_at in (1, 37, 150):
                before = asyncio.all_tasks()
                received = 0
                async for _result in client.iter_leads(ids_of(400), concurrency=16):
                    received += 1
                    if received == stop_at:
                        break
                turns = 0
                while asyncio.all_tasks() - before and turns < 50:
                    await asyncio.sleep(0)
                    turns += 1
                assert turns <= 10  # five on an idle machine
                _assert_clean(client, before)
                assert (await client.get_lead("lead_after")).id == "lead_after"
        gc.collect()
    assert [str(w.message) for w in caught] == []


# --- fail-fast ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "error_type"),
    [("sk_wrong", dnx.AuthenticationError), ("sk_blocked", dnx.PermissionDeniedError)],
)
async def test_a_dooming_key_error_stops_new_requests_at_once(
    key: str, error_type: type[dnx.APIStatusError]
) -> None:
    """With a rejected key, 1,000 ids cost at most `concurrency` requests and all get the error."""
    async with (
        Simulator(latency=0.01, forbidden_keys=frozenset({"sk_blocked"})) as sim,
        sim_client(sim, api_key=key) as client,
    ):
        results = await client.get_leads(ids_of(1000), concurrency=16)
        assert 1 <= sim.stats.requests <= 16
        assert len(results) == 1000
        assert all(type(r.error) is error_type for r in results)
        sent = [r for r in results if r.error is not None and r.error.attempts > 0]
        assert len(sent) == sim.stats.requests  # the rest were answered without a request


# --- progress and stats ---------------------------------------------------------------------------


async def test_progress_snapshots_count_the_run(
    client: dnx.AsyncDialNexa, mock_api: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The callback sees consistent snapshots ending at done == total with the run's retries."""
    monkeypatch.setattr(_bulk, "PROGRESS_INTERVAL", 0.0)  # a report per result
    ids = [*ids_of(90), *ids_of(10, "missing_")]
    lead_api(
        mock_api,
        first_503=[f"lead_{i}" for i in range(0, 90, 9)],
        first_429=[f"lead_{i}" for i in range(4, 90, 9)],
    )
    await client.get_lead("lead_before")  # counters from before the run are not the run's
    snapshots: list[dnx.BulkProgress] = []
    results = await client.get_leads(ids, concurrency=8, progress=snapshots.append)
    assert sum(r.ok for r in results) == 90
    assert len(snapshots) == 101  # one per result, then the final report
    for n, snap in enumerate(snapshots[:-1], start=1):
        assert snap.total == 100
        assert snap.done == n
        assert snap.ok + snap.failed == snap.done
        assert 1 <= snap.concurrency <= client.max_concurrency
    last = snapshots[-1]
    assert (last.done, last.total, last.ok, last.failed) == (100, 100, 90, 10)
    assert last.retries == 20
    assert last.rate_limited == 10
    assert client.stats.retries == 20
    assert last.elapsed >= 0


async def test_progress_total_is_none_for_a_generator(
    client: dnx.AsyncDialNexa, mock_api: aioresponses
) -> None:
    """An input without a length reports total=None and still ends with every result counted."""
    lead_api(mock_api)
    snapshots: list[dnx.BulkProgress] = []
    results = [r async for r in client.iter_leads(_sync_gen(ids_of(50)), progress=snapshots.append)]
    assert len(results) == 50
    assert snapshots
    assert all(s.total is None for s in snapshots)
    assert snapshots[-1].done == 50


async def test_client_stats_agree_with_the_server_after_a_faulty_run() -> None:
    """After 503s, resets and 429s, client.stats counts what the simulator saw."""
    async with (
        Simulator(
            error_rate=0.10,
            error_statuses=(503,),
            reset_rate=0.05,
            rate_limit=20,
            rate_window=0.1,
            rate_limit_headers=False,
            retry_after=True,
            fractional_reset=True,
            seed=11,
        ) as sim,
        sim_client(sim, max_retries=10) as client,
    ):
        results = await client.get_leads(ids_of(400))
        assert all(r.ok for r in results)
        stats, server = client.stats, sim.stats
        # A reset on a connection reused from the pool is resent at once by the transport
        # (RFC 9112 9.3.1) and counted as a resend, not as an attempt or a connection error.
        assert stats.requests + stats.resends == server.requests
        assert stats.retries == stats.requests - 400  # every attempt past the first per id
        assert stats.retries > 0
        assert stats.server_errors == server.by_status[503] > 0
        assert stats.rate_limited == server.by_status[429] > 0
        assert stats.connection_errors + stats.resends == server.resets > 0


async def test_every_request_the_server_counts_went_through_rate_control() -> None:
    """Each request the server receives, resends included, was issued a rate-control ticket."""
    async with (
        Simulator(reset_rate=0.05, seed=4) as sim,
        sim_client(sim, max_concurrency=4) as client,
    ):
        results = await client.get_leads(ids_of(300))
        assert all(r.ok for r in results)
        assert client.stats.resends > 0  # the case at stake did happen
        assert client._rate._seq == sim.stats.requests


# --- retry budget ---------------------------------------------------------------------------------


async def test_retry_budget_bounds_the_load_of_an_outage(clock: dnx.VirtualClock) -> None:
    """503 forever over 300 ids costs 300 + CAPACITY / RETRY_COST requests, not 300 * 11."""
    async with (
        Simulator(error_rate=1.0, error_statuses=(503,)) as sim,
        sim_client(sim, max_retries=10, clock=clock) as client,
    ):
        results = await client.get_leads(ids_of(300))
        assert all(isinstance(r.error, dnx.InternalServerError) for r in results)
        assert sim.stats.requests == 300 + int(CAPACITY / RETRY_COST)
        assert client.stats.retries == int(CAPACITY / RETRY_COST)
        assert client._policy.budget.tokens < RETRY_COST
        assert client._policy.budget.denied > 0


async def test_429s_never_drain_the_retry_budget(clock: dnx.VirtualClock) -> None:
    """Retrying 429s (a tiny limit that keeps answering 429) leaves the budget untouched."""
    async with (
        Simulator(rate_limit=1, rate_window=5.0, retry_after=True) as sim,
        sim_client(sim, clock=clock) as client,
    ):
        results = await client.get_leads(ids_of(20))
        assert sim.stats.by_status[429] > 20
        assert client.stats.retries > 20
        assert sum(r.ok for r in results) == 1
        assert all(isinstance(r.error, dnx.RateLimitError) for r in results if not r.ok)
        assert client._policy.budget.tokens == CAPACITY
        assert client._policy.budget.denied == 0
