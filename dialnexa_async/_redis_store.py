"""``RedisRateStore``: rate-control state shared through Redis by clients in many processes.

Every sync is one Lua script (``SYNC_SCRIPT``), so it is one round trip and atomic: the script
is ``_rate_store.SharedLimit.step`` line for line, on the time of Redis's own ``TIME``, so the
hosts' clocks never meet. A store that does not answer within ``timeout`` raises
``RateStoreUnavailable`` and the client paces alone until it answers again.

Keys: ``{namespace}:{<key id>}:state`` (a hash: pause, budget, schedule) and
``{namespace}:{<key id>}:clients`` (a hash: the rate and cap of each client lately seen), both
expiring ``KEY_TTL`` seconds after their last use. The key id is the API key's part before
``:``, never its secret; the braces keep both keys in one Redis Cluster slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._rate_model import CATCH_UP
from ._rate_store import LIVE_SECONDS, RateStoreUnavailable, Report, View

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["DEFAULT_NAMESPACE", "DEFAULT_TIMEOUT", "KEY_TTL", "SYNC_SCRIPT", "RedisRateStore"]

DEFAULT_NAMESPACE = "dialnexa"
"""The prefix of every key the store writes, unless ``namespace=`` says otherwise."""

DEFAULT_TIMEOUT = 0.25
"""Seconds a sync may take before the client stops waiting and paces alone. A loopback
Redis answers in well under a millisecond; what takes longer on a busy host is the client's
own event loop, which on the shared 2-core benchmark machine stalled for 50-300 ms at times,
and at 50 ms each such stall cost a second of pacing alone. A Redis that is down refuses the
connection at once, whatever this says."""

KEY_TTL = 86_400
"""Seconds the shared state outlives its last use (a day: the longest wait a server states)."""

MAX_CONNECTIONS = 16
"""Connections one store opens at most; further syncs queue for one (inside ``timeout``)."""

EXTRA_HINT = "pip install 'dialnexa-async[redis]'"

SYNC_SCRIPT = """
-- SharedLimit.step (dialnexa_async/_rate_store.py), line for line, on Redis TIME.
-- KEYS: state hash, clients hash.
-- ARGV: client, rate, cap, admit (a count), probe, honour_pause, pause, pause_ended, untrust,
--       live_seconds, catch_up, ttl_ms, n, probe_gap, paced,
--       then n x (seq, remaining, reset, limit, sent_age, age, rebase).
-- An absent number is ''; an absent field is an infinity (see SharedLimit.__init__).
if redis.replicate_commands then redis.replicate_commands() end  -- TIME before writes, Redis < 5
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state_key, clients_key = KEYS[1], KEYS[2]
local function opt(v) if v == nil or v == '' then return nil end return tonumber(v) end
local function fmt(x) return string.format('%.17g', x) end

local raw = redis.call('HGETALL', state_key)
local s = {}
for i = 1, #raw, 2 do s[raw[i]] = raw[i + 1] end
local pause_until = opt(s.pause_until)
local pause_id = tonumber(s.pause_id or '0')
-- A state made afresh numbers from Redis TIME in microseconds: above every number before it.
local sent = tonumber(s.sent or '') or (tonumber(t[1]) * 1000000 + tonumber(t[2]))
local last_seq = opt(s.last_seq)
local win_end = opt(s['end'])
local limit = opt(s.limit)
local length = tonumber(s.length or '0')
local spent_seq = opt(s.spent_seq)
local opened_seq = tonumber(s.opened_seq or '0')
local untrusted = s.untrusted == '1'
local tat = opt(s.tat)
local interval = tonumber(s.interval or '0')
local probe_next = opt(s.probe_next)

-- _rate: record the client; the live clients' summed rate, capped.
local live_seconds = tonumber(ARGV[10])
redis.call('HSET', clients_key, ARGV[1], fmt(now) .. ';' .. ARGV[2] .. ';' .. ARGV[3])
local entries = redis.call('HGETALL', clients_key)
local total, cap, live = 0, nil, 0
for i = 1, #entries, 2 do
  local seen, r, c = string.match(entries[i + 1], '^([^;]*);([^;]*);([^;]*)$')
  if tonumber(seen) < now - live_seconds then
    redis.call('HDEL', clients_key, entries[i])
  else
    live = live + 1
    if r ~= '' then total = total + tonumber(r) end
    if c ~= '' then
      local cv = tonumber(c)
      if cap == nil or cv < cap then cap = cv end
    end
  end
end
local pacing = nil
if total > 0 then pacing = total end
if cap ~= nil and (pacing == nil or cap < pacing) then pacing = cap end
if pacing == nil then
  tat = nil
  interval = 0
else
  local new = 1 / pacing
  if new ~= interval then
    if tat ~= nil then tat = tat + (new - interval) end
    interval = new
  end
end

-- the pause
local pause = tonumber(ARGV[7])
if pause > 0 then
  local u = now + pause
  if pause_until == nil or u > pause_until then
    pause_until = u
    pause_id = pause_id + 1
  end
