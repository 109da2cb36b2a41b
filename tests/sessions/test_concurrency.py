"""Parallel requests on one session: different keys both persist; the same key, the last write wins."""

from __future__ import annotations

import asyncio
from typing import Any

from quart import jsonify, request, session

from sessions import Store
from tests.sessions.conftest import Browser, make_app, sid_of


def app_with_barrier(store: Store, parties: int) -> tuple[Any, asyncio.Barrier]:
    """An app whose /slow route loads the session, waits for every party, then changes one key."""
    app = make_app(store)
    barrier = asyncio.Barrier(parties)

    @app.post("/slow")
    async def slow() -> Any:
        values = await request.get_json()
        await barrier.wait()  # every request has loaded the same version before anyone saves
        session.update(values)
        return jsonify(ok=True)

    @app.post("/slow-destroyed")
    async def slow_destroyed() -> Any:
        await barrier.wait()
        await barrier.wait()
        session["late"] = True
        return jsonify(ok=True)

    @app.post("/logout")
    async def logout() -> Any:
        await barrier.wait()
        await session.destroy()
        await barrier.wait()
        return jsonify(ok=True)

    return app, barrier


async def start_session(browser: Browser) -> str:
    await browser.post("/set", json={"start": 1})
    assert browser.cookie is not None
    return sid_of(browser.cookie)


async def test_parallel_requests_changing_different_keys_both_persist(store: Store) -> None:
    app, _ = app_with_barrier(store, 3)
    browser = Browser(app.test_client(use_cookies=False))
    sid = await start_session(browser)

    await asyncio.gather(
        browser.post("/slow", json={"cart": ["book"]}),
        browser.post("/slow", json={"theme": "dark"}),
        browser.post("/slow", json={"lang": "fr"}),
    )

    record = await store.get(sid)
    assert record is not None
    assert {k: record[k] for k in ("start", "cart", "theme", "lang")} == {
        "start": 1,
        "cart": ["book"],
        "theme": "dark",
        "lang": "fr",
    }


async def test_parallel_requests_changing_the_same_key_keep_the_last_write(store: Store) -> None:
    app, _ = app_with_barrier(store, 2)
    browser = Browser(app.test_client(use_cookies=False))
    sid = await start_session(browser)

    await asyncio.gather(
        browser.post("/slow", json={"color": "red"}), browser.post("/slow", json={"color": "blue"})
    )

    record = await store.get(sid)
    assert record is not None
    assert record["color"] in ("red", "blue")
    assert record["start"] == 1


async def test_a_request_in_flight_does_not_resurrect_a_session_destroyed_meanwhile(
    store: Store,
) -> None:
    app, _ = app_with_barrier(store, 2)
    browser = Browser(app.test_client(use_cookies=False))
    sid = await start_session(browser)
    cookie = browser.cookie
    other_tab = Browser(app.test_client(use_cookies=False))
    other_tab.cookie = cookie

    await asyncio.gather(other_tab.post("/slow-destroyed"), browser.post("/logout"))

    assert await store.get(sid) is None
    assert sid not in await store.ids()


async def test_a_deleted_key_stays_deleted_when_another_request_changes_another_key(
    store: Store,
) -> None:
    app = make_app(store)
    barrier = asyncio.Barrier(2)

    @app.post("/pop")
    async def pop() -> Any:
        await barrier.wait()
        session.pop("start")
        return jsonify(ok=True)

    @app.post("/add")
    async def add() -> Any:
        await barrier.wait()
        session["added"] = True
        return jsonify(ok=True)

    browser = Browser(app.test_client(use_cookies=False))
    sid = await start_session(browser)

    await asyncio.gather(browser.post("/pop"), browser.post("/add"))

    record = await store.get(sid)
    assert record is not None
    assert "start" not in record
    assert record["added"] is True
