"""The SSE response's channel: order kept, the producer held at the bound until the
consumer takes one, a cancelled wait leaves it usable, and the watcher's end marker always
gets in."""

from __future__ import annotations

import asyncio

from parley.api.sse import _Channel


async def test_items_keep_their_order_and_a_full_channel_holds_the_producer() -> None:
    channel = _Channel(maxsize=2)
    await channel.put(1)
    await channel.put(2)
    third = asyncio.create_task(channel.put(3))
    await asyncio.sleep(0)
    assert not third.done()  # held at the bound
    assert await channel.get() == 1
    await asyncio.wait_for(third, 1)
    assert [await channel.get(), await channel.get()] == [2, 3]
    assert channel.empty()


async def test_a_cancelled_get_leaves_the_channel_usable() -> None:
    channel = _Channel(maxsize=2)
    try:
        async with asyncio.timeout(0.01):
            await channel.get()
    except TimeoutError:
        pass
    waiting = asyncio.create_task(channel.get())
    await asyncio.sleep(0)
    await channel.put("next")
    assert await asyncio.wait_for(waiting, 1) == "next"


async def test_put_nowait_passes_the_bound() -> None:
    channel = _Channel(maxsize=1)
    await channel.put("chunk")
    channel.put_nowait("gone")  # the disconnect marker is never dropped
    assert [channel.get_nowait(), channel.get_nowait()] == ["chunk", "gone"]
