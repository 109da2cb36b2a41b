"""Failed handlers, the write before the response, secrets, and a Redis that comes back."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from quart import Quart, jsonify, session

from sessions import RedisStore, Sessions, Store
from tests.sessions.behaviour.support import (
    browser,
    signed,
    warnings_from_sessions,
)
from tests.sessions.conftest import cookie_value, make_app, set_cookies, sid_of


async def test_server_error_discards_session_changes(store: Store) -> None:
    """A 5xx response saves nothing: neither a new session nor a loaded session's change."""
    app = make_app(store)
    client = browser(app)
    response = await client.get("/boom")
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert await store.ids() == []
    sid = (await (await client.get("/count")).get_json())["id"]
    assert (await client.get("/boom")).status_code == 500
    record = await store.get(sid)
    assert record is not None
    assert "lost" not in record
    assert record["views"] == 1


async def test_explicitly_saved_session_survives_a_server_error(store: Store) -> None:
    """What the handler saved with save() before failing is kept."""
    app = make_app(store)

    @app.get("/save-then-boom")
    async def save_then_boom() -> Any:
        session["kept"] = True
        await session.save()
        raise RuntimeError("handler failed after saving")

    response = await app.test_client(use_cookies=False).get("/save-then-boom")
    assert response.status_code == 500
    [sid] = await store.ids()
    record = await store.get(sid)
    assert record is not None
    assert record["kept"] is True


async def test_session_is_stored_before_the_response_starts(store: Store) -> None:
    """The record is in the store by the time the response headers go out (no redirect race)."""
    app = make_app(store)
    seen: dict[str, Any] = {}
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [(k.decode().lower(), v.decode()) for k, v in message["headers"]]
            [value] = [v for k, v in headers if k == "set-cookie"]
            sid = sid_of(value.split(";", 1)[0].split("=", 1)[1])
            seen["record"] = await store.get(sid)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/count",
        "raw_path": b"/count",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
        "extensions": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    assert seen["record"] is not None
    assert seen["record"]["views"] == 1


async def test_missing_secret_fails_at_startup_instead_of_every_request(store: Store) -> None:
    """No secret is a start-up error; an empty secret list is rejected too."""
    app = Quart(__name__)
    with pytest.raises(RuntimeError, match="secret"):
        Sessions(app, store=store)
    with pytest.raises(ValueError):
        Sessions(Quart(__name__), store=store, secret=[])


async def test_secret_key_and_fallbacks_sign_and_verify(store: Store) -> None:
    """Without secret=, SECRET_KEY signs and SECRET_KEY_FALLBACKS still verify."""
    app = Quart(__name__)
    app.config.update(SECRET_KEY="new", SECRET_KEY_FALLBACKS=["old"])
    Sessions(app, store=store, cookie={"max_age": 60})

    @app.get("/count")
    async def count() -> Any:
        session["views"] = session.get("views", 0) + 1
        return jsonify(views=session["views"])

    expires = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    cookie = {"originalMaxAge": 60000, "expires": expires, "path": "/"}
    await store.set("rotated", {"cookie": cookie, "views": 4})
    response = await app.test_client(use_cookies=False).get(
        "/count", headers={"Cookie": f"connect.sid={signed('rotated', 'old')}"}
    )
    assert await response.get_json() == {"views": 5}
    assert cookie_value(response) == signed("rotated", "new")


async def test_unreachable_redis_spares_untouched_pages_and_recovers_after_restart(
    private_redis: Any, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down: pages not using the session render, using it is a 503; after restart the session is back."""
    store = RedisStore.from_url(private_redis.url, prefix=key_prefix, timeout=1.0)
    app = make_app(store)
    client = browser(app)
    try:
        sid = (await (await client.get("/count")).get_json())["id"]
        private_redis.stop()
        with caplog.at_level(logging.WARNING, logger="sessions"):
            page = await client.get("/")
            assert page.status_code == 200
            assert set_cookies(page) == []
            down = await client.get("/count")
        assert down.status_code == 503
        assert down.headers.get("Retry-After")
        assert warnings_from_sessions(caplog)
        private_redis.start()
        assert await (await client.get("/count")).get_json() == {"views": 2, "id": sid}
    finally:
        await store.close()
