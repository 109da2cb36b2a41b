"""/healthz says "degraded" when the Redis of the accounts answers PING but refuses writes."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis

from deploy.processes import free_port

from .support import Site, site_settings, start_site


def run(server: Any, *command: str) -> Any:
    client = redis.Redis.from_url(server.url)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


def out_of_memory(server: Any) -> Callable[[], None]:
    run(server, "CONFIG", "SET", "maxmemory-policy", "noeviction")
    run(server, "CONFIG", "SET", "maxmemory", "1")
    return lambda: run(server, "CONFIG", "SET", "maxmemory", "0")


def read_only(server: Any) -> Callable[[], None]:
    # A replica of a master that is not there: it answers reads and refuses writes (READONLY).
    run(server, "REPLICAOF", "127.0.0.1", str(free_port()))
    return lambda: run(server, "REPLICAOF", "NO", "ONE")


def failing_disk(server: Any) -> Callable[[], None]:
    # With a save point configured, a failed background save stops writes (MISCONF). The
    # save fails because redis-server's working directory is gone (it was chdir'ed into it).
    run(server, "CONFIG", "SET", "save", "3600 1")
    directory = Path(server.directory)
    shutil.rmtree(directory)
    run(server, "BGSAVE")
    deadline = time.monotonic() + 10
    while run(server, "INFO", "persistence")["rdb_last_bgsave_status"] != "err":
        assert time.monotonic() < deadline, "the background save did not fail"
        time.sleep(0.02)
    directory.mkdir()  # for the fixture's clean-up; the server keeps its deleted directory
    # Repaired by taking the save point away (also lets the server shut down without saving).
    return lambda: run(server, "CONFIG", "SET", "save", "")


FAULTS = {"out of memory": out_of_memory, "read-only": read_only, "failing disk": failing_disk}


@pytest.fixture
async def site(
    tmp_path: Path, private_redis: Any, key_prefix: str, redis_url: str, redis_client: Any
) -> AsyncIterator[Site]:
    """Sessions on the shared Redis; users and counters on a private one that a test breaks."""
    prefix = key_prefix.removesuffix("sess:")
    settings = site_settings(
        "redis", tmp_path / "instance", prefix, redis_url, AUTH_REDIS_URL=private_redis.url
    )
    async with AsyncExitStack() as stack:
        yield await start_site(stack, "redis", settings)


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_healthz_reports_an_accounts_store_that_refuses_writes(
    site: Site, private_redis: Any, fault: str
) -> None:
    browser = site.browser()
    healthy = await browser.get("/healthz")
    assert healthy.status_code == 200
    assert await healthy.get_json() == {"status": "ok", "store": True, "accounts": True}

    repair = FAULTS[fault](private_redis)
    assert run(private_redis, "DBSIZE") >= 0  # it still answers reads

    degraded = await browser.get("/healthz")
    assert degraded.status_code == 503
    assert await degraded.get_json() == {"status": "degraded", "store": True, "accounts": False}
    register = await browser.register("alice")
    assert register.status_code == 503

    repair()
    assert (await browser.get("/healthz")).status_code == 200
    assert (await browser.register("alice")).status_code == 302
