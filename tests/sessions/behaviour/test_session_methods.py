"""regenerate, destroy, unset, reload, save and touch."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from quart import Quart, jsonify, session

from sessions import SessionNotFound, Store
from tests.sessions.behaviour.support import (
    browser,
    only_cookie,
    raw_of,
)
from tests.sessions.conftest import cookie_value, make_app, set_cookies, sid_of


async def test_regenerate_replaces_the_record_and_sends_a_new_id_even_when_empty(
    store: Store,
) -> None:
    """regenerate: old record gone, new id sent and stored though empty and save_uninitialized is off."""
    app = make_app(store)
    client = browser(app)
    old = (await (await client.get("/count")).get_json())["id"]
    response = await client.post("/regenerate-empty")
    new = (await response.get_json())["id"]
    assert new != old
    assert sid_of(cookie_value(response) or "") == new
    assert await store.get(old) is None
    record = await store.get(new)
    assert record is not None
    assert list(record) == ["cookie"]
    assert await store.ids() == [new]


async def test_regenerate_drops_the_old_data(store: Store) -> None:
    """regenerate does not carry data over: only what is set afterwards is stored."""
    app = make_app(store)
    client = browser(app)
    await client.get("/count")
    body = await (await client.post("/regenerate")).get_json()
    record = await store.get(body["new"])
    assert record is not None
    assert {k: v for k, v in record.items() if k != "cookie"} == {"fresh": True}
    assert await store.get(body["old"]) is None
    read = await (await client.get("/read")).get_json()
    assert read == {"data": {"fresh": True}, "id": body["new"]}


async def test_regenerate_keep_data_moves_the_data_and_owner_to_a_new_id(store: Store) -> None:
    """regenerate(keep_data=True): a new id, the same data and owner, the old record and index entry gone."""
    app = make_app(store)

    @app.post("/sign-in")
    async def sign_in() -> Any:
        old = session.id
        await session.regenerate(keep_data=True)
        return jsonify(old=old, new=session.id, data=dict(session))

    client = browser(app)
    await client.post("/owner", json={"owner": "user:7"})
    await client.get("/count")
    await client.get("/count")
    response = await client.post("/sign-in")
    body = await response.get_json()
    assert body["new"] != body["old"]
    assert body["data"] == {"views": 2}
    assert sid_of(cookie_value(response) or "") == body["new"]
    assert await store.get(body["old"]) is None
    assert [info.id for info in await store.owned("user:7")] == [body["new"]]
    assert (await (await client.get("/count")).get_json())["views"] == 3


async def test_regenerate_on_a_new_request_stores_a_new_session(store: Store) -> None:
    """Regenerating a cookieless request's session still stores it and sends its cookie."""
    app = make_app(store)
    response = await app.test_client(use_cookies=False).post("/regenerate-empty")
    sid = (await response.get_json())["id"]
    assert sid_of(cookie_value(response) or "") == sid
    assert await store.ids() == [sid]


async def test_save_after_regenerate_is_the_only_write(store: Store) -> None:
    """regenerate + save(): the end of the request does not write the record a second time."""
    app = make_app(store)

    @app.post("/regenerate-save")
    async def regenerate_save() -> Any:
        await session.regenerate()
        session["fresh"] = True
        await session.save()
        marker = await mark_stored_record(store, session.id)
        return jsonify(id=session.id, marker=marker)

    client = browser(app)
    await client.get("/count")
    response = await client.post("/regenerate-save")
    body = await response.get_json()
    assert sid_of(cookie_value(response) or "") == body["id"]
    record = await store.get(body["id"])
    assert record is not None
    assert record["cookie"]["path"] == body["marker"]
    assert record["fresh"] is True


async def mark_stored_record(store: Store, sid: str) -> str:
    """Rewrite the stored record's cookie path to a unique marker, so that any later write shows."""
    record = await store.get(sid)
    assert record is not None
    marker = f"/marked-{secrets.token_hex(4)}"
    record["cookie"]["path"] = marker
    await store.set(sid, record)
    return marker


async def test_explicit_save_is_the_only_write_of_the_request(store: Store) -> None:
    """save() and no later change: the data is stored once, and the end of the request writes nothing more."""
    app = make_app(store)

    @app.post("/save-and-mark")
    async def save_and_mark() -> Any:
        session["a"] = 1
        await session.save()
        marker = await mark_stored_record(store, session.id)
        return jsonify(id=session.id, marker=marker)

    client = browser(app)
    for _ in range(2):  # a new session, then a loaded one
        body = await (await client.post("/save-and-mark")).get_json()
        record = await store.get(body["id"])
        assert record is not None
        assert record["cookie"]["path"] == body["marker"]
        assert record["a"] == 1


async def test_save_then_change_stores_the_later_change_too(store: Store) -> None:
    """A change made after save() is still stored at the end of the request."""
    app = make_app(store)

    @app.post("/save-then-more")
    async def save_then_more() -> Any:
        session["a"] = 1
        await session.save()
        session["b"] = 2
        return jsonify(id=session.id)

    response = await app.test_client(use_cookies=False).post("/save-then-more")
    record = await store.get((await response.get_json())["id"])
    assert record is not None
    assert (record["a"], record["b"]) == (1, 2)


async def test_destroy_deletes_the_record_and_clears_the_browser_cookie(store: Store) -> None:
    """destroy: the record is deleted and the cookie cleared (our deviation); the old cookie then starts afresh."""
    app = make_app(store)
    client = browser(app)
    first = await client.get("/count")
    old_value = cookie_value(first)
    old = (await first.get_json())["id"]
    response = await client.post("/destroy")
    assert set_cookies(response) == [
        "connect.sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
    ]
    assert await store.ids() == []
    client.cookie = old_value
    body = await (await client.get("/count")).get_json()
    assert body["views"] == 1
    assert body["id"] != old


