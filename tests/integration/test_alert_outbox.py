"""The alert outbox: one row per threshold and period whichever instance sees it, retried
with backoff until it is marked failed."""

from __future__ import annotations

from pathlib import Path

from parley.gateway.accounting.alerts import BudgetAlerts
from parley.gateway.accounting.caller import Limits, Principal
from parley.store import alerts as store
from parley.store.db import Database
from parley.store.migrate import upgrade


async def test_a_receiver_that_never_answers_is_retried_with_backoff_then_failed(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/a.db")
    await upgrade(db)
    alerts = BudgetAlerts(
        db, url="http://127.0.0.1:9/hook", secret="x", backoff_base_s=0.0, max_attempts=3
    )
    holder = Principal("model", "g", Limits(budget_nusd=100, alert_thresholds=(50.0, 100.0)))
    alerts.observe(holder, "d2026-12-02", 60, 100)  # 60%: the 50% threshold only
    alerts.observe(holder, "d2026-12-02", 70, 100)  # already queued by this instance
    for task in list(alerts._tasks):
        await task
    other = BudgetAlerts(db, url="http://127.0.0.1:9/hook", secret="x")
    other.observe(holder, "d2026-12-02", 65, 100)  # another instance: deduplicated by the row
    for task in list(other._tasks):
        await task
    for _ in range(3):
        assert await alerts.send_due() == 1
    assert await alerts.send_due() == 0
    (row,) = await store.list_deliveries(db)
    assert row["id"] == "model:g:d2026-12-02:50"
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert row["last_error"]
    await alerts.stop()
    await other.stop()
    await db.close()
