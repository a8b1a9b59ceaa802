"""An instance killed (SIGKILL) in the middle of a chat answer, on the tier where several
instances share PostgreSQL, Redis and NATS: its client sees the stream break, not a fake
success; another instance following the answer reports it lost and saves it as far as it
got, marked ``error``, so the conversation shows it with Retry instead of a question left
waiting; and Retry answers it. An answer nobody follows is saved as lost too, once, by
another instance's sweeper (whose user's open sessions are told), and on the embedded tier
by the same process started again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.sync.client import connect

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests.backends import NATS_URL, nats_namespace, postgres_database, redis_url, sqlite_url
from tests.e2e.test_access import ADMIN
from tests.e2e.test_auth import PASSWORD
from tests.e2e.test_multi_instance import serve_process
from tests.polling import eventually

SLOW = "m+tokens-60+chunk-delay-0.1"  # six seconds of answer


@pytest.fixture
def shared() -> Iterator[dict[str, str]]:
    pg, rd, ns = postgres_database(migrated=True), redis_url(), nats_namespace()
    yield {
        "database_url": next(pg),
        "redis_url": next(rd),
        "nats_url": NATS_URL,
        "nats_namespace": next(ns),
    }
    for gen in (ns, rd, pg):
        with pytest.raises(StopIteration):
            next(gen)


QUICK = {"chat_generation_heartbeat_seconds": "0.2", "chat_generation_stale_seconds": "1"}
"""A lost answer is noticed a second after its instance's last heartbeat."""


def _serve_process(shared: dict[str, str], config: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")},
        **{f"PARLEY_{name.upper()}": value for name, value in shared.items()},
        "PARLEY_ADMIN_KEY": ADMIN,
        "PARLEY_ALLOW_REGISTRATION": "true",
        "PARLEY_AUTO_MIGRATE": "false",
    }
    return serve_process(config, env, ready_s=60)


def _events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


def test_an_answer_whose_instance_dies_is_saved_as_lost_and_can_be_retried(
    shared: dict[str, str], fake: FakeUpstream, loop_thread: LoopThread, tmp_path: Path
) -> None:
    config = _config(tmp_path, fake)
    dep = {"provider": "openai_compatible", "model": SLOW, "api_base": f"{fake.url}/v1"}
    settings = Settings(
        admin_key=ADMIN, allow_registration=True, generation_idle_seconds=1.0, **shared
    )
    b_app = create_app(settings, models=models_from([{"name": "m", "deployments": [dep]}]))
    with (
        serve_in_thread(loop_thread, b_app) as b_url,
        httpx.Client(base_url=b_url, timeout=20) as b,
    ):
        a_proc, a_url = _serve_process(shared, config)
        try:
            me, _ = _sign_up(b)
            cid = b.post("/api/conversations", json={"model": "m"}, headers=me).json()["id"]
            message_id = _ask_and_kill(a_url, a_proc, cid, me)

            followed = _events(
                b.get(
                    f"/api/conversations/{cid}/messages/{message_id}/stream", headers=me
                ).text.splitlines()
            )
            errors = [e for e in followed if e["type"] == "error"]
            assert [e["error"]["code"] for e in errors] == ["generation_lost"]
            assert followed[-1] == {"type": "done", "status": "error", "message_id": message_id}
            text = "".join(e["content"] for e in followed if e["type"] == "delta")
            assert len(text.split()) >= 3  # what A had sent before it died

            saved = b.get(f"/api/conversations/{cid}", headers=me).json()["messages"][-1]
            assert (saved["id"], saved["role"], saved["status"]) == (
                message_id,
                "assistant",
                "error",
            )
            assert saved["content"][0]["text"] == text
            assert saved["model"] == "m"

            retried = b.post(
                f"/api/conversations/{cid}/messages/{message_id}/regenerate", json={}, headers=me
            )
            assert retried.status_code == 200, retried.text
            assert _events(retried.text.splitlines())[-1]["status"] == "complete"
        finally:
            a_proc.kill()
            a_proc.wait(10)


def _config(tmp_path: Path, fake: FakeUpstream) -> Path:
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n  - name: m\n    deployments:\n"
        f"      - {{provider: openai_compatible, model: {SLOW}, api_base: '{fake.url}/v1'}}\n"
    )
    return config


