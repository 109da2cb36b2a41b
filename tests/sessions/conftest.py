"""Fixtures for sessions/: one behavioural suite, run against every store."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from quart import Quart, jsonify, request, session
from quart.typing import TestClientProtocol

from sessions import FileStore, MemoryStore, PostgresStore, RedisStore, Sessions, Store

SECRET = "keyboard cat"
STORE_KINDS = ["memory", "file", "redis", "redis-multiplexed", "postgres"]


@pytest.fixture(params=STORE_KINDS)
async def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    key_prefix: str,
    redis_url: str,
    redis_client: aioredis.Redis,
) -> AsyncIterator[Store]:
    """Each store kind in turn: Memory, File (in tmp_path), Redis (own prefix on the suite's Redis)
    through a redis-py client, and through `from_url`'s multiplexed connection."""
    kind = request.param
    if kind == "memory":
        yield MemoryStore()
    elif kind == "file":
        yield FileStore(tmp_path / "sessions")
    elif kind == "redis":
        yield RedisStore(redis_client, prefix=key_prefix)
    elif kind == "postgres":  # a database of this test's own on the suite's PostgreSQL
        yield (store := PostgresStore.from_url(request.getfixturevalue("postgres_database")))
        await store.close()
    else:
        store = RedisStore.from_url(redis_url, prefix=key_prefix)
        yield store
        await store.close()


def unused_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["file", "redis", "redis-multiplexed", "postgres"])
async def unreachable_store(
    request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str
) -> AsyncIterator[Store]:
    """Each store kind that can fail, failing: a folder that is a file, a Redis that is not there."""
    if request.param == "file":
        (tmp_path / "sessions").write_text("not a folder")
        yield FileStore(tmp_path / "sessions")
    elif request.param == "postgres":
        yield (
            store := PostgresStore.from_url(f"postgresql://postgres@127.0.0.1:{unused_port()}/x")
        )
        await store.close()
    elif request.param == "redis":
        client = aioredis.Redis(host="127.0.0.1", port=unused_port(), socket_connect_timeout=1)
        yield RedisStore(client, prefix=key_prefix)
        await client.aclose()
    else:
        store = RedisStore.from_url(f"redis://127.0.0.1:{unused_port()}/0", prefix=key_prefix)
        yield store
        await store.close()


def make_app(store: Store, **options: Any) -> Quart:
    """A small app exercising the session API; options go to Sessions()."""
    app = Quart(__name__)
    app.config["TESTING"] = True
    options.setdefault("secret", SECRET)
    Sessions(app, store=store, **options)

    @app.get("/")
    async def untouched() -> str:
        return "hello"

    @app.get("/count")
    async def count() -> Any:
        session["views"] = session.get("views", 0) + 1
        return jsonify(views=session["views"], id=session.id)

    @app.get("/read")
    async def read() -> Any:
        return jsonify(data=dict(session), id=session.id)

    @app.post("/set")
    async def set_value() -> Any:
        values = await request.get_json()
        session.update(values)
        return jsonify(id=session.id)

    @app.post("/nested")
    async def nested() -> Any:
        session.setdefault("cart", {"items": []})["items"].append(len(session["cart"]["items"]))
        return jsonify(cart=session["cart"])

    @app.post("/regenerate")
    async def regenerate() -> Any:
        old = session.id
        await session.regenerate()
        session["fresh"] = True
        return jsonify(old=old, new=session.id)

    @app.post("/regenerate-empty")
    async def regenerate_empty() -> Any:
        await session.regenerate()
        return jsonify(id=session.id)

    @app.post("/destroy")
    async def destroy() -> Any:
        await session.destroy()
        return jsonify(ok=True)

    @app.post("/unset")
    async def unset() -> Any:
        session.unset()
        return jsonify(ok=True)

    @app.post("/save-then-change")
    async def save_then_change() -> Any:
        session["a"] = 1
        await session.save()
        return jsonify(id=session.id)

    @app.post("/max-age")
    async def max_age() -> Any:
        session.cookie.max_age = (await request.get_json())["seconds"]
        session["touched"] = True
        return jsonify(id=session.id)

    @app.get("/boom")
    async def boom() -> Any:
        session["lost"] = True
        raise RuntimeError("handler failed")

    @app.post("/owner")
    async def owner() -> Any:
        session.owner = (await request.get_json())["owner"]
        return jsonify(id=session.id)

    return app


COOKIE = re.compile(r"^connect\.sid=([^;]*)")


def set_cookies(response: Any, name: str = "connect.sid") -> list[str]:
    """The Set-Cookie headers for the session cookie."""
    return [
        value for value in response.headers.getlist("Set-Cookie") if value.startswith(name + "=")
    ]


def cookie_value(response: Any) -> str | None:
    """The session cookie's value from a response, or None when it set none."""
    headers = set_cookies(response)
    if not headers:
        return None
    match = COOKIE.match(headers[-1])
    return match.group(1) if match else None


def sid_of(value: str) -> str:
    """The id inside a signed cookie value."""
    from urllib.parse import unquote

    return unquote(value)[2:].rpartition(".")[0]


class Browser:
    """A cookie-keeping client that sends exactly the session cookie it was given."""

    def __init__(self, client: TestClientProtocol, name: str = "connect.sid") -> None:
        self.client = client
        self.name = name
        self.cookie: str | None = None

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if self.cookie is not None:
            headers["Cookie"] = f"{self.name}={self.cookie}"
        response = await self.client.open(path, method=method, headers=headers, **kwargs)
        value = cookie_value(response)
        if value is not None:
            self.cookie = None if value == "" else value
        return response

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.request("POST", path, **kwargs)


@pytest.fixture
def browser_for() -> Callable[[Quart], Browser]:
    """Make a Browser (a test client without Quart's own cookie jar) for an app."""

    def make(app: Quart) -> Browser:
        return Browser(app.test_client(use_cookies=False))

    return make
