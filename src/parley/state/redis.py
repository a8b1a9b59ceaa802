"""Redis shared state: every read-modify-write is one Lua script (atomic on the server),
timed by the Redis clock so instances with skewed clocks still agree on windows.

redis-py exceptions are translated to ``StateError`` here; nothing from redis leaks above.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import msgspec
from redis import asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from parley.errors import StateError
from parley.observability import tracing
from parley.state.base import (
    WINDOW_BUCKETS,
    Absent,
    BreakerApply,
    Check,
    Invalidate,
    Settle,
    Slot,
    Spend,
    Verdict,
    Window,
)
from parley.state.keys import (
    BREAKER_CHANNEL,
    CACHE_CHANNEL,
    USAGE_GROUP,
    USAGE_STREAM,
    breaker,
    cache_entry,
    cache_patterns,
)

# ARGV per check: kind, limit, cost, param (window: bucket ms; slot: ttl ms; spend: unused)
# and member (slot lease). Returns {allowed, failed, retry_ms, then per check: remaining,
# reset_ms, bucket, uninitialised}.
_ADMIT = f"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nb = {WINDOW_BUCKETS}
local allowed, failed, retry = 1, 0, 0
local out, uninit, charge = {{}}, false, {{}}
for i = 1, #KEYS do
  local a = (i - 1) * 5
  local kind, limit, cost = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local param, member = tonumber(ARGV[a + 4]), ARGV[a + 5]
  local key = KEYS[i]
  local remaining, reset, bucket, missing = 0, 0, 0, 0
  if kind == 'w' then
    bucket = math.floor(now / param)
    local oldest = bucket - nb + 1
    local flat = redis.call('HGETALL', key)
    local used, live, newest = 0, {{}}, nil
    for j = 1, #flat, 2 do
      local b, c = tonumber(flat[j]), tonumber(flat[j + 1])
      if b < oldest then
        redis.call('HDEL', key, flat[j])
      else
        used = used + c
        table.insert(live, {{b, c}})
        if newest == nil or b > newest then newest = b end
      end
    end
    remaining = limit - used - cost
    if newest ~= nil then reset = math.max(0, (newest + nb) * param - now) end
    if remaining < 0 and allowed == 1 then
      allowed, failed = 0, i
      table.sort(live, function(x, y) return x[1] < y[1] end)
      retry = nb * param
      local freed = 0
      for _, bc in ipairs(live) do
        freed = freed + bc[2]
        if used - freed + cost <= limit then
          retry = math.max(0, (bc[1] + nb) * param - now)
          break
        end
      end
    end
  elseif kind == 's' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    remaining = limit - redis.call('ZCARD', key) - 1
    if remaining < 0 and allowed == 1 then allowed, failed, retry = 0, i, 1000 end
  elseif kind == 'b' then
    local v = redis.call('GET', key)
    if not v then
      missing, uninit = 1, true
    else
      remaining = limit - tonumber(v) - cost
      if remaining < 0 and allowed == 1 then
        allowed, failed = 0, i
        retry = math.max(0, redis.call('PTTL', key))
      end
    end
  else
    if redis.call('EXISTS', key) == 1 and allowed == 1 then allowed, failed = 0, i end
  end
  charge[i] = bucket
  table.insert(out, remaining)
  table.insert(out, reset)
  table.insert(out, bucket)
  table.insert(out, missing)
end
if uninit then allowed = 0 end
if allowed == 1 then
  for i = 1, #KEYS do
    local a = (i - 1) * 5
    local kind, cost, param = ARGV[a + 1], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    local key = KEYS[i]
    if kind == 'w' then
      redis.call('HINCRBY', key, charge[i], cost)
      redis.call('PEXPIRE', key, (nb + 1) * param)
    elseif kind == 's' then
      redis.call('ZADD', key, now + param, ARGV[a + 5])
      if redis.call('PTTL', key) < param then redis.call('PEXPIRE', key, param) end
    elseif kind == 'b' then
      redis.call('INCRBY', key, cost)
    end
  end
end
local result = {{allowed, failed, retry}}
for _, v in ipairs(out) do table.insert(result, v) end
return result
"""

# KEYS: the keys to settle. ARGV per key: mode (w | b | s), delta, bucket or lease.
_SETTLE = """
for i = 1, #KEYS do
  local a = (i - 1) * 3
  local mode, delta, arg = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  local key = KEYS[i]
  if mode == 's' then
    redis.call('ZREM', key, arg)
  elseif mode == 'w' then
    if redis.call('HEXISTS', key, arg) == 1 then
      local v = redis.call('HINCRBY', key, arg, delta)
      if v < 0 then redis.call('HSET', key, arg, 0) end
    end
  elseif redis.call('EXISTS', key) == 1 then
    redis.call('INCRBY', key, delta)
  end
end
return 0
"""

