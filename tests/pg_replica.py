"""A PostgreSQL 15 primary and a streaming replica made for one test run: ``initdb`` on a
free port (the machine's own server is never touched: its ``pg_hba.conf`` allows no
replication connections), then ``pg_basebackup -R`` from it into a hot standby on another
port. Both run as the ``postgres`` user (PostgreSQL refuses root) and are stopped after."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from parley.testing.servers import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class Pair:
    primary_port: int
    replica_port: int
    base: Path

    def url(self, port: int, database: str = "parley") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port)

    def psql(self, port: int, sql: str) -> str:
        return _run(
            [
                str(BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "-d",
                "parley",
                "-Atc",
                sql,
            ]
        )


def stop_replica(pair: Pair) -> None:
    _run([str(BIN / "pg_ctl"), "-D", str(pair.base / "replica"), "-m", "fast", "-w", "stop"])


def start_replica(pair: Pair) -> None:
    _start(pair.base / "replica", pair.base / "replica.log")


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: list[str]) -> str:
    done = subprocess.run(
        _as_postgres(command), capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


def available() -> str | None:
    """Why the pair cannot be made here, or None."""
    for tool in ("initdb", "pg_ctl", "pg_basebackup", "postgres", "psql", "createdb"):
        if not (BIN / tool).exists():
            return f"PostgreSQL 15 binaries missing ({BIN / tool})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no postgres user to run the clusters as"
    return None


def require() -> None:
    why = available()
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the replica test must run in CI: {why}")
    pytest.skip(why)


@contextlib.contextmanager
def primary_and_replica() -> Iterator[Pair]:
    # its own directory under /tmp: pytest's are root's (0700), closed to the postgres user
    base = Path(tempfile.mkdtemp(prefix="parley-replica-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        base.chmod(0o700)
    primary, replica = base / "primary", base / "replica"
    pair = Pair(free_port(), free_port(), base)
    _run([str(BIN / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust",
          "-E", "UTF8", "--no-sync", "--no-instructions"])  # fmt: skip
    settings = [
        f"port = {pair.primary_port}",
        "listen_addresses = '127.0.0.1'",
        f"unix_socket_directories = '{base}'",
        "wal_level = replica",
        "max_wal_senders = 4",
        "fsync = off",
        "shared_buffers = 16MB",
    ]
    _append(primary / "postgresql.conf", settings)
    started: list[Path] = []
    try:
        _start(primary, base / "primary.log")
        started.append(primary)
        server = ["-h", "127.0.0.1", "-p", str(pair.primary_port), "-U", "postgres"]
        _run([str(BIN / "createdb"), *server, "parley"])
        backup = ["-D", str(replica), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast"]
        _run([str(BIN / "pg_basebackup"), *server, *backup])
        _append(replica / "postgresql.auto.conf", [f"port = {pair.replica_port}"])
        _start(replica, base / "replica.log")
        started.append(replica)
        yield pair
    finally:
        for data in reversed(started):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _run([str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class Cluster:
    """One PostgreSQL cluster of this test's own, to stop and start at will."""

    port: int
    base: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/parley"

    def stop(self) -> None:
        _run([str(BIN / "pg_ctl"), "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop"])

    def start(self) -> None:
        _start(self.base / "data", self.base / "server.log")


@contextlib.contextmanager
def standalone() -> Iterator[Cluster]:
    """A cluster with a ``parley`` database, for tests that take PostgreSQL away (the
    machine's own server must stay up for every other test)."""
    base = Path(tempfile.mkdtemp(prefix="parley-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        base.chmod(0o700)
    cluster = Cluster(free_port(), base)
    data = base / "data"
    _run([str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
          "-E", "UTF8", "--no-sync", "--no-instructions"])  # fmt: skip
    settings = [
        f"port = {cluster.port}",
        "listen_addresses = '127.0.0.1'",
        f"unix_socket_directories = '{base}'",
        "fsync = off",
        "shared_buffers = 16MB",
    ]
    _append(data / "postgresql.conf", settings)
    try:
        cluster.start()
        server = ["-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"]
        _run([str(BIN / "createdb"), *server, "parley"])
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def _append(path: Path, lines: list[str]) -> None:
    """The file exists (the cluster's owner made it): appending keeps its owner."""
    with path.open("a") as out:
        out.write("\n".join(lines) + "\n")


def _start(data: Path, log: Path) -> None:
    _run([str(BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "30", "start"])
