"""The lifecycle as Quart drives it: websockets, session_transaction, Quart's second save call."""

from __future__ import annotations

import asyncio
from typing import Any

from quart import Quart, jsonify, session, websocket

from sessions import Store
from tests.sessions.conftest import Browser, make_app, sid_of


async def test_a_websocket_changes_the_session_it_opened_with(store: Store) -> None:
    """No response carries a cookie, but the data reaches the store."""
    app = make_app(store)

    @app.websocket("/ws")
    async def echo() -> None:
        session["from_ws"] = await websocket.receive()
        await websocket.send("saved")

    browser = Browser(app.test_client(use_cookies=False))
    await browser.get("/count")
    assert browser.cookie is not None
    async with app.test_client().websocket(
        "/ws", headers={"Cookie": f"connect.sid={browser.cookie}"}
    ) as ws:
        await ws.send("hello")
        assert await ws.receive() == "saved"
    # Quart saves a websocket's session when its handler returns, after the socket closed.
    for _ in range(100):
        record = await store.get(sid_of(browser.cookie))
        if record is not None and "from_ws" in record:
            break
        await asyncio.sleep(0.02)
    assert record is not None and record["from_ws"] == "hello" and record["views"] == 1


async def test_a_websocket_stores_no_new_session_since_no_cookie_could_name_it(
    store: Store,
) -> None:
    app = make_app(store)

    @app.websocket("/ws")
    async def echo() -> None:
        session["from_ws"] = await websocket.receive()
        await websocket.send("done")

    async with app.test_client().websocket("/ws") as ws:  # no cookie: a new session
        await ws.send("hello")
        assert await ws.receive() == "done"
    await asyncio.sleep(0.2)
    assert await store.ids() == []


async def test_session_transaction_sets_up_a_session_for_a_test(store: Store) -> None:
    app = make_app(store)
    client = app.test_client()
    async with client.session_transaction() as prepared:
        prepared["views"] = 41
    body = await (await client.get("/count")).get_json()
    assert body["views"] == 42


async def test_the_end_of_a_request_is_carried_out_once_even_when_quart_asks_twice(
    store: Store,
) -> None:
    app = make_app(store)
    writes: list[str] = []
    original = store.write

    async def counting(sid: str, record: bytes, expires_ms: int | None) -> None:
        writes.append(sid)
        await original(sid, record, expires_ms)

    store.write = counting  # type: ignore[method-assign]

    @app.get("/twice")
    async def twice() -> Any:
        session["a"] = 1
        return jsonify(ok=True)

    @app.after_request
    async def save_again(response: Any) -> Any:
        await app.session_interface.save_session(app, session._get_current_object(), response)  # type: ignore[attr-defined]
        return response

    response = await app.test_client(use_cookies=False).get("/twice")
    assert response.status_code == 200
    assert len(writes) == 1
    assert len(response.headers.getlist("Set-Cookie")) == 1
    del store.write


async def test_each_request_has_a_session_of_its_own(store: Store) -> None:
    app = make_app(store)
    one, two = (
        Browser(app.test_client(use_cookies=False)),
        Browser(app.test_client(use_cookies=False)),
    )
    await one.get("/count")
    await two.get("/count")
    await two.get("/count")
    assert (await (await one.get("/count")).get_json())["views"] == 2
    assert one.cookie != two.cookie


async def test_an_app_without_the_extension_keeps_quarts_own_sessions() -> None:
    app = Quart(__name__)
    app.secret_key = "quart's own"

    @app.get("/")
    async def index() -> Any:
        session["n"] = 1
        return "ok"

    response = await app.test_client().get("/")
    assert response.headers["Set-Cookie"].startswith("session=")
