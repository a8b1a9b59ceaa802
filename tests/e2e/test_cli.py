"""The ``parley`` command, run as a user would: a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from parley import __version__
from parley.store import migrate
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, free_port

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("PARLEY_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "AZURE_"))
}


# uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why it ended.
CLEAN_EXIT = (0, -signal.SIGTERM)


def parley(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley", *args],
        capture_output=True,
        text=True,
        env={**CLEAN_ENV, **(env or {})},
        cwd=tempfile.gettempdir(),
        timeout=60,
        check=False,
    )


def test_version() -> None:
    result = parley("version")
    assert result.returncode == 0
    assert result.stdout.strip() == __version__


def test_check_config_names_bad_fields(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "models:\n  - name: m\n    deployments:\n"
        "      - {provider: openai, model: x, api_key: os.environ/K, timeout: {total: -1}}\n"
    )
    result = parley("check-config", str(bad))
    assert result.returncode == 2
    assert "models.m.deployments[0].timeout.total" in result.stderr
    assert "environment variable K is not set" not in result.stderr  # schema errors first
    good = tmp_path / "good.yaml"
    good.write_text(
        "models:\n  - name: m\n    deployments:\n"
        "      - {provider: openai, model: x, api_key: os.environ/K}\n"
    )
    result = parley("check-config", str(good), env={"K": "secret-value-1"})
    assert result.returncode == 0, result.stderr
    assert "OK (1 model groups, 1 deployments)" in result.stdout
    missing = parley("check-config", str(good))
    assert missing.returncode == 2
    assert "models.m.deployments[0].api_key: environment variable K is not set" in missing.stderr


def test_models_lists_groups(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "models:\n  - name: chat-fast\n    deployments:\n"
        "      - {provider: anthropic, model: claude-haiku-4-5, api_key: os.environ/K}\n"
    )
    result = parley("models", "--config", str(path), env={"K": "secret-value-1"})
    assert result.returncode == 0, result.stderr
    assert "chat-fast" in result.stdout
    assert "claude-haiku-4-5" in result.stdout
    assert "secret-value-1" not in result.stdout


def _wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("parley serve did not start")


class Served:
    """A running ``parley serve`` subprocess; ``stop()`` sends SIGTERM and returns stderr."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="parley-served-")
        env = {"PARLEY_DATABASE_URL": f"sqlite:///{self._dir.name}/parley.db", **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parley", "serve", "--port", str(self.port), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr = ""

    def __enter__(self) -> Served:
        _wait_ready(self.url, self.proc)
        return self

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, self.stderr = self.proc.communicate(timeout=30)
        return self.stderr

    def __exit__(self, *_: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        self._dir.cleanup()


@pytest.mark.slow
def test_serve_with_no_config_starts_and_stops_on_sigterm(tmp_path: Path) -> None:
    with Served(env={**CLEAN_ENV, "HOME": str(tmp_path)}) as served:
        models = httpx.get(f"{served.url}/v1/models").json()
        assert models["data"] == []
        assert "OPENAI_API_KEY" in models["parley_hint"]
        stderr = served.stop()
    assert served.proc.returncode in CLEAN_EXIT
    assert "stopped" in stderr  # the lifespan shutdown ran: pools closed
    assert "no models configured" in stderr
    assert "--config FILE" in stderr


@pytest.mark.slow
def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    loop = LoopThread()
    fake = FakeUpstream()
    loop.run(fake.start())
    config = tmp_path / "c.yaml"
    config.write_text(
        f"models:\n  - name: slow\n    deployments:\n"
        f"      - {{provider: openai_compatible, model: m+latency-1.5, "
        f"api_base: '{fake.url}/v1'}}\n"
    )
    results: list[httpx.Response] = []
    try:
        with Served("--config", str(config), env=CLEAN_ENV) as served:

            def call() -> None:
                results.append(
                    httpx.post(
                        f"{served.url}/v1/chat/completions",
                        timeout=20,
                        json={
                            "model": "slow",
                            "messages": [{"role": "user", "content": "finish me"}],
                        },
                    )
                )

            worker = threading.Thread(target=call)
            worker.start()
            deadline = time.monotonic() + 5
            while not fake.calls and time.monotonic() < deadline:
                time.sleep(0.02)
            assert fake.calls, "request never reached the upstream"
            stderr = served.stop()  # while the request is in flight upstream
            worker.join(timeout=20)
        assert served.proc.returncode in CLEAN_EXIT
        assert "stopped" in stderr
    finally:
        loop.run(fake.stop())
        loop.close()
    assert len(results) == 1
    assert results[0].status_code == 200
    assert results[0].json()["choices"][0]["message"]["content"] == "You said: finish me"


@pytest.mark.slow
def test_serve_with_workers_answers_and_stops() -> None:
    env = {**CLEAN_ENV, "OPENAI_API_KEY": "sk-test-abcdefgh1234"}
    with Served("--workers", "2", env=env) as served:
        ids = {m["id"] for m in httpx.get(f"{served.url}/v1/models").json()["data"]}
        assert "gpt-4o-mini" in ids
        for _ in range(11):  # new connections: the kernel spreads them over both workers
            assert httpx.get(f"{served.url}/v1/models").status_code == 200
        # whichever worker answers, /metrics counts every worker's requests: 12 in all
        for _ in range(4):
            text = httpx.get(f"{served.url}/metrics").text
            line = next(
                x
                for x in text.splitlines()
                if x.startswith("parley_http_requests_total")
                and 'route="/v1/models"' in x
                and 'status="200"' in x
            )
            assert float(line.rsplit(" ", 1)[1]) == 12.0
        stderr = served.stop()
    assert served.proc.returncode in CLEAN_EXIT
    assert stderr.count("models loaded") == 2  # one app per worker process
    assert "sk-test-abcdefgh1234" not in stderr


def test_db_upgrade_then_keys_create_and_revoke(tmp_path: Path) -> None:
    env = {"PARLEY_DATABASE_URL": f"sqlite:///{tmp_path}/p.db"}
    upgraded = parley("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"revision {migrate.HEAD}" in upgraded.stdout
    rebuilt = parley("chat", "rebuild-projections", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "from 0 events" in rebuilt.stdout
    purged = parley("chat", "purge", "--older-than-days", "0", env=env)
    assert purged.returncode == 0, purged.stderr
    assert "purged 0 deleted conversations" in purged.stdout
    created = parley("keys", "create", "--rpm", "5", "--budget", "1.5", "--models", "a,b", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("pk-")
    assert len(key) > 40
    listed = parley("keys", "list", env=env)
    assert key[:11] in listed.stdout
    assert key not in listed.stdout
    revoked = parley("keys", "revoke", key, env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in parley("keys", "list", env=env).stdout
    bad = parley("keys", "create", "--budget-period", "hourly", env=env)
    assert bad.returncode == 2
    assert "budget_period" in bad.stderr
    missing = parley("keys", "revoke", "no-such-id", env=env)
    assert missing.returncode == 1
    assert "no such API key" in missing.stderr


def test_serve_refuses_keyless_non_loopback_bind(tmp_path: Path) -> None:
    env = {"PARLEY_DATABASE_URL": f"sqlite:///{tmp_path}/p.db"}
    result = parley("serve", "--host", "0.0.0.0", "--port", str(free_port()), env=env)
    assert result.returncode == 2
    assert "refusing to serve /v1 without API keys on 0.0.0.0" in result.stderr
    assert "--insecure" in result.stderr


def test_admin_create_user_bootstraps_an_admin(tmp_path: Path) -> None:
    env = {
        "PARLEY_DATABASE_URL": f"sqlite:///{tmp_path}/p.db",
        "PARLEY_NEW_USER_PASSWORD": "correct horse battery staple 42",
    }
    args = ("admin", "create-user", "--email", "Root@Example.com", "--name", "Root", "--admin")
    created = parley(*args, env=env)
    assert created.returncode == 0, created.stderr
    assert "created admin root@example.com" in created.stdout
    weak = parley(
        "admin",
        "create-user",
        "--email",
        "b@example.com",
        "--name",
        "B",
        env={**env, "PARLEY_NEW_USER_PASSWORD": "short"},
    )
    assert weak.returncode == 1
    assert "at least 12 characters" in weak.stderr


def test_prices_lists_each_deployment_and_warns_where_none(tmp_path: Path) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n  - name: m\n    deployments:\n"
        "      - {provider: anthropic, model: claude-sonnet-4-5, api_key: os.environ/K,"
        " price: {output_per_mtok: 20}}\n"
        "      - {provider: openai, model: my-finetune, api_key: os.environ/K, name: ft}\n"
    )
    result = parley("prices", "--config", str(config), env={"K": "sk-test-123456"})
    assert result.returncode == 0, result.stderr
    lines = {line.split("\t")[0]: line.split("\t") for line in result.stdout.splitlines()}
    row = lines["m/anthropic/claude-sonnet-4-5"]
    # source, input from the catalog, output from the config, 5-minute and 1-hour writes
    assert row[2:5] == ["catalog+config", "2025-09-29", "3"]
    assert row[5] == "20"
    assert row[7:9] == ["3.75", "6"]
    assert lines["ft"][2] == "none"
    assert "ft has no price" in result.stderr
