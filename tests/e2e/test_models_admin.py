"""Model groups managed at run time through ``/admin/models``: CRUD, validation errors
naming the field's path, revisions and rollback, the file's groups read-only, secrets
sealed at rest and never answered, the test-connection probe. Run against the embedded
backends and the shared ones (PostgreSQL + Redis + NATS)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import structlog.testing

from parley.app import create_app
from parley.config import Settings
from parley.config.vault import new_key
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests.conftest import ParleyFactory
from tests.e2e.test_access import ADMIN, Client, backend, error, start

__all__ = ["backend", "start"]  # fixtures shared with the access suite

SECRET = "sk-live-secret-value-7f3a9c"


def group(fake: FakeUpstream, name: str = "runtime", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "deployments": [
            {"provider": "openai_compatible", "model": "llama-3.1-8b", "api_base": f"{fake.url}/v1"}
        ],
        **extra,
    }


def chat(client: Client, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return client.http.post("/v1/chat/completions", json=body)


def key_for(client: Client) -> str:
    return str(client.new_key()["key"])


def test_crud_with_revisions_and_rollback(start: Callable[..., Client], fake: FakeUpstream) -> None:
    client = start(require_auth=False)
    key = key_for(client)
    headers = {"authorization": f"Bearer {key}"}
    created = client.admin("POST", "/admin/models", json=group(fake))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["source"] == "database"
    assert body["revision"] == 1
    assert body["read_only"] is False
    # its settings as they apply, defaults filled in, in the file groups' shape
    assert (body["strategy"], body["fallbacks"], body["settings"]["retries"]) == ("ordered", [], 2)
    assert body["settings"]["cache"]["enabled"] is False
    assert body["deployments"][0]["weight"] == 1.0
    answer = client.http.post(
        "/v1/chat/completions",
        json={"model": "runtime", "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert "runtime" in [
        m["id"] for m in client.http.get("/v1/models", headers=headers).json()["data"]
    ]

    listed = client.admin("GET", "/admin/models").json()["data"]
    by_name = {g["name"]: g for g in listed}
    assert by_name["openai"]["source"] == "file"
    assert by_name["openai"]["label"] == "from parley.yaml"
    assert by_name["openai"]["read_only"] is True
    assert by_name["runtime"]["source"] == "database"

    changed = group(fake, strategy="weighted", retries=0)
    replaced = client.admin("PUT", "/admin/models/runtime", json=changed)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["revision"] == 2
    assert replaced.json()["document"]["strategy"] == "weighted"
    assert replaced.json()["strategy"] == "weighted"
    assert replaced.json()["settings"]["retries"] == 0

    no_deployment = client.admin("POST", "/admin/models/runtime/deployments/0/disable")
    assert no_deployment.json()["deployments"][0]["enabled"] is False
    idle = client.http.post(
        "/v1/chat/completions",
        json={"model": "runtime", "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    assert idle.status_code == 502, idle.text  # the group is there, nothing may serve it
    assert "no healthy deployment" in error(idle)["message"]
    client.admin("POST", "/admin/models/runtime/deployments/0/enable")
    disabled = client.admin("POST", "/admin/models/runtime/disable")
    assert disabled.json()["enabled"] is False
    gone = client.http.post(
        "/v1/chat/completions",
        json={"model": "runtime", "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    assert gone.status_code == 404
    assert client.admin("POST", "/admin/models/runtime/enable").json()["enabled"] is True

    rolled = client.admin("POST", "/admin/models/runtime/rollback", json={"revision": 1})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["revision"] == 7
    assert "strategy" not in rolled.json()["document"]

    revisions = client.admin("GET", "/admin/models/runtime/revisions").json()["data"]
    assert [(r["revision"], r["action"]) for r in revisions] == [
        (7, "rollback"),
        (6, "enable"),
        (5, "disable"),
        (4, "deployment_enable"),
        (3, "deployment_disable"),
        (2, "update"),
        (1, "create"),
    ]
    assert revisions[5]["document"]["strategy"] == "weighted"
    assert all(r["actor"] == "admin-key" for r in revisions)

    deleted = client.admin("DELETE", "/admin/models/runtime")
    assert deleted.json() == {"name": "runtime", "deleted": True, "revision": 8}
    assert client.admin("GET", "/admin/models/runtime").status_code == 404
    after = client.http.post(
        "/v1/chat/completions",
        json={"model": "runtime", "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    assert after.status_code == 404
    # the history outlives the group, and a deleted group can be brought back
    assert len(client.admin("GET", "/admin/models/runtime/revisions").json()["data"]) == 8
    back = client.admin("POST", "/admin/models/runtime/rollback", json={"revision": 2})
    assert back.status_code == 200, back.text
    assert back.json()["document"]["strategy"] == "weighted"


def test_deleted_groups_are_listed_with_the_revision_that_restores_them(
    start: Callable[..., Client], fake: FakeUpstream
) -> None:
    client = start(require_auth=False)
    for name in ("gone-a", "gone-b", "kept"):
        assert client.admin("POST", "/admin/models", json=group(fake, name)).status_code == 201
    edited = group(fake, "gone-a", strategy="weighted")
    assert client.admin("PUT", "/admin/models/gone-a", json=edited).status_code == 200
    assert client.admin("POST", "/admin/models/gone-a/disable").status_code == 200
    assert client.admin("DELETE", "/admin/models/gone-a").status_code == 200
    assert client.admin("DELETE", "/admin/models/gone-b").status_code == 200

    listed = client.admin("GET", "/admin/models", params={"deleted": "true"})
    assert listed.status_code == 200, listed.text
    found = listed.json()["data"]
    # newest deletion first; the revision to restore is the last one that held the group
    assert [(d["name"], d["revision"], d["restorable_revision"]) for d in found] == [
        ("gone-b", 2, 1),
        ("gone-a", 4, 3),
    ]
    assert all(d["deleted_by"] == "admin-key" and d["deleted_ms"] > 0 for d in found)
    served = {g["name"] for g in client.admin("GET", "/admin/models").json()["data"]}
    assert "kept" in served
    assert not {"gone-a", "gone-b"} & served

    restored = client.admin(
        "POST", "/admin/models/gone-a/rollback", json={"revision": found[1]["restorable_revision"]}
    )
    assert restored.status_code == 200, restored.text
    assert (restored.json()["document"]["strategy"], restored.json()["enabled"]) == (
        "weighted",
        False,
    )
    again = client.admin("GET", "/admin/models", params={"deleted": "true"}).json()["data"]
    assert [d["name"] for d in again] == ["gone-b"]
    # deleted again: listed again, and restorable to the revision before this deletion
    assert client.admin("DELETE", "/admin/models/gone-a").status_code == 200
    again = client.admin("GET", "/admin/models", params={"deleted": "true"}).json()["data"]
    assert [(d["name"], d["revision"], d["restorable_revision"]) for d in again] == [
        ("gone-a", 6, 5),
        ("gone-b", 2, 1),
    ]

    bad = client.admin("GET", "/admin/models", params={"deleted": "yes"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "deleted"


def test_every_change_is_audited(
    start: Callable[..., Client], fake: FakeUpstream, backend: dict[str, Any], tmp_path: Path
) -> None:
    client = start()
    client.admin("POST", "/admin/models", json=group(fake))
    client.admin("POST", "/admin/models/runtime/deployments/0/disable")
    client.admin("DELETE", "/admin/models/runtime")
    rows = _rows(backend, tmp_path, "SELECT action, target, detail FROM audit_log ORDER BY id")
    actions = [(r[0], r[1]) for r in rows if str(r[0]).startswith("model.")]
    assert actions == [
        ("model.create", "runtime"),
        ("model.deployment_disable", "runtime"),
        ("model.delete", "runtime"),
    ]


def test_validation_errors_name_the_fields_path(
    start: Callable[..., Client], fake: FakeUpstream
) -> None:
    client = start()
    bad = group(fake)
    bad["deployments"].append(
        {"provider": "openai_compatible", "model": "x", "api_base": "ftp://nope"}
    )
    answer = client.admin("POST", "/admin/models", json=bad)
    assert answer.status_code == 400
    assert error(answer)["param"] == "models.runtime.deployments[1].api_base"
    assert (
        "models.runtime.deployments[1].api_base: must be an http(s) URL" in error(answer)["message"]
    )

    typo = group(fake, stratgy="ordered")
    answer = client.admin("POST", "/admin/models", json=typo)
    assert answer.status_code == 400
    assert error(answer)["param"] == "models.runtime.stratgy"

    unknown = group(fake, fallbacks=["nowhere"])
    answer = client.admin("POST", "/admin/models", json=unknown)
    assert answer.status_code == 400
    assert "unknown group 'nowhere'" in error(answer)["message"]
    # a fallback to a group the file declares is fine
    assert (
        client.admin("POST", "/admin/models", json=group(fake, fallbacks=["openai"])).status_code
        == 201
    )

    clash = group(fake, "other")
    clash["deployments"][0]["name"] = "runtime/openai_compatible/llama-3.1-8b"
    answer = client.admin("POST", "/admin/models", json=clash)
    assert answer.status_code == 400
    assert "appears twice" in error(answer)["message"]

    missing_env = group(fake, "env")
    missing_env["deployments"][0]["api_key"] = "os.environ/PARLEY_TEST_NOT_SET_ANYWHERE"
    answer = client.admin("POST", "/admin/models", json=missing_env)
    assert answer.status_code == 400
    assert "PARLEY_TEST_NOT_SET_ANYWHERE is not set" in error(answer)["message"]

    assert client.admin("POST", "/admin/models", json=[1]).status_code == 400
    assert client.admin("POST", "/admin/models", json=group(fake)).status_code == 409  # exists
    renamed = client.admin("PUT", "/admin/models/runtime", json=group(fake, "elsewhere"))
    assert renamed.status_code == 400
    assert error(renamed)["param"] == "name"
    assert (
        client.admin("PUT", "/admin/models/absent", json=group(fake, "absent")).status_code == 404
    )
    assert client.admin("POST", "/admin/models", json=group(fake, "base")).status_code == 201
    uses = group(fake, "uses", fallbacks=["base"])
    assert client.admin("POST", "/admin/models", json=uses).status_code == 201
    referenced = client.admin("DELETE", "/admin/models/base")
    assert referenced.status_code == 409
    assert "'uses' falls back or downgrades to 'base'" in error(referenced)["message"]


def test_groups_the_file_declares_are_read_only(
    start: Callable[..., Client], fake: FakeUpstream
) -> None:
    client = start()
    for method, path, body in [
        ("POST", "/admin/models", group(fake, "openai")),
        ("PUT", "/admin/models/openai", group(fake, "openai")),
        ("POST", "/admin/models/openai/disable", None),
        ("DELETE", "/admin/models/openai", None),
        ("POST", "/admin/models/openai/rollback", {"revision": 1}),
    ]:
        answer = client.admin(method, path, json=body)
        assert answer.status_code == 409, (method, path, answer.text)
        assert "declared in the model file (parley.yaml)" in error(answer)["message"]
    shown = client.admin("GET", "/admin/models/openai").json()
    assert shown["source"] == "file"
    assert "api_key" not in json.dumps(shown)


def test_only_global_admins_manage_models(start: Callable[..., Client], fake: FakeUpstream) -> None:
    client = start()
    key = key_for(client)
    for method, path in [("GET", "/admin/models"), ("POST", "/admin/models")]:
        answer = client.http.request(
            method, path, json=group(fake), headers={"authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 403
    assert client.http.get("/admin/models").status_code == 401


def _rows(backend: dict[str, Any], tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    if "database_url" in backend:

        async def fetch() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(backend["database_url"])
            try:
                return [tuple(r) for r in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(fetch())
    with sqlite3.connect(tmp_path / "parley.db") as conn:
        return [tuple(r) for r in conn.execute(sql)]


def test_secrets_are_sealed_at_rest_and_never_answered(
    start: Callable[..., Client], fake: FakeUpstream, backend: dict[str, Any], tmp_path: Path
) -> None:
    client = start(secrets_key=new_key())
    sealed = group(fake, "sealed")
    sealed["deployments"] = [
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "api_base": f"{fake.url}/v1",
            "api_key": SECRET,
        }
    ]
    with structlog.testing.capture_logs() as logs:
        created = client.admin("POST", "/admin/models", json=sealed)
        client.admin("POST", "/admin/models/sealed/deployments/0/test")
    assert logs  # the reload was logged, and nothing logged holds the secret
    assert SECRET not in str(logs)
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["document"]["deployments"][0]["api_key"] == "\u2026" + SECRET[-4:]
    assert chat(client, "sealed").status_code == 401  # admin key set: /v1 needs a key
    key = key_for(client)
    answer = client.http.post(
        "/v1/chat/completions",
        json={"model": "sealed", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200, answer.text
    assert fake.calls[-1].headers["Authorization"] == f"Bearer {SECRET}"
    # sent back as shown, the hint keeps the stored secret
    again = client.admin("PUT", "/admin/models/sealed", json={**shown["document"], "retries": 1})
    assert again.status_code == 200, again.text
    answer = client.http.post(
        "/v1/chat/completions",
        json={"model": "sealed", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200
    assert fake.calls[-1].headers["Authorization"] == f"Bearer {SECRET}"
    rolled = client.admin("POST", "/admin/models/sealed/rollback", json={"revision": 1})
    assert rolled.status_code == 200, rolled.text
    answer = client.http.post(
        "/v1/chat/completions",
        json={"model": "sealed", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200  # the restored revision's sealed secret still opens
    assert fake.calls[-1].headers["Authorization"] == f"Bearer {SECRET}"
    everything = [
        rolled.text,
        client.admin("GET", "/admin/models").text,
        client.admin("GET", "/admin/models/sealed").text,
        client.admin("GET", "/admin/models/sealed/revisions").text,
        again.text,
        created.text,
    ]
    assert not any(SECRET in text for text in everything)
    assert not any(SECRET[:-4] in text for text in everything)
    rows = _rows(backend, tmp_path, "SELECT document FROM model_groups")
    rows += _rows(backend, tmp_path, "SELECT document FROM model_revisions")
    raw = " ".join(str(r[0]) for r in rows)
    assert "sealed:" in raw
    assert SECRET not in raw


def test_a_literal_secret_is_refused_without_a_secrets_key(
    start: Callable[..., Client], fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = start()
    literal = group(fake, "literal")
    literal["deployments"][0]["api_key"] = SECRET
    answer = client.admin("POST", "/admin/models", json=literal)
    assert answer.status_code == 400
    assert "PARLEY_SECRETS_KEY is not set" in error(answer)["message"]
    assert error(answer)["param"] == "models.literal.deployments[0].api_key"
    assert SECRET not in answer.text
    monkeypatch.setenv("PARLEY_TEST_RUNTIME_KEY", SECRET)
    literal["deployments"][0]["api_key"] = "os.environ/PARLEY_TEST_RUNTIME_KEY"
    stored = client.admin("POST", "/admin/models", json=literal)
    assert stored.status_code == 201, stored.text
    assert (
        stored.json()["document"]["deployments"][0]["api_key"]
        == "os.environ/PARLEY_TEST_RUNTIME_KEY"
    )


def test_test_connection_probes_the_real_adapter(
    start: Callable[..., Client], fake: FakeUpstream
) -> None:
    client = start(secrets_key=new_key())
    good = group(fake, "probe")
    bad_key = "bad-key-that-the-fake-echoes-123"
    good["deployments"].append(
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "api_base": f"{fake.url}/v1",
            "api_key": bad_key,
            "name": "wrong-key",
            "enabled": False,
        }
    )
    assert client.admin("POST", "/admin/models", json=good).status_code == 201
    before = len(fake.calls)
    ok = client.admin("POST", "/admin/models/probe/deployments/0/test")
    assert ok.status_code == 200, ok.text
    assert ok.json()["ok"] is True
    assert ok.json()["latency_ms"] >= 0
    assert len(fake.calls) == before + 1
    assert fake.calls[-1].body["max_tokens"] == 1
    failed = client.admin("POST", "/admin/models/probe/deployments/1/test")
    assert failed.json()["ok"] is False
    assert failed.json()["error"]["status"] == 401
    assert bad_key not in failed.text
    file_group = client.admin("POST", "/admin/models/openai/deployments/0/test")
    assert file_group.json()["ok"] is True
    assert client.admin("POST", "/admin/models/probe/deployments/7/test").status_code == 404


def test_a_group_can_be_tested_before_it_is_saved(
    start: Callable[..., Client], fake: FakeUpstream
) -> None:
    """No PARLEY_SECRETS_KEY and nothing stored: the literal key is only used, not kept."""
    client = start()
    unsaved = group(fake, "unsaved")
    unsaved["deployments"].append(
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "api_base": f"{fake.url}/v1",
            "api_key": SECRET,
            "name": "keyed",
        }
    )
    ok = client.admin("POST", "/admin/models/test?deployment=1", json=unsaved)
    assert ok.status_code == 200, ok.text
    assert ok.json()["ok"] is True
    assert ok.json()["deployment"] == "keyed"
    assert fake.calls[-1].headers["Authorization"] == f"Bearer {SECRET}"
    assert client.admin("GET", "/admin/models/unsaved").status_code == 404
    assert client.admin("GET", "/admin/models/unsaved/revisions").status_code == 404
    bad = client.admin("POST", "/admin/models/test?deployment=5", json=unsaved)
    assert bad.status_code == 400
    assert error(bad)["param"] == "deployment"
    invalid = client.admin("POST", "/admin/models/test", json=group(fake, retries=-1))
    assert invalid.status_code == 400
    assert error(invalid)["param"] == "models.runtime.retries"


def test_concurrent_saves_never_lose_a_revision(
    start: Callable[..., Client], fake: FakeUpstream
) -> None:
    client = start()
    assert client.admin("POST", "/admin/models", json=group(fake)).status_code == 201
    bodies = [group(fake, retries=n % 5) for n in range(16)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda b: client.admin("PUT", "/admin/models/runtime", json=b).status_code, bodies
            )
        )
    assert set(codes) <= {200, 409}, codes
    revisions = client.admin("GET", "/admin/models/runtime/revisions").json()["data"]
    numbers = [r["revision"] for r in revisions]
    assert numbers == list(range(len(numbers), 0, -1))  # one per success, none twice
    assert len(numbers) == 1 + codes.count(200)


def test_a_name_the_file_declares_later_shadows_the_stored_group(
    parley: ParleyFactory, fake: FakeUpstream, loop_thread: LoopThread, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/parley.db"
    before = create_app(Settings(database_url=url, admin_key=ADMIN), models=models_from([]))
    with serve_in_thread(loop_thread, before) as base:
        early = Client(base)
        assert early.admin("POST", "/admin/models", json=group(fake, "openai")).status_code == 201
        early.http.close()
    client = Client(parley(admin_key=ADMIN, database_url=url))  # its file declares "openai"
    listed = [
        g for g in client.admin("GET", "/admin/models").json()["data"] if g["name"] == "openai"
    ]
    assert [g["source"] for g in listed] == ["file"]
    key = client.new_key()["key"]
    served = client.chat(key, model="openai")
    assert served.headers["x-parley-deployment"] == "openai/openai/gpt-4o-mini"
    assert client.admin("DELETE", "/admin/models/openai").status_code == 200  # the stored one
    assert client.admin("DELETE", "/admin/models/openai").status_code == 409
    client.http.close()
