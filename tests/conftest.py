"""Shared fixtures: the shared Redis (own key prefix per test) and private redis-server instances."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from deploy.processes import free_port, kill, terminate, wait_for_port

__all__ = ["SHARED_REDIS_URL", "RedisServer"]

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
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def kill(self) -> None:
        kill(self.process)
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