end
local ended = tonumber(ARGV[8])
if ended ~= 0 and ended == pause_id and pause_until ~= nil and pause_until > now then
  pause_until = now
end
if ARGV[9] == '1' then untrusted = true end

-- _observe: HeaderBudget.observe on the shared sequence
local n = tonumber(ARGV[13])
for i = 0, n - 1 do
  local b = 16 + i * 7
  local seq = tonumber(ARGV[b])
  if seq > 0 then
    local remaining, reset = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
    local lim = opt(ARGV[b + 3])
    local arrived = now - tonumber(ARGV[b + 5])
    local sent_at = now - tonumber(ARGV[b + 4])
    local e = arrived + reset
    local last = seq + remaining
    if lim ~= nil then limit = lim end
    if reset > length then length = reset end
    local rebase = ARGV[b + 6] == '1'
    if seq < opened_seq and win_end ~= nil and sent_at < win_end then
      -- in flight when the tracked window opened: it speaks of the one before
    elseif rebase and spent_seq ~= nil and seq > spent_seq then
      untrusted = true
    elseif rebase and spent_seq == nil then
      last_seq = last
      if win_end == nil or e < win_end then win_end = e end
      if remaining == 0 then spent_seq = seq end
    elseif win_end == nil or sent_at >= win_end then
      win_end = e
      last_seq = last
      if remaining == 0 then spent_seq = seq else spent_seq = nil end
      opened_seq = seq
    else
      if remaining == 0 and (spent_seq == nil or seq < spent_seq) then spent_seq = seq end
      if e < win_end then win_end = e end
      if last_seq == nil or last < last_seq then last_seq = last end
    end
  end
end

-- _budget_wait: HeaderBudget.wait for the next shared request
local function budget_wait_next()
  if untrusted or last_seq == nil or sent < last_seq then return 0 end
  if win_end == nil or now >= win_end then
    if limit == nil then last_seq = nil else last_seq = sent + limit end
    win_end = now + 2 * length
    spent_seq = nil
    opened_seq = sent + 1
    return 0
  end
  return win_end - now
end

local pause_left = 0
if pause_until ~= nil and pause_until > now then pause_left = pause_until - now end

-- admission in order until one is held, each with a slot on the schedule when paced
local want, probe, honour = tonumber(ARGV[4]), ARGV[5] == '1', ARGV[6] == '1'
local admitted, seq, wait, gap, held = 0, 0, 0, 0, 0
for _ = 1, want do
  local budget = budget_wait_next()
  held = budget
  if honour and pause_left > held then held = pause_left end
  if probe and held > 0 then
    if probe_next ~= nil and now < probe_next then
      held = probe_next - now
      break
    end
    probe_next = now + tonumber(ARGV[14])
  elseif held > 0 then
    break
  end
  sent = sent + 1
  admitted = admitted + 1
  if admitted == 1 then seq = sent end
  if pacing ~= nil and ARGV[15] == '1' and not probe then
    local slot = tat
    if slot == nil or slot < now - tonumber(ARGV[11]) then slot = now end
    if admitted == 1 then
      if slot > now then wait = slot - now end
      gap = interval
    end
    tat = slot + interval
  end
end
if want > 0 and admitted == 0 then wait = held end
local budget_wait = budget_wait_next()

