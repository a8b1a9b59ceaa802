"""A real OpenID Provider for the single sign-on tests: ``provider.mjs`` (npm's
``oidc-provider``, installed by ``scripts/install-oidc-provider.sh``) run as a subprocess
on a free loopback port, configured per test with its accounts and clients.

Missing node or the provider skips, but fails under ``CI=true`` (CI installs both)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "provider.mjs"
INSTALLED = HERE / "node_modules" / "oidc-provider" / "package.json"
CLIENT_SECRET = "test-oidc-client-secret-0123456789"
CLIENT_SECRET_ENV = "PARLEY_TEST_OIDC_SECRET"


def _unavailable(what: str) -> None:
    message = f"{what}: sh scripts/install-oidc-provider.sh installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_node() -> str:
    """The node binary, or skip (fail under CI)."""
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed")
    assert node is not None
    return node


def require_provider() -> str:
    """The node binary with the provider installed beside it, or skip (fail under CI)
    naming what is missing."""
    node = require_node()
    if not INSTALLED.exists():
        _unavailable("oidc-provider is not installed in tests/oidc")
    return node


class OpenIdProvider:
    """One running provider: ``issuer``, and the test controls of ``provider.mjs``."""

    def __init__(self, process: subprocess.Popen[str], issuer: str) -> None:
        self.process = process
        self.issuer = issuer
        self._http = httpx.Client(base_url=issuer, timeout=10)
        self.output: list[str] = []
        """What the provider printed (its errors, for a failing test's report)."""
        # keep draining its output so a chatty provider never blocks on a full pipe
        self._drains = [
            threading.Thread(target=self._drain, args=(stream,), daemon=True)
            for stream in (process.stdout, process.stderr)
        ]
        for thread in self._drains:
            thread.start()

    def _drain(self, stream: Any) -> None:
        for line in stream:
            self.output.append(line)

    def add_client(
        self,
        client_id: str,
        *,
        redirect_uris: list[str],
        post_logout_redirect_uris: list[str] | None = None,
        secret: str = CLIENT_SECRET,
    ) -> None:
        metadata: dict[str, Any] = {
            "client_id": client_id,
            "client_secret": secret,
            "redirect_uris": redirect_uris,
            "post_logout_redirect_uris": post_logout_redirect_uris or [],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }
        self._http.put("/__test/clients", json=metadata).raise_for_status()

    def next(self, **what: str) -> None:
        """``tamper="payload"``: the next ID token's payload is changed after signing;
        ``nonce="x"``: the next authorization request's nonce is replaced by ``x``."""
        self._http.post("/__test/next", json=what).raise_for_status()

    def requests(self, *paths: str) -> list[dict[str, Any]]:
        """The requests the provider served to these paths, oldest first: ``method``,
        ``path``, ``via`` (a forward proxy's ``Via`` header, or None) and ``port`` (the
        client's source port, one per TCP connection)."""
        served = self._http.get("/__test/requests")
        served.raise_for_status()
        return [r for r in served.json() if r["path"] in paths]

    def close(self) -> None:
        self._http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for thread in self._drains:
            thread.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def running_provider(
    tmp_path: Path, accounts: dict[str, dict[str, Any]]
) -> Iterator[OpenIdProvider]:
    node = require_provider()
    config = tmp_path / "oidc-provider.json"
    config.write_text(json.dumps({"accounts": accounts, "clients": []}), encoding="utf-8")
    env = {**os.environ, "NODE_ENV": "test"}
    process = subprocess.Popen(
        [node, str(SCRIPT), str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE,
        env=env,
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # blocks until it listens (or exits)
    if not first:
        error = process.stderr.read() if process.stderr else ""
        process.wait()
        process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
        pytest.fail(f"the OpenID provider did not start: {error[-2000:]}")
    provider = OpenIdProvider(process, json.loads(first)["issuer"])
    try:
        yield provider
    finally:
        provider.close()
