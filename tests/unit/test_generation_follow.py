"""How a follower of an answer writes its events: what is waiting as one write, runs of
deltas merged, at most one write per window, with the first and last events not held."""

from __future__ import annotations

import asyncio
import json

from parley.bus.memory import MemoryBus
from parley.chat.generation import Generation


def _generation(window_s: float) -> Generation:
    return Generation("c", "u", "q", "m", "group", "subject", MemoryBus(), window_s)


def _events(write: bytes) -> list[dict[str, object]]:
    blocks = write.decode().split("\n\n")
    return [json.loads(b.removeprefix("data: ")) for b in blocks if b]


async def _collect(generation: Generation) -> list[bytes]:
    return [write async for write in generation.follow()]


async def test_waiting_frames_go_out_as_one_write_with_the_deltas_merged() -> None:
    generation = _generation(window_s=0)
    await generation.push({"type": "start", "message_id": "m"})
    for piece in ("Hel", "lo", ", ", "world"):
        await generation.push({"type": "delta", "content": piece})
    await generation.push({"type": "model", "model": "cheaper"})
    await generation.push({"type": "delta", "content": "!"})
    generation.done = True
    await generation.push({"type": "done", "status": "complete"})

    writes = await _collect(generation)

    assert len(writes) == 1
    assert _events(writes[0]) == [
        {"type": "start", "message_id": "m"},
        {"type": "delta", "content": "Hello, world"},
        {"type": "model", "model": "cheaper"},
        {"type": "delta", "content": "!"},
        {"type": "done", "status": "complete"},
    ]


async def test_a_fast_answer_reaches_a_follower_in_few_writes_and_nothing_is_lost() -> None:
    generation = _generation(window_s=0.05)
    pieces = [f"piece {i} " for i in range(200)]

    async def produce() -> None:
        await generation.push({"type": "start", "message_id": "m"})
        for piece in pieces:
            await generation.push({"type": "delta", "content": piece})
            await asyncio.sleep(0.001)
        generation.done = True
        await generation.push({"type": "done", "status": "complete"})

    loop = asyncio.get_running_loop()
    follower = asyncio.create_task(_collect(generation))
    began = loop.time()
    await produce()
    writes = await follower
    took = loop.time() - began

    events = [e for w in writes for e in _events(w)]
    assert "".join(str(e["content"]) for e in events if e["type"] == "delta") == "".join(pieces)
    assert events[0]["type"] == "start"
    assert events[-1]["type"] == "done"
    # At most one write per 50 ms window (plus the first and the last), however long the
    # 200 deltas took to come: a handful, not 200.
    assert len(writes) <= took / 0.05 + 2


async def test_the_first_event_is_written_without_waiting_for_a_window() -> None:
    generation = _generation(window_s=3600)
    await generation.push({"type": "start", "message_id": "m"})
    follower = generation.follow()

    first = await asyncio.wait_for(anext(follower), timeout=5)

    assert _events(first) == [{"type": "start", "message_id": "m"}]
    generation.done = True
    await generation.push({"type": "done", "status": "complete"})
    # The end is not held back by the hour-long window either.
    last = await asyncio.wait_for(anext(follower), timeout=5)
    assert _events(last) == [{"type": "done", "status": "complete"}]
    await follower.aclose()