async def test_destroy_of_a_new_session_sends_no_cookie_and_stores_nothing(store: Store) -> None:
    """destroy on a cookieless request: nothing to clear, nothing stored."""
    app = make_app(store)
    response = await app.test_client(use_cookies=False).post("/destroy")
    assert response.status_code == 200
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_destroy_with_save_uninitialized_stores_no_replacement_session(store: Store) -> None:
    """save_uninitialized does not turn a destroyed session into a new stored one: the cookie is cleared."""
    app = make_app(store, save_uninitialized=True)
    client = browser(app)
    await client.get("/count")
    response = await client.post("/destroy")
    assert cookie_value(response) == ""
    assert await store.ids() == []


async def test_destroy_keeps_the_cookie_attributes_in_the_clearing_header(store: Store) -> None:
    """The clearing Set-Cookie repeats the session cookie's path and domain so the browser drops it."""
    app = make_app(store, cookie={"path": "/app", "domain": "example.com", "max_age": 60})

    @app.get("/app/count")
    async def app_count() -> Any:
        session["views"] = session.get("views", 0) + 1
        return "ok"

    @app.post("/app/destroy")
    async def app_destroy() -> Any:
        await session.destroy()
        return "ok"

    client = browser(app)
    await client.get("/app/count")
    response = await client.post("/app/destroy")
    header = only_cookie(response)
    assert header.startswith(
        "connect.sid=; Domain=example.com; Path=/app; Expires=Thu, 01 Jan 1970 00:00:00 GMT;"
    )
    assert await store.ids() == []


async def test_unset_keep_leaves_the_record_untouched(store: Store) -> None:
    """unset 'keep': dropping the session leaves its record as it was, and the next request sees it."""
    app = make_app(store, unset="keep")
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    before = await raw_of(store, sid)
    response = await client.post("/unset")
    assert set_cookies(response) == []
    assert await raw_of(store, sid) == before
    assert await (await client.get("/read")).get_json() == {"data": {"views": 1}, "id": sid}


async def test_unset_destroy_deletes_the_record(store: Store) -> None:
    """unset 'destroy': the record is deleted at the end; the old cookie then gets a new session."""
    app = make_app(store, unset="destroy")
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    response = await client.post("/unset")
    assert response.status_code == 200
    assert await store.ids() == []
    body = await (await client.get("/count")).get_json()
    assert body["views"] == 1
    assert body["id"] != sid


async def test_unset_destroy_on_a_new_session_sets_no_cookie_and_stores_nothing(
    store: Store,
) -> None:
    """unset 'destroy' on a cookieless request: no cookie and no record, even after data was set."""
    app = make_app(store, unset="destroy")

    @app.post("/set-then-unset")
    async def set_then_unset() -> str:
        session["a"] = 1
        session.unset()
        return "ok"

    response = await app.test_client(use_cookies=False).post("/set-then-unset")
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_unset_other_than_keep_or_destroy_is_rejected(store: Store) -> None:
    """unset accepts only 'keep' and 'destroy'."""
    with pytest.raises(ValueError):
        make_app(store, unset="drop")


def add_reload_route(app: Quart) -> tuple[asyncio.Event, asyncio.Event]:
    """/reload-later loads the session, waits for the test, then reloads it."""
    entered, proceed = asyncio.Event(), asyncio.Event()

    @app.get("/reload-later")
    async def reload_later() -> Any:
        before = dict(session)
        entered.set()
        await proceed.wait()
        try:
            await session.reload()
        except SessionNotFound as error:
            return jsonify(before=before, error=str(error)), 410
        return jsonify(before=before, after=dict(session))

    return entered, proceed


async def test_reload_sees_a_concurrent_requests_write(store: Store) -> None:
    """reload() replaces the data with what another request stored meanwhile."""
    app = make_app(store)
    entered, proceed = add_reload_route(app)
    client = browser(app)
    sid = sid_of(cookie_value(await client.post("/set", json={"x": 1})) or "")
    pending = asyncio.create_task(client.get("/reload-later"))
    await entered.wait()
    await client.post("/set", json={"x": 2, "y": 3})
    proceed.set()
    body = await (await pending).get_json()
    assert body == {"before": {"x": 1}, "after": {"x": 2, "y": 3}}
    record = await store.get(sid)
    assert record is not None
    assert (record["x"], record["y"]) == (2, 3)


async def test_reload_of_a_destroyed_record_raises_session_not_found(store: Store) -> None:
    """reload() after the record is gone raises SessionNotFound ('failed to load session')."""
    app = make_app(store)
    entered, proceed = add_reload_route(app)
    client = browser(app)
    sid = sid_of(cookie_value(await client.post("/set", json={"x": 1})) or "")
    pending = asyncio.create_task(client.get("/reload-later"))
    await entered.wait()
    await store.destroy(sid)
    proceed.set()
    response = await pending
    assert response.status_code == 410
    assert "failed to load session" in (await response.get_json())["error"]
    assert await store.ids() == []


async def test_touch_resets_max_age_to_its_original_value(store: Store) -> None:
    """session.touch() puts the remaining max_age back to the original one."""
    app = make_app(store, cookie={"max_age": 60})

    @app.get("/touch")
    async def touch() -> Any:
        before = session.cookie.max_age
        session.touch()
        return jsonify(before=before, after=session.cookie.max_age)

    @app.get("/slow-touch")
    async def slow_touch() -> Any:
        await asyncio.sleep(0.2)
        return await touch()

    client = browser(app)
    await client.get("/count")
    body = await (await client.get("/slow-touch")).get_json()
    assert 59 < body["before"] < 59.85
    assert 59.95 < body["after"] <= 60
