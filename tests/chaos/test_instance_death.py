"""An instance killed (SIGKILL) in the middle of a chat answer, on the tier where several
instances share PostgreSQL, Redis and NATS: its client sees the stream break, not a fake
success; another instance following the answer reports it lost and saves it as far as it
got, marked ``error``, so the conversation shows it with Retry instead of a question left
waiting; and Retry answers it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.app import create_app
from parley.config import Settings
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests.backends import NATS_URL, nats_namespace, postgres_database, redis_url
from tests.e2e.test_access import ADMIN
from tests.e2e.test_auth import PASSWORD
from tests.e2e.test_multi_instance import serve_process

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
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n  - name: m\n    deployments:\n"
        f"      - {{provider: openai_compatible, model: {SLOW}, api_base: '{fake.url}/v1'}}\n"
    )
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
            b.post(
                "/auth/register",
                json={"email": "ada@example.com", "password": PASSWORD, "name": "Ada"},
            ).raise_for_status()
            login = b.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
            me = {"authorization": f"Bearer {login.json()['access_token']}"}
            cid = b.post("/api/conversations", json={"model": "m"}, headers=me).json()["id"]
            seen: list[str] = []
            broken = False
            with (
                httpx.Client(base_url=a_url, timeout=20) as a,
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
                            a_proc.send_signal(signal.SIGKILL)  # mid-answer
                except httpx.HTTPError:
                    broken = True
            on_a = _events(seen)
            assert broken or on_a[-1]["type"] != "done"  # no fake success
            assert not any(e["type"] == "done" for e in on_a)
            message_id = on_a[0]["message_id"]

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
