"""RedisStore on a real 3-master Redis Cluster: the session lifecycle, the owner index, and
`all/ids/length/clear` covering the sessions of every master."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart, jsonify, request, session
from redis.asyncio.cluster import RedisCluster

from sessions import RedisStore
from tests.redis_topologies import RedisCluster3, command
from tests.sessions.behaviour.support import app_with_login
from tests.sessions.conftest import Browser, make_app, sid_of

PREFIX = "sess:"


@pytest.fixture
async def cluster_client(redis_cluster: RedisCluster3) -> AsyncIterator[RedisCluster]:
    client = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    await client.initialize()
    yield client
    await client.aclose()


@pytest.fixture
def store(cluster_client: RedisCluster) -> RedisStore:
    return RedisStore(cluster_client, prefix=PREFIX)


def browser(app: Quart) -> Browser:
    return Browser(app.test_client(use_cookies=False))


def sid(browser: Browser) -> str:
    assert browser.cookie is not None, "the browser holds no session cookie"
    return sid_of(browser.cookie)


async def views(visitor: Browser) -> int:
    response = await visitor.get("/count")
    assert response.status_code == 200, await response.get_data(as_text=True)
    return int((await response.get_json())["views"])


def stored(cluster: RedisCluster3, sid: str) -> dict[str, Any] | None:
    """The record as the master that owns its hash slot holds it (asked directly, no redirects)."""
    raw = command(cluster.node_of(PREFIX + sid), "GET", PREFIX + sid)
    return None if raw is None else dict(json.loads(raw))


async def sessions_on_every_master(
    app: Quart, cluster: RedisCluster3, method: str = "GET", path: str = "/count"
) -> list[Browser]:
    """New visitors, one request each, until each of the 3 masters holds one of their sessions."""
    browsers: list[Browser] = []
    masters: set[int] = set()
    while len(masters) < 3:
        assert len(browsers) < 60, f"60 sessions and only masters {masters} hold any"
        visitor = browser(app)
        assert (await visitor.request(method, path)).status_code == 200
        browsers.append(visitor)
        masters.add(cluster.node_of(PREFIX + sid(visitor)))
    return browsers


async def test_a_new_session_counts_views_on_the_master_of_its_slot(
    store: RedisStore, redis_cluster: RedisCluster3
) -> None:
    visitor = browser(make_app(store))

    counted = [await views(visitor) for _ in range(3)]

    assert counted == [1, 2, 3]
    record = stored(redis_cluster, sid(visitor))
    assert record is not None and record["views"] == 3
    ttl = int(command(redis_cluster.node_of(PREFIX + sid(visitor)), "TTL", PREFIX + sid(visitor)))
    assert 86000 < ttl <= 86400


async def test_a_read_only_request_reads_the_session_without_rewriting_it(
    store: RedisStore, redis_cluster: RedisCluster3
) -> None:
    visitor = browser(make_app(store))
    await visitor.post("/set", json={"theme": "dark"})
    key = PREFIX + sid(visitor)
    master = redis_cluster.node_of(key)
    command(master, "EXPIRE", key, 100)  # the read's sliding expiry must bring it back up
    before = command(master, "GET", key)

    response = await visitor.get("/read")

    assert (await response.get_json())["data"] == {"theme": "dark"}
    assert not response.headers.getlist("Set-Cookie")
    assert command(master, "GET", key) == before
    assert int(command(master, "TTL", key)) > 86000


async def test_regenerate_moves_the_session_to_a_new_key_and_deletes_the_old_one(
    store: RedisStore, redis_cluster: RedisCluster3
) -> None:
    visitor = browser(make_app(store))
    await visitor.post("/set", json={"cart": ["book"]})
    old = sid(visitor)

    response = await visitor.post("/regenerate")

    ids = await response.get_json()
    assert ids["old"] == old and ids["new"] == sid(visitor) != old
    assert stored(redis_cluster, old) is None
    record = stored(redis_cluster, ids["new"])
    assert record is not None and record["fresh"] is True and "cart" not in record
    assert (await (await visitor.get("/read")).get_json())["data"] == {"fresh": True}


async def test_destroy_deletes_the_record_and_clears_the_cookie(
    store: RedisStore, redis_cluster: RedisCluster3
) -> None:
    visitor = browser(make_app(store))
    await visitor.get("/count")
    destroyed = sid(visitor)

    await visitor.post("/destroy")

    assert visitor.cookie is None
    assert stored(redis_cluster, destroyed) is None
    assert await store.get(destroyed) is None
    assert (await (await visitor.get("/count")).get_json())["views"] == 1


async def test_parallel_requests_changing_different_keys_are_merged(
    store: RedisStore, redis_cluster: RedisCluster3
) -> None:
    app = make_app(store)
    barrier = asyncio.Barrier(3)

    @app.post("/slow")
    async def slow() -> Any:
        values = await request.get_json()
        await barrier.wait()  # all three loaded the same version before any of them saves
        session.update(values)
        return jsonify(ok=True)

    visitor = browser(app)
    await visitor.post("/set", json={"start": 1})

    await asyncio.gather(
        visitor.post("/slow", json={"cart": ["book"]}),
        visitor.post("/slow", json={"theme": "dark"}),
        visitor.post("/slow", json={"lang": "fr"}),
    )

    record = stored(redis_cluster, sid(visitor))
    assert record is not None
    assert {k: record.get(k) for k in ("start", "cart", "theme", "lang")} == {
        "start": 1,
        "cart": ["book"],
        "theme": "dark",
        "lang": "fr",
    }


async def test_the_owner_index_lists_and_signs_out_sessions_held_by_every_master(
    store: RedisStore, redis_cluster: RedisCluster3
) -> None:
    app = app_with_login(store)
    devices = await sessions_on_every_master(app, redis_cluster, "POST", "/login/ann")
    ann = {sid(device) for device in devices}
    assert {redis_cluster.node_of(PREFIX + one) for one in ann} == set(redis_cluster.ports)
    bob = browser(app)
    await bob.post("/login/bob")

    listed = await store.owned("user:ann")

    assert {info.id for info in listed} == ann
    assert all(info.data == {"agent": "ann"} and info.expires is not None for info in listed)

    keep = sid(devices[0])
    deleted = await store.destroy_owned("user:ann", keep=keep)

    assert deleted == len(ann) - 1
    assert [info.id for info in await store.owned("user:ann")] == [keep]
    assert all(stored(redis_cluster, one) is None for one in ann - {keep})
    for device in devices[1:]:
        assert (await (await device.get("/read")).get_json())["data"] == {}
    assert (await (await devices[0].get("/read")).get_json())["data"] == {"agent": "ann"}
    assert [info.id for info in await store.owned("user:bob")] == [sid(bob)]


async def test_all_ids_length_and_clear_cover_the_sessions_of_every_master(
    store: RedisStore, redis_cluster: RedisCluster3
) -> None:
    app = make_app(store)
    browsers = await sessions_on_every_master(app, redis_cluster)
    expected = {sid(visitor) for visitor in browsers}
    sizes = redis_cluster.dbsizes()
    assert all(size > 0 for size in sizes.values()), sizes
    assert sum(sizes.values()) == len(expected)

    assert set(await store.ids()) == expected
    assert await store.length() == len(expected)
    everything = await store.all()
    assert set(everything) == expected
    assert all(record["views"] == 1 for record in everything.values())

    await store.clear()

    assert redis_cluster.dbsizes() == dict.fromkeys(redis_cluster.ports, 0)
    assert await store.ids() == []
    assert await store.length() == 0
    assert await store.all() == {}


async def test_a_cluster_with_every_master_stopped_answers_503_not_500(
    stoppable_redis_cluster: RedisCluster3,
) -> None:
    client = RedisCluster(
        host="127.0.0.1",
        port=stoppable_redis_cluster.ports[0],
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
    )
    app = make_app(RedisStore(client, prefix=PREFIX))
    visitor = browser(app)
    try:
        assert await views(visitor) == 1
        for node in stoppable_redis_cluster.nodes:
            node.stop()

        untouched = await visitor.get("/")
        reading = await visitor.get("/count")

        assert untouched.status_code == 200, "a page that never touches the session failed"
        assert reading.status_code == 503, await reading.get_data(as_text=True)
        assert reading.headers["Retry-After"] == "5"
    finally:
        await client.aclose()
