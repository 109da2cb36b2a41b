"""The stored record: express's layout, exact originalMaxAge, and connect-redis's keys and TTLs."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from quart import jsonify, session

from sessions import RedisStore, Store
from tests.sessions.behaviour.support import (
    ISO_MS_Z,
    browser,
    expires_of,
    only_cookie,
    raw_of,
    signed,
)
from tests.sessions.conftest import Browser, make_app, set_cookies


async def test_stored_record_has_the_express_json_layout(store: Store) -> None:
    """The record is compact JSON: cookie first (originalMaxAge ms, ISO expires ending in Z), then the data."""
    app = make_app(store, cookie={"max_age": 60})
    before = datetime.now(UTC)
    response = await app.test_client(use_cookies=False).get("/count")
    raw = await raw_of(store, (await response.get_json())["id"])
    assert raw is not None
    assert raw.startswith(b'{"cookie":{"originalMaxAge":60000,"expires":"')
    record = json.loads(raw)
    assert list(record) == ["cookie", "views"]
    assert list(record["cookie"]) == [
        "originalMaxAge",
        "expires",
        "secure",
        "httpOnly",
        "path",
        "sameSite",
    ]
    cookie = record["cookie"]
    assert ISO_MS_Z.fullmatch(cookie["expires"]), cookie["expires"]
    assert (cookie["secure"], cookie["httpOnly"], cookie["path"], cookie["sameSite"]) == (
        False,
        True,
        "/",
        "lax",
    )
    expires = datetime.fromisoformat(cookie["expires"])
    assert timedelta(seconds=59) < expires - before <= timedelta(seconds=61)
    assert raw.endswith(b',"views":1}')


async def test_browser_session_record_has_null_max_age_and_expires(store: Store) -> None:
    """Without max_age the stored cookie has originalMaxAge null and expires null (same_site False kept)."""
    app = make_app(store, cookie={"same_site": False})
    response = await app.test_client(use_cookies=False).get("/count")
    raw = await raw_of(store, (await response.get_json())["id"])
    assert raw == (
        b'{"cookie":{"originalMaxAge":null,"expires":null,"secure":false,'
        b'"httpOnly":true,"path":"/","sameSite":false},"views":1}'
    )


async def test_stored_keys_named_like_session_methods_are_plain_data(store: Store) -> None:
    """A stored 'save' or 'regenerate' key is just data: it does not break loading or save()."""
    await store.set(
        "methodnames",
        {"cookie": {"originalMaxAge": None, "path": "/"}, "save": "x", "regenerate": 1},
    )
    app = make_app(store)
    client = browser(app)
    client.cookie = signed("methodnames")
    response = await client.post("/save-then-change")
    assert response.status_code == 200
    assert (await response.get_json())["id"] == "methodnames"
    record = await store.get("methodnames")
    assert record is not None
    assert (record["save"], record["regenerate"], record["a"]) == ("x", 1, 1)


async def test_app_set_cookie_headers_are_kept_beside_the_session_cookie(store: Store) -> None:
    """A Set-Cookie the app set itself stays, and the session cookie is added after it."""
    app = make_app(store)

    @app.get("/theme")
    async def theme() -> Any:
        session["theme"] = "dark"
        response = jsonify(ok=True)
        response.set_cookie("theme", "dark")
        return response

    response = await app.test_client(use_cookies=False).get("/theme")
    headers = response.headers.getlist("Set-Cookie")
    assert len(headers) == 2
    assert headers[0].startswith("theme=dark")
    assert headers[1].startswith("connect.sid=s%3A")


async def test_original_max_age_stays_and_each_read_slides_max_age_back_to_it(
    store: Store,
) -> None:
    """original_max_age stays 60 across requests; the read at the start of each request slides the expiry."""
    app = make_app(store, cookie={"max_age": 60})

    @app.get("/cookie")
    async def cookie_info() -> Any:
        return jsonify(original=session.cookie.original_max_age, left=session.cookie.max_age)

    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    await asyncio.sleep(0.3)
    for _ in range(2):
        body = await (await client.get("/cookie")).get_json()
        assert body["original"] == 60
        assert 59.9 < body["left"] <= 60
    record = await store.get(sid)
    assert record is not None
    assert record["cookie"]["originalMaxAge"] == 60000


@pytest.mark.parametrize(
    ("seconds", "milliseconds"), [(5, 5000), (3_000_000, 3_000_000_000), (1.5, 1500)]
)
async def test_max_age_set_in_a_handler_sets_expires_and_original_max_age(
    store: Store, seconds: float, milliseconds: int
) -> None:
    """session.cookie.max_age = N: Expires is N seconds away and originalMaxAge is N*1000 exactly."""
    app = make_app(store)
    before = datetime.now(UTC)
    response = await app.test_client(use_cookies=False).post("/max-age", json={"seconds": seconds})
    after = datetime.now(UTC)
    expires = expires_of(only_cookie(response))
    assert (before + timedelta(seconds=seconds)).replace(microsecond=0) <= expires
    assert expires <= after + timedelta(seconds=seconds)
    record = await store.get((await response.get_json())["id"])
    assert record is not None
    assert record["cookie"]["originalMaxAge"] == milliseconds


async def test_expires_in_the_past_deletes_the_record(store: Store) -> None:
    """A cookie whose expiry has passed is not stored: saving it deletes the record."""
    app = make_app(store)

    @app.post("/expire-now")
    async def expire_now() -> Any:
        session.cookie.expires = datetime.now(UTC) - timedelta(seconds=5)
        session["late"] = True
        return jsonify(id=session.id)

    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    assert await store.ids() == [sid]
    await client.post("/expire-now")
    assert await store.get(sid) is None
    assert await store.ids() == []
    fresh = await app.test_client(use_cookies=False).post("/expire-now")
    assert fresh.status_code == 200
    assert await store.ids() == []


async def redis_app_session(
    redis_client: aioredis.Redis, key_prefix: str, **options: Any
) -> tuple[Browser, str]:
    ttl = options.pop("ttl", 86400)
    app = make_app(RedisStore(redis_client, prefix=key_prefix, ttl=ttl), **options)
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    return client, sid


async def test_redis_key_is_prefix_plus_id_holding_the_record(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """The Redis key is <prefix><sid>, and its value is the express JSON record."""
    _, sid = await redis_app_session(redis_client, key_prefix)
    value = await redis_client.get(key_prefix + sid)
    assert value is not None
    assert json.loads(value)["views"] == 1


async def test_redis_ttl_is_the_time_left_until_cookie_expiry(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """With a cookie expiry the key's TTL is ceil(expires - now)."""
    _, sid = await redis_app_session(redis_client, key_prefix, cookie={"max_age": 100})
    assert await redis_client.ttl(key_prefix + sid) == 100
    assert 99_000 < await redis_client.pttl(key_prefix + sid) <= 100_000