# KEYS[1]: failure hash. ARGV: forget ms, threshold, base ms, cap ms. Returns lock ms.
_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local threshold = tonumber(ARGV[2])
if count < threshold then return 0 end
local wait = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ (count - threshold))
redis.call('HSET', KEYS[1], 'until', now + wait)
return wait
"""

_LOCKED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local u = redis.call('HGET', KEYS[1], 'until')
if not u then return 0 end
return math.max(0, tonumber(u) - now)
"""


@contextlib.asynccontextmanager
async def _mapped(operation: str = "redis") -> AsyncIterator[None]:
    """Redis errors as Parley's; with tracing on, each call is a span named ``operation``."""
    if tracing.ON:
        with tracing.span(operation, {"db.system.name": "redis", "db.operation.name": operation}):
            async with _errors_mapped():
                yield
        return
    async with _errors_mapped():
        yield


@contextlib.asynccontextmanager
async def _errors_mapped() -> AsyncIterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StateError(f"shared state unavailable: {type(exc).__name__}") from exc


class RedisState:
    name = "redis"

    def __init__(self, url: str) -> None:
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
        )
        self._admit = self.client.register_script(_ADMIT)
        self._settle = self.client.register_script(_SETTLE)
        self._failure = self.client.register_script(_FAILURE)
        self._locked = self.client.register_script(_LOCKED)

    def pool_use(self) -> tuple[int, int]:
        """(in use, idle) connections of the client's pool. redis-py keeps no public
        count, so this reads its pool's two collections (present since redis-py 4)."""
        pool = self.client.connection_pool
        in_use = len(getattr(pool, "_in_use_connections", ()))
        idle = len(getattr(pool, "_available_connections", ()))
        return in_use, idle

    async def admit(self, checks: Sequence[Check]) -> Verdict:
        keys: list[str] = []
        args: list[Any] = []
        for check in checks:
            keys.append(check.key)
            if isinstance(check, Window):
                args += ["w", check.limit, check.cost, check.bucket_ms, ""]
            elif isinstance(check, Slot):
                args += ["s", check.limit, 0, int(check.ttl_s * 1000), check.lease]
            elif isinstance(check, Spend):
                args += ["b", check.limit, check.cost, 0, ""]
            elif isinstance(check, Absent):
                args += ["a", 0, 0, 0, ""]
        async with _mapped("redis admit"):
            raw = await self._admit(keys=keys, args=args)
        allowed, failed, retry_ms = (int(v) for v in raw[:3])
        verdict = Verdict(
            allowed=bool(allowed),
            failed=failed - 1 if failed else None,
            retry_after=retry_ms / 1000,
        )
        for index in range(len(checks)):
            remaining, reset_ms, bucket, missing = (
                int(v) for v in raw[3 + index * 4 : 7 + index * 4]
            )
            verdict.remaining.append(remaining)
            verdict.reset.append(reset_ms / 1000)
            verdict.buckets.append(bucket)
            if missing:
                verdict.uninitialised.append(index)
        return verdict

    async def settle(self, items: Sequence[Settle]) -> None:
        if not items:
            return
        keys: list[str] = []
        args: list[Any] = []
        for item in items:
            keys.append(item.key)
            if item.lease is not None:
                args += ["s", 0, item.lease]
            elif item.bucket is not None:
                args += ["w", item.delta, item.bucket]
            else:
                args += ["b", item.delta, ""]
        async with _mapped("redis settle"):
            await self._settle(keys=keys, args=args)

    async def init_spend(self, key: str, value: int, ttl_s: int) -> None:
        async with _mapped("redis init_spend"):
            await self.client.set(key, value, ex=ttl_s, nx=True)

    async def get_spend(self, key: str) -> int | None:
        async with _mapped("redis get_spend"):
            value = await self.client.get(key)
        return None if value is None else int(value)

    async def set_flag(self, key: str, ttl_s: float) -> None:
        async with _mapped("redis set_flag"):
            await self.client.set(key, 1, px=max(1, int(ttl_s * 1000)))

    async def has_flag(self, key: str) -> bool:
        async with _mapped("redis has_flag"):
            return bool(await self.client.exists(key))

    async def take_flag(self, key: str) -> bool:
        async with _mapped():  # DEL answers how many it removed: one caller sees 1
            return bool(await self.client.delete(key))

    async def touch(self, key: str, ttl_s: float) -> bool:
        async with _mapped():
            return bool(await self.client.pexpire(key, max(1, int(ttl_s * 1000))))

    async def record_failure(
        self, key: str, *, forget_s: float, threshold: int, base_s: float, cap_s: float
    ) -> float:
        args = [int(forget_s * 1000), threshold, int(base_s * 1000), int(cap_s * 1000)]
        async with _mapped("redis record_failure"):
            wait_ms = await self._failure(keys=[key], args=args)
        return int(wait_ms) / 1000

    async def locked_for(self, key: str) -> float:
        async with _mapped("redis locked_for"):
            wait_ms = await self._locked(keys=[key])
        return int(wait_ms) / 1000

    async def failure_count(self, key: str) -> int:
        async with _mapped("redis failure_count"):
            count = await self.client.hget(key, "count")
        return int(count) if count is not None else 0

    async def clear(self, key: str) -> None:
        async with _mapped("redis clear"):
            await self.client.delete(key)

    async def ping(self) -> str | None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            return f"redis unreachable: {type(exc).__name__}"
        return None

    async def close(self) -> None:
        await self.client.aclose()


