"""Group commit (``store/group_commit.py``) and the stored-response archive on top of it:
concurrent saves share transactions, each caller returns only once its row is committed,
and one failing row fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from parley.errors import Conflict, StoreError
from parley.store.db import Database
from parley.store.group_commit import GroupCommit
from parley.store.responses import ResponseArchive
from parley.store.tables import metadata


async def test_concurrent_rows_share_batches_and_each_caller_waits_for_its_commit() -> None:
    batches: list[list[int]] = []
    committed: set[int] = set()
    gate = asyncio.Event()

    async def write(rows: list[int]) -> None:
        batches.append(rows)
        await gate.wait()
        committed.update(rows)

    group: GroupCommit[int] = GroupCommit(write)

    async def save(row: int) -> bool:
        await group.submit(row)
        return row in committed  # read-after-write: committed before submit returns

    tasks = [asyncio.create_task(save(i)) for i in range(10)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert batches == [list(range(10))]  # all ten arrived in the same loop turn
    assert not any(t.done() for t in tasks)
    gate.set()
    assert await asyncio.gather(*tasks) == [True] * 10
    # rows arriving while a batch is in flight form the next batch together
    gate.clear()
    first = asyncio.create_task(save(100))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.create_task(save(i)) for i in (101, 102, 103)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(first, *later) == [True] * 4
    assert batches[1:] == [[100], [101, 102, 103]]


async def test_a_failing_row_fails_alone() -> None:
    async def write(rows: list[int]) -> None:
        if 13 in rows:
            raise StoreError("database error: IntegrityError")

    group: GroupCommit[int] = GroupCommit(write)
    results = await asyncio.gather(*(group.submit(i) for i in (12, 13, 14)), return_exceptions=True)
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], StoreError)


async def test_batches_are_bounded() -> None:
    sizes: list[int] = []

    async def write(rows: list[int]) -> None:
        sizes.append(len(rows))

    group: GroupCommit[int] = GroupCommit(write, max_batch=4)
    await asyncio.gather(*(group.submit(i) for i in range(10)))
    assert sizes == [4, 4, 2]


@pytest.mark.parametrize("concurrency", [1, 50])
async def test_saved_responses_are_readable_as_soon_as_save_returns(
    tmp_path: Path, concurrency: int
) -> None:
    """On a SQLite file saves go through the dedicated writer connection; a read on the
    engine's own connection sees each row the moment its save returns."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/parley.db")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    archive = ResponseArchive(db, keep_seconds=3600)

    async def save_then_read(i: int) -> bool:
        response = {"id": f"resp_{i}", "status": "completed", "output": []}
        await archive.save("key:k", response, [{"type": "message", "content": str(i)}])
        stored = await archive.get("key:k", f"resp_{i}")
        return stored is not None and stored.input_items[0]["content"] == str(i)

    try:
        found = await asyncio.gather(*(save_then_read(i) for i in range(concurrency)))
        assert found == [True] * concurrency
        with pytest.raises(Conflict):  # a duplicate id: mapped as the engine path maps it
            await archive.save("key:k", {"id": "resp_0"}, [])
    finally:
        await db.close()


async def test_a_save_waits_for_another_writers_lock_instead_of_failing(tmp_path: Path) -> None:
    """The inline attempt never waits for the lock: with it taken (here by another
    connection, as another process would) the batch goes to the writer thread, which
    waits, and the save returns once its row is committed."""
    path = tmp_path / "parley.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    archive = ResponseArchive(db, keep_seconds=3600)
    await archive.save("key:k", {"id": "resp_before"}, [])  # opens the inline connection
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        saving = asyncio.create_task(archive.save("key:k", {"id": "resp_locked"}, []))
        await asyncio.sleep(0.2)
        assert not saving.done()  # waiting in the thread, not failed
        other.execute("COMMIT")
        await saving
        assert await archive.get("key:k", "resp_locked") is not None
    finally:
        other.close()
        await db.close()