async def test_redis_key_expires_with_the_cookie_to_the_millisecond(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """A cookie expiring in 100.2 s gives the key 100.2 s (PX), never a TTL that ends before the cookie."""
    _, sid = await redis_app_session(redis_client, key_prefix, cookie={"max_age": 100.2})
    assert 100_000 < await redis_client.pttl(key_prefix + sid) <= 100_200


async def test_redis_ttl_is_86400_without_cookie_expiry(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """A browser-session cookie's record lives for the store's ttl, 86400 s by default."""
    _, sid = await redis_app_session(redis_client, key_prefix)
    assert await redis_client.ttl(key_prefix + sid) == 86400


async def test_redis_ttl_function_wins_over_cookie_expiry(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """A ttl function decides the TTL even when the cookie has an expiry."""
    seen: list[dict[str, Any]] = []

    def ttl(record: dict[str, Any]) -> int:
        seen.append(record)
        return 42

    _, sid = await redis_app_session(redis_client, key_prefix, ttl=ttl, cookie={"max_age": 100})
    assert await redis_client.ttl(key_prefix + sid) == 42
    assert seen and seen[-1]["views"] == 1


async def test_redis_touch_rewrites_only_the_stored_expiry(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """An unchanged loaded session: only the 24 characters of cookie.expires change, and the key's TTL follows."""
    client, sid = await redis_app_session(redis_client, key_prefix, cookie={"max_age": 100})
    key = key_prefix + sid
    await redis_client.pexpire(key, 30_000)
    before = await redis_client.get(key)
    await asyncio.sleep(0.02)
    response = await client.get("/read")
    after = await redis_client.get(key)
    assert set_cookies(response) == []
    old_expires = json.loads(before)["cookie"]["expires"]
    new_expires = json.loads(after)["cookie"]["expires"]
    assert new_expires > old_expires
    assert after == before.replace(old_expires.encode(), new_expires.encode())
    assert 99_900 < await redis_client.pttl(key) <= 100_000


async def test_redis_touch_without_expiry_resets_to_the_store_ttl(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """Without a cookie expiry, a touch gives the key the store's ttl again."""
    client, sid = await redis_app_session(redis_client, key_prefix, ttl=500)
    key = key_prefix + sid
    assert await redis_client.ttl(key) == 500
    await redis_client.expire(key, 30)
    await client.get("/read")
    assert await redis_client.ttl(key) == 500


async def test_redis_past_expiry_deletes_the_key(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """Saving a session whose cookie already expired deletes the key instead of SET with EX <= 0."""
    store = RedisStore(redis_client, prefix=key_prefix)
    await store.set("gone", {"cookie": {"originalMaxAge": 1, "path": "/"}, "v": 1})
    assert await redis_client.exists(key_prefix + "gone") == 1
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await store.set("gone", {"cookie": {"expires": past, "path": "/"}, "v": 2})
    assert await redis_client.exists(key_prefix + "gone") == 0


async def test_redis_ttl_is_never_below_the_remaining_cookie_life(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """After later requests the key's TTL still covers the cookie's remaining lifetime."""
    client, sid = await redis_app_session(redis_client, key_prefix, cookie={"max_age": 100})
    response = await client.get("/count")
    expires = expires_of(only_cookie(response))
    left = (expires - datetime.now(UTC)).total_seconds()
    assert await redis_client.ttl(key_prefix + sid) >= math.floor(left)
