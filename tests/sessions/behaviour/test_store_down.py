"""A stopped store: pages that do not use the session still render; the rest get a 503; recovery is automatic."""

from __future__ import annotations

import logging

import pytest

from deploy.postgres_server import PostgresServer
from deploy.redis_server import RedisServer
from sessions import PostgresStore, RedisStore, SessionUnavailable, Store
from tests.sessions.conftest import Browser, make_app


@pytest.fixture
def store(private_redis: RedisServer) -> RedisStore:
    return RedisStore.from_url(private_redis.url, timeout=1.0)


@pytest.fixture(params=["redis", "postgres"])
def stoppable(request: pytest.FixtureRequest) -> tuple[RedisServer | PostgresServer, Store]:
    """A private server of each kind and a store on it with one-second timeouts."""
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("private_redis")
        return redis, RedisStore.from_url(redis.url, timeout=1.0)
    postgres: PostgresServer = request.getfixturevalue("private_postgres")
    return postgres, PostgresStore.from_url(postgres.url, connect_timeout=1, statement_timeout=1)


async def test_pages_keep_working_or_answer_503_while_the_store_is_down_and_recover_after(
    stoppable: tuple[RedisServer | PostgresServer, Store], caplog: pytest.LogCaptureFixture
) -> None:
    server, store = stoppable
    app = make_app(store)
    browser = Browser(app.test_client(use_cookies=False))
    assert (await (await browser.get("/count")).get_json())["views"] == 1

    server.stop()
    caplog.set_level(logging.WARNING, logger="sessions")

    untouched = await browser.get("/")
    assert untouched.status_code == 200
    assert await untouched.get_data(as_text=True) == "hello"

    reading = await browser.get("/count")
    assert reading.status_code == 503
    assert reading.headers["Retry-After"] == "5"
    assert "Traceback" not in await reading.get_data(as_text=True)

    newcomer = Browser(app.test_client(use_cookies=False))
    writing = await newcomer.get("/count")
    assert writing.status_code == 503
    assert writing.headers["Retry-After"] == "5"
    assert not writing.headers.getlist("Set-Cookie")

    assert any("unavailable" in record.getMessage() for record in caplog.records)
    assert all(
        record.levelno < logging.ERROR for record in caplog.records if record.name == "sessions"
    )

    server.start()  # same port, same data

    recovered = await browser.get("/count")
    assert recovered.status_code == 200
    assert (await recovered.get_json())["views"] == 2
    await store.close()


async def test_the_apps_own_503_page_is_used_when_it_registers_one(
    private_redis: RedisServer, store: RedisStore
) -> None:
    app = make_app(store)

    @app.errorhandler(SessionUnavailable)
    async def sessions_down(error: SessionUnavailable) -> tuple[str, int]:
        return "<h1>Back in a moment</h1>", 503

    returning = Browser(app.test_client(use_cookies=False))
    await returning.get("/count")
    private_redis.stop()
    for browser, path in (
        (Browser(app.test_client(use_cookies=False)), "/count"),
        (returning, "/read"),
    ):
        response = await browser.get(path)
        assert response.status_code == 503
        assert "Back in a moment" in await response.get_data(as_text=True)
        assert response.headers["Retry-After"]
    await store.close()


async def test_a_slow_redis_times_out_with_503_instead_of_hanging(
    private_redis: RedisServer,
) -> None:
    import asyncio
    import time

    import redis.asyncio as aioredis

    store = RedisStore.from_url(private_redis.url, timeout=0.3)
    app = make_app(store)
    browser = Browser(app.test_client(use_cookies=False))
    await browser.get("/count")

    admin = aioredis.Redis.from_url(private_redis.url)
    sleeper = asyncio.create_task(admin.execute_command("DEBUG", "SLEEP", "1.5"))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    response = await browser.get("/count")
    elapsed = time.monotonic() - started
    await sleeper
    await admin.aclose()

    assert response.status_code == 503
    assert elapsed < 1.4  # it gave up on the store timeout, not when Redis woke up
    await store.close()


@pytest.mark.parametrize("multiplex", [True, False])
async def test_a_master_refusing_writes_for_lack_of_replicas_is_a_503(
    tmp_path_factory: pytest.TempPathFactory, multiplex: bool
) -> None:
    """`min-replicas-to-write` (the Sentinel advice in the README) answers NOREPLICAS: a 503."""
    server = RedisServer(
        tmp_path_factory.mktemp("noreplicas"),
        durable=False,
        options=("--min-replicas-to-write", "1"),
    )
    server.start()
    store = RedisStore.from_url(server.url, timeout=1.0, multiplex=multiplex)
    try:
        response = await make_app(store).test_client(use_cookies=False).get("/count")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
    finally:
        await store.close()
        server.stop()
