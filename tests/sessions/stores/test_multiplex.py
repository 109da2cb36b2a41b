"""The multiplexed connection: many requests share one socket, and every reply reaches its caller."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from deploy.redis_server import RedisServer
from sessions import RedisStore
from sessions.errors import StoreUnavailable
from sessions.expiry import now_ms
from sessions.stores.multiplex import MultiplexedConnection


async def clients_connected(url: str) -> int:
    admin = aioredis.Redis.from_url(url)
    try:
        info = await admin.info("clients")
        return int(info["connected_clients"]) - 1
    finally:
        await admin.aclose()


async def test_hundreds_of_concurrent_commands_each_get_their_own_reply(
    redis_url: str, key_prefix: str
) -> None:
    connection = MultiplexedConnection.from_url(redis_url)
    assert connection is not None
    try:
        keys = [f"{key_prefix}{n}" for n in range(300)]
        await asyncio.gather(*(connection.execute("SET", key, f"value {key}") for key in keys))
        replies = await asyncio.gather(*(connection.execute("GET", key) for key in keys))
        assert replies == [f"value {key}".encode() for key in keys]
    finally:
        await connection.execute("DEL", *keys)
        await connection.close()


async def test_all_requests_share_one_connection(private_redis: RedisServer) -> None:
    store = RedisStore.from_url(private_redis.url, prefix="one:")
    try:
        await asyncio.gather(*(store.load(f"id{n}") for n in range(50)))
        await asyncio.gather(
            *(store.write(f"id{n}", b'{"cookie":{}}', now_ms() + 60_000) for n in range(50))
        )
        assert await clients_connected(private_redis.url) == 1
    finally:
        await store.close()


async def test_error_replies_are_redis_py_exceptions(redis_url: str, key_prefix: str) -> None:
    connection = MultiplexedConnection.from_url(redis_url)
    assert connection is not None
    try:
        await connection.execute("SADD", key_prefix + "set", "member")
        with pytest.raises(redis_errors.ResponseError, match="WRONGTYPE"):
            await connection.execute("GET", key_prefix + "set")
        with pytest.raises(redis_errors.NoScriptError):
            await connection.execute("EVALSHA", "0" * 40, 0)
        assert await connection.execute("PING") == b"PONG", "the connection survives error replies"
    finally:
        await connection.execute("DEL", key_prefix + "set")
        await connection.close()


async def test_a_cancelled_caller_does_not_shift_the_replies_of_the_others(
    private_redis: RedisServer,
) -> None:
    connection = MultiplexedConnection.from_url(private_redis.url)
    admin = aioredis.Redis.from_url(private_redis.url)
    assert connection is not None
    try:
        await connection.execute("SET", "first", "1")
        await connection.execute("SET", "second", "2")
        sleeping = asyncio.create_task(admin.execute_command("DEBUG", "SLEEP", "0.3"))
        await asyncio.sleep(0.05)
        abandoned = asyncio.create_task(connection.execute("GET", "first"))
        await asyncio.sleep(0.05)
        abandoned.cancel()
        assert await connection.execute("GET", "second") == b"2"
        await sleeping
    finally:
        await connection.close()
        await admin.aclose()


async def test_a_restarted_redis_is_reconnected_without_an_error(
    private_redis: RedisServer,
) -> None:
    store = RedisStore.from_url(private_redis.url, prefix="restart:")
    try:
        await store.write("kept", b'{"cookie":{},"n":1}', now_ms() + 60_000)
        private_redis.stop()
        private_redis.start()
        assert await store.load("kept") == b'{"cookie":{},"n":1}'
    finally:
        await store.close()


async def test_redis_down_is_store_unavailable_quickly_and_recovers(
    private_redis: RedisServer,
) -> None:
    store = RedisStore.from_url(private_redis.url, prefix="down:", timeout=2.0)
    try:
        await store.write("kept", b'{"cookie":{}}', now_ms() + 60_000)
        private_redis.kill()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.load("kept")
        assert time.monotonic() - started < 1.0, "a refused connection is not a timeout"
        private_redis.start()
        assert await store.load("kept") == b'{"cookie":{}}'
    finally:
        await store.close()


async def test_a_redis_that_stops_answering_times_out_and_the_next_command_works(
    private_redis: RedisServer,
) -> None:
    store = RedisStore.from_url(private_redis.url, prefix="slow:", timeout=0.3)
    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        await store.write("kept", b'{"cookie":{}}', now_ms() + 60_000)
        sleeping = asyncio.create_task(admin.execute_command("DEBUG", "SLEEP", "1"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="did not answer"):
            await store.load("kept")
        assert 0.25 < time.monotonic() - started < 0.9
        await sleeping
        assert await store.load("kept") == b'{"cookie":{}}'
    finally:
        await store.close()
        await admin.aclose()


async def test_the_url_selects_the_database(private_redis: RedisServer) -> None:
    url = private_redis.url.rsplit("/", 1)[0] + "/3"
    store = RedisStore.from_url(url, prefix="db:")
    admin = aioredis.Redis.from_url(url)
    try:
        await store.write("here", b'{"cookie":{}}', now_ms() + 60_000)
        assert await admin.get("db:here") == b'{"cookie":{}}'
    finally:
        await store.close()
        await admin.aclose()


def test_a_password_in_the_url_is_sent(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = RedisServer(
        tmp_path_factory.mktemp("auth-redis"), durable=False, options=("--requirepass", "s3cr:t")
    )
    server.start()
    try:

        async def round_trip(url: str) -> bytes | None:
            store = RedisStore.from_url(url, prefix="auth:")
            try:
                await store.write("x", b'{"cookie":{}}', now_ms() + 60_000)
                return await store.load("x")
            finally:
                await store.close()

        good = f"redis://:s3cr%3At@127.0.0.1:{server.port}/0"
        assert asyncio.run(round_trip(good))
        with pytest.raises(StoreUnavailable):
            asyncio.run(round_trip(f"redis://127.0.0.1:{server.port}/0"))

        async def refused_again_and_again(url: str) -> int:
            store = RedisStore.from_url(url)
            try:
                for _ in range(20):
                    with pytest.raises(StoreUnavailable):
                        await store.load("x")
                await asyncio.sleep(0.1)  # let Redis see the closed sockets
                return await clients_connected(good)
            finally:
                await store.close()

        wrong = f"redis://:wrong@127.0.0.1:{server.port}/0"
        assert asyncio.run(refused_again_and_again(wrong)) == 0, "refused connections are closed"
        missing = f"redis://127.0.0.1:{server.port}/0"
        assert asyncio.run(refused_again_and_again(missing)) <= 1, "one connection, reused"
    finally:
        server.stop()


def test_one_store_serves_one_event_loop_after_another(private_redis: RedisServer) -> None:
    store = RedisStore.from_url(private_redis.url, prefix="loops:")
    asyncio.run(store.write("x", b'{"cookie":{}}', now_ms() + 60_000))
    assert asyncio.run(store.load("x")) == b'{"cookie":{}}'
    asyncio.run(store.close())


def test_urls_it_cannot_serve_fall_back_to_the_redis_py_pool() -> None:
    assert MultiplexedConnection.from_url("rediss://127.0.0.1:6379/0") is None
    assert MultiplexedConnection.from_url("redis://127.0.0.1:6379/0?ssl_cert_reqs=none") is None


@pytest.mark.parametrize(("multiplex", "most"), [(True, 1), (False, 30)])
async def test_concurrent_requests_share_one_connection_unless_multiplex_is_off(
    private_redis: RedisServer, multiplex: bool, most: int
) -> None:
    admin = aioredis.Redis.from_url(private_redis.url)
    store = RedisStore.from_url(private_redis.url, prefix="pool:", multiplex=multiplex)
    try:
        before = (await admin.info("clients"))["connected_clients"]
        await store.write("x", b'{"cookie":{}}', now_ms() + 60_000)
        loads = await asyncio.gather(*(store.load("x") for _ in range(30)))
        assert loads == [b'{"cookie":{}}'] * 30
        opened = (await admin.info("clients"))["connected_clients"] - before
        assert opened <= most
        if not multiplex:
            assert opened > 1  # redis-py's pool: a connection per concurrent command
    finally:
        await store.close()
        await admin.aclose()