def _sign_up(client: httpx.Client) -> tuple[dict[str, str], str]:
    """Ada registered and signed in: her headers and access token."""
    client.post(
        "/auth/register", json={"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}
    ).raise_for_status()
    login = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    token = login.json()["access_token"]
    return {"authorization": f"Bearer {token}"}, token


def _ask_and_kill(url: str, proc: subprocess.Popen[bytes], cid: str, me: dict[str, str]) -> str:
    """Ask on the instance at ``url``, SIGKILL it after three deltas (nobody else follows
    the answer); the answer's id."""
    seen: list[str] = []
    with (
        httpx.Client(base_url=url, timeout=20) as a,
        a.stream(
            "POST",
            f"/api/conversations/{cid}/messages",
            json={"content": "tell me a long story"},
            headers=me,
        ) as sent,
    ):
        try:
            for line in sent.iter_lines():
                seen.append(line)
                if sum('"delta"' in x for x in seen) == 3:
                    proc.send_signal(signal.SIGKILL)  # mid-answer
        except httpx.HTTPError:
            pass
    proc.wait(10)
    started = _events(seen)
    assert not any(e["type"] == "done" for e in started)
    return str(started[0]["message_id"])


def _added(told: list[dict[str, Any]], message_id: str) -> bool:
    """Whether the tab was told the answer was saved (its ``message.added`` event)."""
    return any(
        m["type"] == "event"
        and m["event"]["type"] == "message.added"
        and m["event"]["payload"]["id"] == message_id
        for m in told
    )


def _ended(told: list[dict[str, Any]], message_id: str) -> bool:
    """Whether the tab got the answer's last frame."""
    return any(
        m["type"] == "generation" and m["message_id"] == message_id and m["frame"]["type"] == "done"
        for m in told
    )


def _last_message(client: httpx.Client, cid: str, me: dict[str, str]) -> dict[str, Any]:
    message: dict[str, Any] = client.get(f"/api/conversations/{cid}", headers=me).json()[
        "messages"
    ][-1]
    return message


def _saved_once(database_url: str, message_id: str) -> tuple[int, int, int]:
    """(messages, ``message.added`` events, running records) for the answer."""

    async def count() -> tuple[int, int, int]:
        conn = await asyncpg.connect(database_url)
        try:
            saved = await conn.fetchval("SELECT count(*) FROM messages WHERE id = $1", message_id)
            added = await conn.fetchval(
                "SELECT count(*) FROM events WHERE type = 'message.added' "
                "AND payload::jsonb ->> 'id' = $1",
                message_id,
            )
            left = await conn.fetchval("SELECT count(*) FROM running_generations")
        finally:
            await conn.close()
        return saved, added, left

    return asyncio.run(count())


def test_an_answer_nobody_follows_is_saved_as_lost_once_by_another_instance(
    shared: dict[str, str], fake: FakeUpstream, loop_thread: LoopThread, tmp_path: Path
) -> None:
    config = _config(tmp_path, fake)
    dep = {"provider": "openai_compatible", "model": SLOW, "api_base": f"{fake.url}/v1"}
    settings = Settings(
        admin_key=ADMIN,
        allow_registration=True,
        chat_generation_heartbeat_seconds=0.2,
        chat_generation_stale_seconds=1.0,
        **shared,
    )
    b_app = create_app(settings, models=models_from([{"name": "m", "deployments": [dep]}]))
    with (
        serve_in_thread(loop_thread, b_app) as b_url,
        httpx.Client(base_url=b_url, timeout=20) as b,
    ):
        a_proc, a_url = _serve_process({**shared, **QUICK}, config)
        try:
            me, token = _sign_up(b)
            cid = b.post("/api/conversations", json={"model": "m"}, headers=me).json()["id"]
            with connect(
                b_url.replace("http://", "ws://") + "/api/ws",
                additional_headers={"authorization": f"Bearer {token}"},
            ) as tab:  # an open tab of Ada's, on B
                assert json.loads(tab.recv(timeout=10))["type"] == "ready"
                message_id = _ask_and_kill(a_url, a_proc, cid, me)
                told: list[dict[str, Any]] = []
                while not (_added(told, message_id) and _ended(told, message_id)):
                    told.append(json.loads(tab.recv(timeout=20)))
            frames = [
                m["frame"]
                for m in told
                if m["type"] == "generation"
                and m["message_id"] == message_id
                and m["frame"]["type"] in ("error", "done")
            ]
            assert frames == [
                {"type": "error", "error": frames[0]["error"]},
                {
                    "type": "done",
                    "status": "error",
                    "user_message_id": frames[1]["user_message_id"],
                    "message_id": message_id,
                },
            ]
            assert frames[0]["error"]["code"] == "generation_lost"
            saved = _last_message(b, cid, me)
            assert (saved["id"], saved["role"], saved["status"]) == (
                message_id,
                "assistant",
                "error",
            )
            assert len(saved["content"][0]["text"].split()) >= 3  # what A had sent (NATS kept it)
            assert _saved_once(shared["database_url"], message_id) == (1, 1, 0)
        finally:
            a_proc.kill()
            a_proc.wait(10)


def test_the_embedded_tier_started_again_saves_the_answer_its_previous_life_lost(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    config = _config(tmp_path, fake)
    database = sqlite_url(tmp_path)
    first, url = _serve_process({"database_url": database, **QUICK}, config)
    try:
        with httpx.Client(base_url=url, timeout=20) as client:
            me, _ = _sign_up(client)
            cid = client.post("/api/conversations", json={"model": "m"}, headers=me).json()["id"]
        message_id = _ask_and_kill(url, first, cid, me)
    finally:
        first.kill()
        first.wait(10)
    again, url = _serve_process({"database_url": database, **QUICK}, config)
    try:
        with httpx.Client(base_url=url, timeout=20) as client:
            eventually(lambda: _last_message(client, cid, me)["id"] == message_id, attempts=400)
            saved = _last_message(client, cid, me)
            assert (saved["role"], saved["status"], saved["model"]) == ("assistant", "error", "m")
    finally:
        again.kill()
        again.wait(10)
