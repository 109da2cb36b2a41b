"""Shared fixtures: the suite's own redis-server (own key prefix per test) and private ones.

The suite needs no service already running: the first test that asks for Redis starts one
redis-server for the whole run on a free port, and it is stopped by PID at the end.
`TEST_REDIS_URL` names another Redis instead (a developer's own; each test uses its own key prefix).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from deploy.redis_server import RedisServer


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


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of the Redis every test shares (each under its own key prefix) for this run."""
    override = os.environ.get("TEST_REDIS_URL")
    if override:
        yield override
        return
    with (
        tempfile.TemporaryDirectory(prefix="test-redis-suite-") as directory,
        RedisServer(Path(directory), durable=False) as server,
    ):
        yield server.url


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, on a free port, with append-only persistence."""
    with tempfile.TemporaryDirectory(prefix="test-redis-") as directory:
        server = RedisServer(Path(directory), options=("--enable-debug-command", "local"))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test (or developer) uses on the suite's Redis."""
    return f"test:{secrets.token_hex(6)}:sess:"


@pytest.fixture
async def redis_client(redis_url: str, key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the suite's Redis; every key under this test's prefix is removed afterwards."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.ping()
    except Exception as error:  # pragma: no cover - environment problem
        raise RuntimeError(f"the Redis at {redis_url} does not answer: {error}") from error
    yield client
    keys = [key async for key in client.scan_iter(match=key_prefix.split(":sess:")[0] + ":*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
