"""RedisStore on a Sentinel master client: sessions survive a failover (the replica promoted).

Private servers only: a master, its replica and one sentinel (quorum 1) on free ports.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from quart import Quart
from redis.asyncio.client import Redis
from redis.asyncio.sentinel import Sentinel

from sessions import RedisStore
from tests.redis_topologies import SentinelSetup, command, role
from tests.sessions.conftest import Browser, make_app, sid_of

PREFIX = "sess:"
FAILOVER_BUDGET = 30.0  # seconds from the failover's start until the sessions are usable again


@pytest.fixture
async def sentinel_master(redis_sentinel: SentinelSetup) -> AsyncIterator[Redis]:
    """`Sentinel([...]).master_for("mymaster")`: a client that asks the sentinel for the master."""
    sentinel = Sentinel(
        [("127.0.0.1", redis_sentinel.sentinel_port)],
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
    )
    client = sentinel.master_for(
        redis_sentinel.name, socket_timeout=1.0, socket_connect_timeout=1.0
    )
    yield client
    await client.aclose()
    await sentinel.aclose()


@pytest.fixture
def store(sentinel_master: Redis) -> RedisStore:
    return RedisStore(sentinel_master, prefix=PREFIX)


def browser(app: Quart) -> Browser:
    return Browser(app.test_client(use_cookies=False))


def sid(browser: Browser) -> str:
    assert browser.cookie is not None, "the browser holds no session cookie"
    return sid_of(browser.cookie)


async def views(browser: Browser) -> int:
    response = await browser.get("/count")
    assert response.status_code == 200, await response.get_data(as_text=True)
    return int((await response.get_json())["views"])


def record_on(port: int, sid: str) -> dict[str, Any] | None:
    raw = command(port, "GET", PREFIX + sid)
    return None if raw is None else dict(json.loads(raw))


async def check_sessions_survive(
    redis_sentinel: SentinelSetup, store: RedisStore, fail_over: Callable[[int], None]
) -> None:
    """Two sessions before the failover; after it, the same sessions continue on the new master."""
    app = make_app(store)
    alice, bob = browser(app), browser(app)
    assert [await views(alice), await views(alice), await views(bob)] == [1, 2, 1]
    await alice.post("/set", json={"theme": "dark"})
    old_master = redis_sentinel.master_port()
    redis_sentinel.wait_for_replica_sync()  # both sessions are on the replica too

    started = time.monotonic()
    fail_over(old_master)
    new_master = redis_sentinel.wait_for_new_master(old_master)

    assert new_master != old_master
    assert role(new_master) == "master"
    read = await alice.get("/read")
    assert read.status_code == 200, await read.get_data(as_text=True)
    assert (await read.get_json())["data"] == {"views": 2, "theme": "dark"}
    assert await views(alice) == 3
    assert await views(bob) == 2
    newcomer = browser(app)
    assert await views(newcomer) == 1
    assert time.monotonic() - started < FAILOVER_BUDGET

    for visitor, count in ((alice, 3), (bob, 2), (newcomer, 1)):
        record = record_on(new_master, sid(visitor))
        assert record is not None and record["views"] == count
    assert await store.length() == 3


async def test_sessions_stay_readable_and_writable_after_sentinel_failover(
    redis_sentinel: SentinelSetup, store: RedisStore
) -> None:
    def sentinel_failover(old_master: int) -> None:
        redis_sentinel.failover()

    await check_sessions_survive(redis_sentinel, store, sentinel_failover)


async def test_sessions_stay_readable_and_writable_after_the_master_crashes(
    redis_sentinel: SentinelSetup, store: RedisStore
) -> None:
    def crash(old_master: int) -> None:
        redis_sentinel.process_on(old_master).kill()  # SIGKILL to the master's PID

    await check_sessions_survive(redis_sentinel, store, crash)
