"""Redis round trips per request, counted by the Redis server itself (MONITOR on a private instance)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from deploy.redis_server import RedisServer
from sessions import RedisStore, skip_session
from tests.round_trip_proxy import round_trip_proxy
from tests.sessions.conftest import Browser, make_app, sid_of

SETUP_COMMANDS = {"CLIENT", "HELLO", "SELECT", "PING", "MONITOR"}


class CommandLog:
    """Every command the server receives from clients (not those a script runs inside Redis)."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.commands: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()

        async def listen() -> None:
            async with self.client.monitor() as monitor:
                ready.set()
                async for entry in monitor.listen():
                    if entry.get("client_type") == "lua":
                        continue
                    name = entry["command"].split(" ", 1)[0].upper()
                    if name not in SETUP_COMMANDS:
                        self.commands.append(entry["command"])

        self._task = asyncio.create_task(listen())
        await ready.wait()
        await asyncio.sleep(0.05)

    async def count_during(self, action: Callable[[], Awaitable[Any]]) -> list[str]:
        """The commands that reached the server while `action` ran."""
        await asyncio.sleep(0.05)
        before = len(self.commands)
        await action()
        await asyncio.sleep(0.1)
        return self.commands[before:]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()


@pytest.fixture
async def setup(
    private_redis: RedisServer,
) -> AsyncIterator[tuple[Browser, CommandLog, aioredis.Redis]]:
    client = aioredis.Redis.from_url(private_redis.url)
    app = make_app(RedisStore(client), cookie={"max_age": 3600})
    log = CommandLog(private_redis.url)
    await log.start()
    browser = Browser(app.test_client(use_cookies=False))
    await client.ping()  # the pooled connection is open before anything is counted
    yield browser, log, client
    await log.stop()
    await client.aclose()


async def test_a_cookieless_request_that_leaves_the_session_alone_costs_no_command(
    setup: Any,
) -> None:
    browser, log, _ = setup
    commands = await log.count_during(lambda: browser.get("/"))
    assert commands == []


async def test_a_new_session_with_data_costs_one_write(setup: Any) -> None:
    browser, log, _ = setup
    commands = await log.count_during(lambda: browser.get("/count"))
    assert [c.split(" ")[0].upper() for c in commands] == ["SET"]


async def test_a_read_only_request_costs_one_command_that_also_slides_the_expiry(
    setup: Any,
) -> None:
    browser, log, client = setup
    await browser.get("/count")
    await browser.get("/read")  # the server's first script call loads the script (once per server)
    key = "sess:" + sid_of(browser.cookie or "")
    await client.expire(key, 100)  # as if the session had been idle for almost an hour

    commands = await log.count_during(lambda: browser.get("/read"))

    assert len(commands) == 1, commands
    assert commands[0].upper().startswith("EVALSHA")
    assert 3590 <= await client.ttl(key) <= 3600


async def test_a_modified_session_costs_a_read_and_a_write(setup: Any) -> None:
    browser, log, client = setup
    await browser.get("/count")
    await browser.get("/count")  # loads both scripts into this fresh server

    commands = await log.count_during(lambda: browser.get("/count"))

    assert len(commands) == 2, commands
    record = await client.get("sess:" + sid_of(browser.cookie or ""))
    assert b'"views":3' in record


async def test_the_first_request_after_a_script_flush_still_costs_no_extra_round_trip_later(
    setup: Any,
) -> None:
    browser, log, client = setup
    await browser.get("/count")
    await client.script_flush()
    await browser.get("/read")  # reloads the script (EVALSHA, then EVAL once)

    commands = await log.count_during(lambda: browser.get("/read"))

    assert len(commands) == 1, commands


async def test_a_returning_visitor_costs_no_command_on_static_files_404s_and_skipped_routes(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "app.js").write_text("1")
    client = aioredis.Redis.from_url(private_redis.url)
    app = make_app(RedisStore(client))
    app.static_folder = str(static)

    @app.get("/healthz")
    @skip_session
    async def healthz() -> str:
        return "ok"

    log = CommandLog(private_redis.url)
    await log.start()
    try:
        browser = Browser(app.test_client(use_cookies=False))
        await browser.get("/count")
        for path in ("/static/app.js", "/nowhere", "/healthz"):
            response = await browser.get(path)
            assert response.status_code in (200, 404), path
            assert await log.count_during(lambda p=path: browser.get(p)) == [], path
    finally:
        await log.stop()
        await client.aclose()


async def test_round_trips_through_a_counting_proxy_read_1_counter_2_owned_listing_2(
    private_redis: RedisServer,
) -> None:
    """Round trips, not commands: what a request waits for. The multiplexed connection writes
    the commands of one loop iteration together, so `owned` (members, then each session's
    record and expiry) costs two whatever the number of sessions."""
    async with round_trip_proxy(private_redis.port) as proxy:
        store = RedisStore.from_url(proxy.url())
        app = make_app(store, cookie={"max_age": 3600})
        browser = Browser(app.test_client(use_cookies=False))
        for _ in range(3):  # warm: connected, scripts loaded
            await browser.post("/owner", json={"owner": "user:1"})
            await browser.get("/count")
        others = [Browser(app.test_client(use_cookies=False)) for _ in range(4)]
        for other in others:
            await other.post("/owner", json={"owner": "user:1"})
        cookieless = Browser(app.test_client(use_cookies=False))
        assert await proxy.count(cookieless.get("/")) == 0
        assert await proxy.count(browser.get("/read")) == 1
        assert await proxy.count(browser.get("/count")) == 2
        listing = await store.owned("user:1")
        assert len(listing) == 5
        assert await proxy.count(store.owned("user:1")) == 2
        await store.close()
