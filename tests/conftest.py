"""Shared fixtures: the shared Redis (own key prefix per test) and private redis-server instances."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

SHARED_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI a skipped test means a missing dependency, and that is a failure."""
    report = yield
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI, where a missing dependency is a failure: {report.longrepr}"
        )
    return report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answered on 127.0.0.1:{port} within {timeout}s")


@dataclass
class RedisServer:
    """A private redis-server started by a test; stopped only by its own PID."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/setup --test")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--logfile",
                str(self.directory / "redis.log"),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, on a free port, with append-only persistence."""
    with tempfile.TemporaryDirectory(prefix="test-redis-") as directory:
        server = RedisServer(
            free_port(),
            Path(directory),
            extra=(
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--enable-debug-command",
                "local",
            ),
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test (or developer) uses on the shared Redis."""
    return f"test:{secrets.token_hex(6)}:sess:"


@pytest.fixture
async def redis_client(key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the shared Redis; every key under this test's prefix is removed afterwards."""
    client = aioredis.Redis.from_url(SHARED_REDIS_URL)
    try:
        await client.ping()
    except Exception as error:  # pragma: no cover - environment problem
        raise RuntimeError(
            f"the shared Redis at {SHARED_REDIS_URL} does not answer: {error}"
        ) from error
    yield client
    keys = [key async for key in client.scan_iter(match=key_prefix.split(":sess:")[0] + ":*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