local sets, dels = {}, {}
local function put(field, v)
  if v == nil then
    dels[#dels + 1] = field
  else
    sets[#sets + 1] = field
    sets[#sets + 1] = fmt(v)
  end
end
put('pause_until', pause_until)
put('pause_id', pause_id)
put('sent', sent)
put('last_seq', last_seq)
put('end', win_end)
put('limit', limit)
put('length', length)
put('spent_seq', spent_seq)
put('opened_seq', opened_seq)
put('untrusted', untrusted and 1 or 0)
put('tat', tat)
put('interval', interval)
put('probe_next', probe_next)
redis.call('HSET', state_key, unpack(sets))
if #dels > 0 then redis.call('HDEL', state_key, unpack(dels)) end
local ttl = tonumber(ARGV[12])
redis.call('PEXPIRE', state_key, ttl)
redis.call('PEXPIRE', clients_key, ttl)

local active = 0
if win_end ~= nil and not untrusted then active = 1 end
local pacing_out = ''
if pacing ~= nil then pacing_out = fmt(pacing) end
return {fmt(now), tostring(admitted), fmt(seq), fmt(wait), fmt(gap), fmt(pause_left),
        tostring(pause_id), fmt(budget_wait), tostring(active), untrusted and '1' or '0',
        pacing_out, tostring(live), spent_seq ~= nil and '1' or '0'}
"""


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def sync_args(report: Report) -> list[str]:
    """The script's ``ARGV`` for ``report``."""
    args = [
        report.client,
        _number(report.rate),
        _number(report.cap),
        str(int(report.admit)),
        "1" if report.probe else "0",
        "1" if report.honour_pause else "0",
        repr(float(report.pause)),
        str(report.pause_ended),
        "1" if report.untrust else "0",
        repr(LIVE_SECONDS),
        repr(CATCH_UP),
        str(KEY_TTL * 1000),
        str(len(report.observations)),
        repr(float(report.probe_gap)),
        "1" if report.paced else "0",
    ]
    for seen in report.observations:
        args += [
            str(seen.seq),
            str(seen.remaining),
            repr(float(seen.reset)),
            "" if seen.limit is None else str(seen.limit),
            repr(float(seen.sent_age)),
            repr(float(seen.age)),
            "1" if seen.rebase else "0",
        ]
    return args


def parse_view(raw: Sequence[Any]) -> View:
    """The script's answer as a ``View``."""
    text = [item.decode() if isinstance(item, bytes) else str(item) for item in raw]
    return View(
        now=float(text[0]),
        admitted=int(text[1]),
        seq=int(text[2]),
        wait=float(text[3]),
        interval=float(text[4]),
        pause=float(text[5]),
        pause_id=int(text[6]),
        budget_wait=float(text[7]),
        budget_active=text[8] == "1",
        untrusted=text[9] == "1",
        rate=float(text[10]) if text[10] else None,
        clients=int(text[11]),
        budget_stated=text[12] == "1",
    )


class RedisRateStore:
    """Rate-control state shared through Redis by every client on the same Redis and key id.

    Pass it as ``AsyncDialNexa(rate_store=RedisRateStore("redis://localhost:6379/0"))`` in
    every process that uses the key: they then share the server's pause, its window budget,
    the rate they learned and the ``rate_limit`` cap. Connections open on first use and close
    when the last client using the store closes (or on ``aclose()``).

    Args:
        url: a redis-py URL (``redis://``, ``rediss://`` or ``unix://``).
        namespace: the prefix of every key the store writes (default ``"dialnexa"``); give
            separate jobs on one Redis separate limits by giving them separate namespaces.
        timeout: seconds one sync may take; past it the client paces alone until Redis
            answers again.

    Raises:
        ImportError: redis-py is not installed (``pip install 'dialnexa-async[redis]'``).
        ValueError: ``timeout`` is not a positive number or ``namespace`` is empty.
    """

    def __init__(
        self, url: str, *, namespace: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        try:
            import redis.asyncio  # noqa: F401  (imported here to fail early and by name)
        except ImportError as exc:
            raise ImportError(f"RedisRateStore needs redis-py: {EXTRA_HINT}") from exc
        if not isinstance(url, str) or not url:
            raise ValueError("url must be a redis:// URL")
        if namespace is not None and (not isinstance(namespace, str) or not namespace):
            raise ValueError("namespace must be a non-empty str")
        if not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number, got {timeout!r}")
        self._url = url
        self.namespace = namespace or DEFAULT_NAMESPACE
        self.timeout = float(timeout)
        self._redis: Redis | None = None
        self._script: AsyncScript | None = None
        self._loaded = False  # the script was sent on the current connections
        self._users = 0

    def __repr__(self) -> str:
        # The URL may hold a password: it is never shown.
        return f"{type(self).__name__}(namespace={self.namespace!r})"

    def key_names(self, key_id: str) -> tuple[str, str]:
        """The state and clients keys of ``key_id``."""
        prefix = f"{self.namespace}:{{{key_id}}}"
        return f"{prefix}:state", f"{prefix}:clients"

    def _connect(self) -> AsyncScript:
        script = self._script
        if script is None:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            pool = BlockingConnectionPool.from_url(
                self._url,
                max_connections=MAX_CONNECTIONS,
                timeout=self.timeout,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                # One try: a store that does not answer at once is paced around, not retried.
                retry=Retry(NoBackoff(), 0),
            )
            self._redis = Redis.from_pool(pool)
            script = self._script = self._redis.register_script(SYNC_SCRIPT)
        return script

    async def sync(self, key_id: str, report: Report) -> View:
        """Run the script for ``key_id`` with ``report``: one round trip.

        Raises:
            RateStoreUnavailable: Redis failed or did not answer within ``timeout``.
        """
        from redis.exceptions import RedisError

        script = self._connect()
        keys = self.key_names(key_id)
        args = sync_args(report)
        # The first sync EVALs: it sends the script and caches it in one round trip, where
        # EVALSHA would cost three on a server that has not seen it yet.
        call = script(keys=list(keys), args=args) if self._loaded else self._eval(keys, args)
        try:
            raw = await asyncio.wait_for(call, self.timeout)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise RateStoreUnavailable(type(exc).__name__) from exc
        return parse_view(raw)

    async def _eval(self, keys: tuple[str, str], args: list[str]) -> Any:
        redis = self._redis
        assert redis is not None
        raw = await redis.eval(SYNC_SCRIPT, len(keys), *keys, *args)
        self._loaded = True
        return raw

    def attach(self) -> None:
        """A client starts using the store."""
        self._users += 1

    async def release(self) -> None:
        """A client stops using the store; the last to leave closes the connections."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the connections now; the next use opens new ones."""
        redis, self._redis, self._script = self._redis, None, None
        self._loaded = False
        if redis is not None:
            await redis.aclose()
