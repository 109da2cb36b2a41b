"""PostgreSQL for tests: which server, a database of this test run's own on it, private clusters.

Every test that needs PostgreSQL reaches it through `postgres_database` (created empty for the
run, dropped at its end; tests keep apart by table name) or `scratch_database`, so the server
behind them is chosen in this one place: `TEST_POSTGRES_URL`, else the machine's PostgreSQL at
127.0.0.1:5432. A test that stops or counts on a server gets a `private_postgres` of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from deploy.processes import free_port

__all__ = [
    "SERVER_URL",
    "PrivatePostgres",
    "blocking",
    "postgres_database",
    "private_postgres",
    "scratch_database",
    "with_database",
]

T = TypeVar("T")
SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def with_database(url: str, database: str) -> str:
    """The same server's URL for another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


def blocking(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end on a loop of its own, even from inside a running loop."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work).result()


async def _admin(server_url: str, statement: str) -> None:
    try:
        connection = await asyncpg.connect(server_url, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"PostgreSQL at {server_url} does not answer: {error}", pytrace=False)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a database this test run owns (created empty, dropped with its connections at the end)."""
    name = f"test_{secrets.token_hex(6)}"
    blocking(_admin(SERVER_URL, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(SERVER_URL, name)
    finally:
        blocking(_admin(SERVER_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@asynccontextmanager
async def scratch_database(server_url: str = SERVER_URL) -> AsyncIterator[str]:
    """A new, empty database for one test (one it may reconfigure), dropped afterwards."""
    name = f"test_{secrets.token_hex(6)}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BIN = Path(os.environ.get("POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
SETUP_HINT = "run `bash scripts/setup --test` (it installs Debian's postgresql package)"


class PrivatePostgres:
    """A PostgreSQL cluster of one test's own: initdb in a temp dir, a free port, stopped by PID.

    PostgreSQL refuses to run as root, so as root its programs run as the `postgres` user.
    `pg_stat_statements` is loaded, to count the statements that reach the server.
    """

    def __init__(self) -> None:
        if not (BIN / "initdb").is_file():
            pytest.fail(f"{BIN}/initdb is missing: {SETUP_HINT}", pytrace=False)
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="test-postgres-"))
        self.data = self.directory / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def _run(self, *command: object) -> None:
        done = subprocess.run(
            [*self._as_postgres, *map(str, command)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while it runs (from its postmaster.pid)."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory}"
            " -c shared_preload_libraries=pg_stat_statements -c fsync=off"
        )
        log = self.directory / "server.log"
        self._run(BIN / "pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w", "start")

    def stop(self, sig: signal.Signals = signal.SIGINT) -> None:
        """Stop the postmaster by its PID (SIGINT: fast shutdown; SIGKILL: a crash) and wait."""
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if sig == signal.SIGKILL:  # a killed postmaster leaves its pid file behind
            (self.data / "postmaster.pid").unlink(missing_ok=True)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL for one test (which may stop and restart it), removed afterwards."""
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()
