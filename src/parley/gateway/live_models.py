"""Keep this instance's model groups equal to the model file plus the database.

A change is announced on the bus (``Subjects.models``); on hearing it, and every
``poll_s`` in case a message was missed (NATS core delivery is at most once; the embedded
tier's instances share only their database), the instance reads the newest revision id and,
when it moved, reloads the stored groups and swaps them into the gateway in one step
(``Gateway.swap``). Reloads are serialised and coalesced: a burst of changes costs one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from parley.bus.base import Subscription
from parley.errors import ParleyError
from parley.gateway.catalog import ModelCatalog
from parley.gateway.pipeline import Gateway
from parley.observability.logging import get_logger
from parley.store.model_groups import latest_change

log = get_logger(__name__)


class LiveModels:
    def __init__(
        self,
        catalog: ModelCatalog,
        gateway: Gateway,
        *,
        poll_s: float = 30.0,
        swapped: Callable[[], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self._gateway = gateway
        self._poll_s = poll_s
        self._swapped = swapped
        self._lock = asyncio.Lock()
        self._seen: int | None = None
        self._wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None
        self.reloads = 0

    async def start(self) -> None:
        """Load the stored groups now, then follow changes."""
        await self.refresh(force=True)
        bus = self.catalog.bus
        if bus is not None:
            try:
                self._subscription = await bus.subscribe(
                    self.catalog.subjects.models, lambda _s, _d: self._wanted.set()
                )
            except ParleyError as exc:
                log.warning("model changes not followed on the bus; polling", error=exc.message)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._follow(), name="parley-models-follow"),
            loop.create_task(self._poll(), name="parley-models-poll"),
        ]

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload if the database changed since the last load; True when it swapped."""
        async with self._lock:
            newest = await latest_change(self.catalog.db)
            if not force and newest == self._seen:
                return False
            groups = await self.catalog.load()
            self._gateway.swap([*self.catalog.file.groups, *groups])
            self._seen = newest
            self.reloads += 1
        log.info("model groups loaded", stored=[g.name for g in groups], revision=newest)
        if self._swapped is not None:
            self._swapped()
        return True

    async def _safely(self) -> None:
        try:
            await self.refresh()
        except ParleyError as exc:
            log.warning("could not reload model groups", error=exc.message)

    async def _follow(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self._safely()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            await self._safely()

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
