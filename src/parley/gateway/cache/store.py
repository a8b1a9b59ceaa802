"""The exact response cache: L1 in process (bounded by bytes and entries, TTL, LRU) in front
of an optional shared L2 (``state.ResponseStore``, Redis). Reads try L1 then L2 (an L2 hit
warms L1); writes go to both.

A cache must never fail a request: an L2 error is a miss (logged and counted), and an
answer too large to keep is simply not kept.

Single flight: the first of several concurrent identical misses leads (calls upstream); the
others wait, bounded, for its answer. If the leader fails, one of them leads next.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

import msgspec

from parley.errors import ParleyError
from parley.gateway.cache.keys import CachePlan, within
from parley.observability.logging import get_logger
from parley.observability.metrics import Metrics
from parley.schema.chat import ChatCompletion
from parley.state import ResponseStore

if TYPE_CHECKING:  # numpy loads only where a group uses the semantic cache
    from parley.gateway.cache.semantic import SemanticCache

log = get_logger(__name__)


class CachedAnswer(msgspec.Struct, array_like=True):
    created_ms: int
    expires_ms: int
    completion: ChatCompletion


encode_answer = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(CachedAnswer).decode


def _now_ms() -> int:
    return int(time.time() * 1000)


class MemoryLRU:
    """Encoded answers by address; least recently used leave first when either bound is hit."""

    def __init__(self, *, max_bytes: int, max_entries: int) -> None:
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._items: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, address: str, now_ms: int) -> bytes | None:
        found = self._items.get(address)
        if found is None:
            return None
        data, expires_ms = found
        if expires_ms <= now_ms:
            self._remove(address)
            return None
        self._items.move_to_end(address)
        return data

    def put(self, address: str, data: bytes, expires_ms: int) -> None:
        if len(data) > self._max_bytes or self._max_entries == 0:
            return
        self._remove(address)
        self._items[address] = (data, expires_ms)
        self.bytes += len(data)
        while self.bytes > self._max_bytes or len(self._items) > self._max_entries:
            _, (old, _) = self._items.popitem(last=False)
            self.bytes -= len(old)

    def drop(self, namespace: str | None, group: str | None) -> int:
        doomed = [a for a in self._items if _matches(a, namespace, group)]
        for address in doomed:
            self._remove(address)
        return len(doomed)

    def _remove(self, address: str) -> None:
        found = self._items.pop(address, None)
        if found is not None:
            self.bytes -= len(found[0])


def _matches(address: str, namespace: str | None, quoted_group: str | None) -> bool:
    ns, group, _ = address.split(":", 2)
    if quoted_group is not None and group != quoted_group:
        return False
    return within(ns, namespace)


@dataclass(slots=True)
class Flight:
    """Held by the request that leads an upstream call for an address."""

    address: str
    future: asyncio.Future[bytes | None]


class ResponseCache:
    def __init__(
        self,
        metrics: Metrics,
        *,
        max_bytes: int,
        max_entries: int,
        max_entry_bytes: int,
        flight_wait_s: float,
        shared: ResponseStore | None = None,
        semantic: SemanticCache | None = None,
    ) -> None:
        self.memory = MemoryLRU(max_bytes=max_bytes, max_entries=max_entries)
        self.shared = shared
        self.semantic = semantic
        self._metrics = metrics
        self._max_entry = max_entry_bytes
        self._flight_wait = flight_wait_s
        self._flights: dict[str, asyncio.Future[bytes | None]] = {}

    async def get(self, plan: CachePlan) -> CachedAnswer | None:
        if not plan.read:
            return None
        return await self.at(plan.address, plan.max_age_s)

    async def at(self, address: str, max_age_s: float | None = None) -> CachedAnswer | None:
        """The answer stored under ``address`` (L1, else L2, which warms L1), if fresh."""
        now = _now_ms()
        data = self.memory.get(address, now)
        if data is not None:
            return self._fresh(_decode(data), max_age_s, now)
        if self.shared is None:
            return None
        data = await self._shared_get(address)
        if data is None:
            return None
        answer = _decode(data)
        self.memory.put(address, data, answer.expires_ms)
        return self._fresh(answer, max_age_s, now)

    @staticmethod
    def _fresh(answer: CachedAnswer, max_age_s: float | None, now: int) -> CachedAnswer | None:
        if answer.expires_ms <= now:
            return None
        if max_age_s is not None and now - answer.created_ms > max_age_s * 1000:
            return None
        return answer

    async def _shared_get(self, address: str) -> bytes | None:
        assert self.shared is not None
        try:
            return await self.shared.get(address)
        except ParleyError as exc:
            self._metrics.cache_stores.labels("read_error").inc()
            log.warning("shared cache unreadable; treating as a miss", error=exc.message)
            return None

    async def put(self, plan: CachePlan, completion: ChatCompletion) -> bytes | None:
        """Store an answer; returns its encoding (for waiting followers) or None."""
        if not plan.store:
            return None
        now = _now_ms()
        expires = now + int(plan.ttl_s * 1000)
        data = encode_answer(CachedAnswer(now, expires, completion))
        if len(data) > self._max_entry:
            self._metrics.cache_stores.labels("too_large").inc()
            return None
        self.memory.put(plan.address, data, expires)
        if self.shared is not None:
            try:
                await self.shared.put(plan.address, data, expires - now)
            except ParleyError as exc:
                self._metrics.cache_stores.labels("write_error").inc()
                log.warning("shared cache unwritable; kept in memory only", error=exc.message)
                return data
        self._metrics.cache_stores.labels("stored").inc()
        return data

    async def join(self, plan: CachePlan) -> CachedAnswer | Flight | None:
        """Lead the upstream call for this address (a ``Flight``: ``land`` it when done),
        or wait for the one already under way and return its answer. None: waited long
        enough (or the plan cannot share); call upstream without leading."""
        if not (plan.read and plan.store):
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._flight_wait
        while True:
            future = self._flights.get(plan.address)
            if future is None:
                # A leader may have landed while this request awaited L2 (or the semantic
                # index) after its L1 miss: its answer is in L1 now, and calling upstream
                # again would be the duplicate that single flight exists to prevent.
                landed = self._landed(plan)
                if landed is not None:
                    return landed
                future = self._flights[plan.address] = loop.create_future()
                return Flight(plan.address, future)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                data = await asyncio.wait_for(asyncio.shield(future), remaining)
            except TimeoutError:
                return None
            if data is not None:
                return self._fresh(_decode(data), plan.max_age_s, _now_ms())
            # The leader failed: loop, and one of the waiters leads next.

    def _landed(self, plan: CachePlan) -> CachedAnswer | None:
        """A fresh answer in L1 (no await: nothing can land between this and leading)."""
        now = _now_ms()
        data = self.memory.get(plan.address, now)
        return None if data is None else self._fresh(_decode(data), plan.max_age_s, now)

    def land(self, flight: Flight, data: bytes | None) -> None:
        """End a flight: waiters get ``data`` (None: the leader failed or did not store)."""
        if self._flights.get(flight.address) is flight.future:
            del self._flights[flight.address]
        if not flight.future.done():
            flight.future.set_result(data)

    async def invalidate(self, namespace: str | None, group: str | None) -> int:
        """Drop entries here and in the shared tier (which tells the other instances)."""
        quoted = quote(group, safe="") if group is not None else None
        dropped = self.memory.drop(namespace, quoted)
        if self.semantic is not None:
            await self.semantic.drop(namespace, group)
        if self.shared is not None:
            dropped = max(dropped, await self.shared.drop(namespace, quoted))
        return dropped

    def apply_invalidation(self, namespace: str | None, quoted_group: str | None) -> None:
        """Another instance's invalidation (``ResponseStore.listen`` calls this)."""
        self.memory.drop(namespace, quoted_group)
        if self.semantic is not None:
            group = unquote(quoted_group) if quoted_group is not None else None
            self.semantic.index.drop_local(namespace, group)