class RedisUsageStream:
    """The usage queue as a Redis stream with one consumer group shared by all instances.

    ``take`` first claims entries another consumer read but never acknowledged for
    ``claim_idle_s`` (its instance died mid-write), then reads new ones. ``ack`` removes
    entries once written, so the stream only holds what is not yet in SQL.
    """

    def __init__(self, state: RedisState, consumer: str, *, claim_idle_s: float = 30.0) -> None:
        self._client = state.client
        self._consumer = consumer
        self._claim_idle_ms = int(claim_idle_s * 1000)
        self._group_ready = False
        self._own_pending = False
        """Set when a write failed: read this consumer's own unacknowledged entries again
        first, at once, instead of leaving them to be claimed after ``claim_idle_s``."""

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._client.xgroup_create(USAGE_STREAM, USAGE_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def put(self, data: bytes) -> int:
        async with _mapped("redis put"):
            await self._client.xadd(USAGE_STREAM, {"r": data})
        return 0  # unbounded: Redis's own memory limit is the bound

    async def backlog(self) -> int:
        """The stream's length: written entries are deleted on ``ack``."""
        async with _mapped("redis backlog"):
            return int(await self._client.xlen(USAGE_STREAM))

    async def take(self, max_items: int, wait_s: float) -> list[tuple[str, bytes]]:
        async with _mapped("redis take"):
            try:
                entries = await self._take(max_items, wait_s)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._group_ready = False  # Redis lost the group (flushed, restarted)
                entries = await self._take(max_items, wait_s)
        return [(_text(ident), fields[b"r"]) for ident, fields in entries]

    async def _take(self, max_items: int, wait_s: float) -> list[Any]:
        await self._ensure_group()
        if self._own_pending:
            mine: Any = await self._client.xreadgroup(
                USAGE_GROUP, self._consumer, {USAGE_STREAM: "0"}, count=max_items
            )
            entries = [e for e in _stream_entries(mine) if e[1]]
            if entries:
                return entries
            self._own_pending = False
        claimed = await self._client.xautoclaim(
            USAGE_STREAM,
            USAGE_GROUP,
            self._consumer,
            min_idle_time=self._claim_idle_ms,
            start_id="0-0",
            count=max_items,
        )
        entries = [e for e in claimed[1] if e[1]]
        if entries:
            return entries
        block = int(min(wait_s, 1.5) * 1000) or None
        reply: Any = await self._client.xreadgroup(
            USAGE_GROUP, self._consumer, {USAGE_STREAM: ">"}, count=max_items, block=block
        )
        return _stream_entries(reply)

    def requeue(self) -> None:
        """Unacknowledged entries stay pending in the group; this consumer takes its own
        again on its next ``take`` (another instance would claim them after
        ``claim_idle_s`` were this one to die)."""
        self._own_pending = True

    async def ack(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        async with _mapped("redis ack"), self._client.pipeline(transaction=True) as pipe:
            pipe.xack(USAGE_STREAM, USAGE_GROUP, *ids)
            pipe.xdel(USAGE_STREAM, *ids)
            await pipe.execute()


def _stream_entries(reply: Any) -> list[Any]:
    """XREAD(GROUP)'s reply: ``[[stream, entries]]`` in RESP2, ``{stream: entries}`` in RESP3."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values())))
    return list(reply[0][1])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBreakerSync:
    """Breaker transitions over pub/sub, plus a key per open breaker (expiring with its
    cooldown) so an instance that starts late learns what is open right now."""

    def __init__(self, state: RedisState, instance: str) -> None:
        self._client = state.client
        self._instance = instance

    async def publish(self, label: str, state: str, seconds: float) -> None:
        message = msgspec.json.encode({"i": self._instance, "d": label, "s": state, "t": seconds})
        async with _mapped("redis publish"), self._client.pipeline(transaction=False) as pipe:
            if state == "open":
                pipe.set(breaker(label), 1, px=max(1, int(seconds * 1000)))
            else:
                pipe.delete(breaker(label))
            pipe.publish(BREAKER_CHANNEL, message)
            await pipe.execute()

    async def open_now(self, labels: Sequence[str]) -> dict[str, float]:
        if not labels:
            return {}
        async with _mapped("redis open_now"), self._client.pipeline(transaction=False) as pipe:
            for label in labels:
                pipe.pttl(breaker(label))
            ttls = await pipe.execute()
        return {label: ttl / 1000 for label, ttl in zip(labels, ttls, strict=True) if ttl > 0}

    async def listen(self, apply: BreakerApply) -> None:
        def on_message(data: dict[str, Any]) -> None:
            apply(str(data["d"]), str(data["s"]), float(data["t"]))

        await _listen(self._client, BREAKER_CHANNEL, self._instance, on_message)


class RedisResponseStore:
    """Cached answers as plain keys with a TTL; invalidations are SCAN + UNLINK here and a
    pub/sub message so every instance drops its in-process copies too."""

    def __init__(self, state: RedisState, instance: str) -> None:
        self._client = state.client
        self._instance = instance

    async def get(self, address: str) -> bytes | None:
        async with _mapped("redis get"):
            data = await self._client.get(cache_entry(address))
        return data if isinstance(data, bytes) or data is None else data.encode()

    async def put(self, address: str, data: bytes, ttl_ms: int) -> None:
        async with _mapped("redis put"):
            await self._client.set(cache_entry(address), data, px=max(1, ttl_ms))

    async def drop(self, namespace: str | None, group: str | None) -> int:
        dropped = 0
        async with _mapped("redis drop"):
            for pattern in cache_patterns(namespace, group):
                batch: list[bytes] = []
                async for key in self._client.scan_iter(match=pattern, count=500):
                    batch.append(key)
                    if len(batch) >= 500:
                        dropped += await self._client.unlink(*batch)
                        batch.clear()
                if batch:
                    dropped += await self._client.unlink(*batch)
            message = {"i": self._instance, "n": namespace, "g": group}
            await self._client.publish(CACHE_CHANNEL, msgspec.json.encode(message))
        return dropped

    async def listen(self, apply: Invalidate) -> None:
        def on_message(data: dict[str, Any]) -> None:
            apply(data.get("n"), data.get("g"))

        await _listen(self._client, CACHE_CHANNEL, self._instance, on_message)


class RedisSharedEntries:
    """A capped Redis stream: appended with XADD (MAXLEN ~ ``max_entries``), read from the
    start by each instance as it starts, then followed with blocking XREAD."""

    def __init__(self, state: RedisState, key: str, *, max_entries: int) -> None:
        self._client = state.client
        self._key = key
        self._max = max_entries
        self._last = "0-0"

    async def append(self, data: bytes) -> None:
        async with _mapped("redis append"):
            await self._client.xadd(self._key, {"e": data}, maxlen=self._max, approximate=True)

    async def follow(self, apply: Callable[[bytes], None]) -> None:
        """Resumes after the last entry applied when called again (after a Redis error)."""
        async with _errors_mapped():
            while True:  # BLOCK answers at once while entries newer than _last exist
                reply = await self._client.xread({self._key: self._last}, count=500, block=1_000)
                for entry_id, fields in _stream_entries(reply):
                    self._last = _text(entry_id)
                    apply(fields[b"e"])


async def _listen(
    client: aioredis.Redis,
    channel: str,
    instance: str,
    on_message: Callable[[dict[str, Any]], None],
) -> None:
    """Follow a channel until cancelled, skipping this instance's own messages and any
    message that is not a JSON object from Parley."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        async with _errors_mapped():
            await pubsub.subscribe(channel)
            async for message in pubsub.listen():
                try:
                    data = msgspec.json.decode(message["data"])
                    if data.get("i") != instance:
                        on_message(data)
                except (msgspec.DecodeError, TypeError, KeyError, AttributeError, ValueError):
                    continue
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
