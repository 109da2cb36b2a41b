"""Shared fixtures: the suite's own Redis and PostgreSQL, private ones a test may break, and the
demo site on each backend (for tests/auth and tests/test_app.py).

The suite needs no service already running. The first test that asks for Redis starts one
redis-server for the whole run (each test keeps to its own key prefix); the first that asks for
PostgreSQL starts one private cluster (each test gets a database of its own). Both listen on
free loopback ports, live in temporary directories and are stopped by PID at the end.
`TEST_REDIS_URL` / `TEST_POSTGRES_URL` name other servers instead (a developer's own).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from deploy.postgres_server import PostgresServer, create_database, drop_database
from deploy.redis_server import RedisServer
from tests.auth.support import BACKENDS, Site, SiteFactory, database_for, site_settings, start_site

# pg_stat_statements lets a test count the statements its requests send.
POSTGRES_SETTINGS = {"shared_preload_libraries": "pg_stat_statements"}


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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of the PostgreSQL server every test shares for this run (the `postgres` database)."""
    override = os.environ.get("TEST_POSTGRES_URL")
    if override:
        yield override
        return
    with PostgresServer(settings=POSTGRES_SETTINGS) as server:
        yield server.url


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new database of this test's own on the suite's PostgreSQL, dropped after."""
    name = f"test_{secrets.token_hex(6)}"
    url = create_database(postgres_url, name)
    try:
        yield url
    finally:
        drop_database(postgres_url, name)


@pytest.fixture
def private_postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test's own, to stop, kill or break; every statement is logged
    to its `log_path`. More settings: ``@pytest.mark.parametrize("private_postgres",
    [{"max_connections": "5"}], indirect=True)``."""
    settings = {**POSTGRES_SETTINGS, "log_statement": "all", **getattr(request, "param", {})}
    with PostgresServer(settings=settings) as server:
        yield server


# ---------------------------------------------------------------------- the demo site


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every test of the demo runs on the embedded default (files), on Redis and on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """The "postgres" backend's database, this test's own; None for the other backends."""
    return database_for(backend, request)


@pytest.fixture
async def make_site(
    backend: str,
    tmp_path: Path,
    key_prefix: str,
    redis_url: str,
    redis_client: Any,
    database_url: str | None,
) -> AsyncIterator[SiteFactory]:
    """Build demo sites with extra config; each is shut down after the test.

    The first keeps to the test's key prefix and `tmp_path / "instance"`; each later one has a
    numbered prefix and instance folder of its own.
    """
    async with AsyncExitStack() as stack:
        count = 0

        async def make(**config: Any) -> Site:
            nonlocal count
            count += 1
            suffix = "" if count == 1 else str(count)
            prefix = key_prefix.removesuffix("sess:") + (f"{suffix}:" if suffix else "")
            instance = tmp_path / f"instance{suffix}"
            settings = site_settings(
                backend, instance, prefix, redis_url, database_url=database_url, **config
            )
            return await start_site(stack, backend, settings)

        yield make


@pytest.fixture
async def site(make_site: SiteFactory) -> Site:
    return await make_site()
