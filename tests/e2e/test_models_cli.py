"""``parley models`` verbs and ``parley secrets rotate``, run as a user would (a real
subprocess) against the database a server then serves from."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from parley.app import create_app
from parley.config import Settings
from parley.config.vault import new_key
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, models_from, serve_in_thread
from tests.backends import NATS_URL, nats_namespace, postgres_database
from tests.e2e.test_access import ADMIN, Client
from tests.e2e.test_cli import parley
from tests.polling import eventually

SECRET = "sk-cli-secret-value-0b7e21"


def _group_file(tmp_path: Path, fake: FakeUpstream) -> Path:
    path = tmp_path / "group.yaml"
    path.write_text(
        "name: from-cli\n"
        "deployments:\n"
        f"  - {{provider: openai, model: gpt-4o-mini, api_base: '{fake.url}/v1',"
        f" api_key: {SECRET}}}\n"
        f"  - {{provider: openai_compatible, model: llama-3.1-8b, api_base: '{fake.url}/v1',"
        " name: spare, order: 2}\n"
    )
    return path


def test_models_verbs(tmp_path: Path, fake: FakeUpstream) -> None:
    env = {"PARLEY_DATABASE_URL": f"sqlite:///{tmp_path}/p.db", "PARLEY_SECRETS_KEY": new_key()}
    added = parley("models", "add", str(_group_file(tmp_path, fake)), env=env)
    assert added.returncode == 0, added.stderr
    assert "from-cli: revision 1 (create)" in added.stdout
    again = parley("models", "add", str(_group_file(tmp_path, fake)), env=env)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    replaced = parley("models", "add", "--replace", str(_group_file(tmp_path, fake)), env=env)
    assert "from-cli: revision 2 (update)" in replaced.stdout

    listed = parley("models", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "from-cli\tdatabase\tenabled\t2\tfrom-cli/openai/gpt-4o-mini" in listed.stdout
    shown = parley("models", "show", "from-cli", env=env)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)["document"]
    assert document["deployments"][0]["api_key"] == "\u2026" + SECRET[-4:]
    assert SECRET not in shown.stdout + listed.stdout

    assert (
        "revision 3 (deployment_disable)"
        in parley("models", "disable", "from-cli", "--deployment", "1", env=env).stdout
    )
    assert "revision 4 (disable)" in parley("models", "disable", "from-cli", env=env).stdout
    assert "revision 5 (enable)" in parley("models", "enable", "from-cli", env=env).stdout
    rolled = parley("models", "rollback", "from-cli", "1", env=env)
    assert "revision 1 restored as revision 6" in rolled.stdout, rolled.stderr
    history = parley("models", "revisions", "from-cli", env=env)
    lines = history.stdout.strip().splitlines()[1:]
    assert [line.split("\t")[3] for line in lines] == [
        "rollback",
        "enable",
        "disable",
        "deployment_disable",
        "update",
        "create",
    ]
    assert all(line.split("\t")[2] == "cli" for line in lines)
    deleted = parley("models", "delete", "from-cli", env=env)
    assert "from-cli: deleted (revision 7)" in deleted.stdout
    assert parley("models", "show", "from-cli", env=env).returncode == 1
    gone = parley("models", "deleted", env=env)
    assert gone.returncode == 0, gone.stderr
    (row,) = gone.stdout.strip().splitlines()[1:]
    assert row.split("\t")[0::2] == ["from-cli", "cli", "6"]
    assert row.split("\t")[3] == "7"
    with sqlite3.connect(tmp_path / "p.db") as conn:
        audited = [r[0] for r in conn.execute("SELECT action FROM audit_log WHERE actor = 'cli'")]
    assert audited[0] == "model.create"
    assert audited[-1] == "model.delete"
    assert len(audited) == 7  # one a change


def test_a_file_group_is_refused_and_a_literal_secret_needs_a_key(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    config = tmp_path / "parley.yaml"
    config.write_text(
        "models:\n  - name: from-cli\n    deployments:\n"
        f"      - {{provider: openai_compatible, model: m, api_base: '{fake.url}/v1'}}\n"
    )
    env = {"PARLEY_DATABASE_URL": f"sqlite:///{tmp_path}/p.db"}
    refused = parley(
        "models", "--config", str(config), "add", str(_group_file(tmp_path, fake)), env=env
    )
    assert refused.returncode == 1
    assert "declared in the model file" in refused.stderr
    no_key = parley("models", "add", str(_group_file(tmp_path, fake)), env=env)
    assert no_key.returncode == 1
    assert "PARLEY_SECRETS_KEY is not set" in no_key.stderr
    assert SECRET not in no_key.stderr


def test_secrets_rotate_re_encrypts_under_the_new_key(
    tmp_path: Path, fake: FakeUpstream, loop_thread: LoopThread
) -> None:
    old, new = new_key(), new_key()
    url = f"sqlite:///{tmp_path}/p.db"
    added = parley(
        "models",
        "add",
        str(_group_file(tmp_path, fake)),
        env={"PARLEY_DATABASE_URL": url, "PARLEY_SECRETS_KEY": old},
    )
    assert added.returncode == 0, added.stderr

    def stored() -> str:
        with sqlite3.connect(tmp_path / "p.db") as conn:
            return " ".join(str(r[0]) for r in conn.execute("SELECT document FROM model_groups"))

    before = stored()
    rotated = parley(
        "secrets", "rotate", env={"PARLEY_DATABASE_URL": url, "PARLEY_SECRETS_KEY": f"{new},{old}"}
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 2 stored documents" in rotated.stdout  # the group and its revision
    assert stored() != before
    assert SECRET not in stored()
    # only the new key now: the server still opens the secret and sends it upstream
    settings = Settings(database_url=url, secrets_key=new, admin_key=ADMIN)
    app = create_app(settings, models=models_from([]))
    with serve_in_thread(loop_thread, app) as base:
        client = Client(base)
        key = client.new_key()["key"]
        answer = client.chat(key, model="from-cli")
        assert answer.status_code == 200, answer.text
        assert fake.calls[-1].headers["Authorization"] == f"Bearer {SECRET}"
        client.http.close()
    # and the old key alone no longer opens it: the group is not served, and says why
    app = create_app(
        Settings(database_url=url, secrets_key=old, admin_key=ADMIN), models=models_from([])
    )
    with serve_in_thread(loop_thread, app) as base:
        client = Client(base)
        key = client.new_key()["key"]
        assert client.chat(key, model="from-cli").status_code == 404
        shown = client.admin("GET", "/admin/models/from-cli").json()
        assert "opens with none of the PARLEY_SECRETS_KEY keys" in shown["problems"][0]
        client.http.close()


def _served_after_cli_add(
    loop_thread: LoopThread,
    fake: FakeUpstream,
    tmp_path: Path,
    settings: dict[str, Any],
    env: dict[str, str],
) -> None:
    app = create_app(Settings(admin_key=ADMIN, **settings), models=models_from([]))
    with serve_in_thread(loop_thread, app) as base:
        client = Client(base)
        key = client.new_key()["key"]
        assert client.chat(key, model="from-cli").status_code == 404
        group = tmp_path / "plain.yaml"
        group.write_text(
            "name: from-cli\ndeployments:\n"
            f"  - {{provider: openai_compatible, model: m, api_base: '{fake.url}/v1'}}\n"
        )
        added = parley("models", "add", str(group), env=env)
        assert added.returncode == 0, added.stderr
        eventually(lambda: client.chat(key, model="from-cli").status_code == 200)
        client.http.close()


def test_a_running_embedded_instance_serves_what_the_cli_added(
    tmp_path: Path, fake: FakeUpstream, loop_thread: LoopThread
) -> None:
    """Nothing but the SQLite file between them: the instance's poll finds the change."""
    url = f"sqlite:///{tmp_path}/p.db"
    _served_after_cli_add(
        loop_thread,
        fake,
        tmp_path,
        {"database_url": url, "models_poll_seconds": 0.2},
        {"PARLEY_DATABASE_URL": url},
    )


def test_the_cli_announces_its_change_on_nats(
    tmp_path: Path, fake: FakeUpstream, loop_thread: LoopThread
) -> None:
    """The instance polls once an hour here: only the CLI's bus message can tell it."""
    pg, ns = postgres_database(), nats_namespace()
    url, namespace = next(pg), next(ns)
    _served_after_cli_add(
        loop_thread,
        fake,
        tmp_path,
        {
            "database_url": url,
            "nats_url": NATS_URL,
            "nats_namespace": namespace,
            "models_poll_seconds": 3600,
        },
        {
            "PARLEY_DATABASE_URL": url,
            "PARLEY_NATS_URL": NATS_URL,
            "PARLEY_NATS_NAMESPACE": namespace,
        },
    )
    for gen in (ns, pg):
        with pytest.raises(StopIteration):
            next(gen)
