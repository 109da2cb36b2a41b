"""When a session is stored and when its cookie is sent: resave, rolling, saveUninitialized."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from quart import session

from sessions import Store
from tests.sessions.behaviour.support import (
    browser,
    expires_of,
    only_cookie,
    remaining_of,
    stored_expires,
)
from tests.sessions.conftest import cookie_value, make_app, set_cookies, sid_of


async def test_untouched_new_session_sets_no_cookie_and_writes_nothing(store: Store) -> None:
    """A new session the handler never changes sends no cookie and leaves the store empty."""
    app = make_app(store)
    response = await app.test_client(use_cookies=False).get("/")
    assert response.status_code == 200
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_read_only_new_session_sets_no_cookie_and_writes_nothing(store: Store) -> None:
    """Reading a new session (even its id) is not a modification."""
    app = make_app(store)
    response = await app.test_client(use_cookies=False).get("/read")
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_new_session_given_data_sets_cookie_and_stores_one_record(store: Store) -> None:
    """Setting a key on a new session sends its cookie and stores exactly that one record."""
    app = make_app(store)
    response = await app.test_client(use_cookies=False).get("/count")
    sid = (await response.get_json())["id"]
    assert sid_of(cookie_value(response) or "") == sid
    assert await store.ids() == [sid]
    record = await store.get(sid)
    assert record is not None
    assert {k: v for k, v in record.items() if k != "cookie"} == {"views": 1}


async def test_save_uninitialized_stores_and_sends_an_untouched_new_session(store: Store) -> None:
    """With save_uninitialized, even an untouched new session gets a cookie and an empty record."""
    app = make_app(store, save_uninitialized=True)
    response = await app.test_client(use_cookies=False).get("/")
    value = cookie_value(response)
    assert value
    sid = sid_of(value)
    assert await store.ids() == [sid]
    record = await store.get(sid)
    assert record is not None
    assert list(record) == ["cookie"]


async def test_save_uninitialized_sends_the_cookie_only_once(store: Store) -> None:
    """With save_uninitialized and no max_age, the loaded session's cookie is not re-sent."""
    app = make_app(store, save_uninitialized=True)
    client = browser(app)
    assert set_cookies(await client.get("/")) != []
    assert set_cookies(await client.get("/")) == []
    assert len(await store.ids()) == 1


async def test_unchanged_loaded_session_sends_no_cookie_and_only_its_expiry_slides(
    store: Store,
) -> None:
    """resave False: an unchanged loaded session gets no cookie; of its record only cookie.expires moves on."""
    app = make_app(store, cookie={"max_age": 60})
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    before = await store.get(sid)
    await asyncio.sleep(0.05)
    response = await client.get("/read")
    after = await store.get(sid)
    assert (await response.get_json())["data"] == {"views": 1}
    assert set_cookies(response) == []
    assert before is not None and after is not None
    assert stored_expires(after) - stored_expires(before) >= timedelta(milliseconds=50)
    after["cookie"]["expires"] = before["cookie"]["expires"]
    assert after == before
    assert 59.9 < await remaining_of(store, sid) <= 60


async def test_resave_rewrites_an_unchanged_loaded_session(store: Store) -> None:
    """resave True: an unchanged loaded session is written again (its stored expiry moves on)."""
    app = make_app(store, resave=True, cookie={"max_age": 60})
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    first = await store.get(sid)
    await asyncio.sleep(0.02)
    response = await client.get("/read")
    assert set_cookies(response) == []
    second = await store.get(sid)
    assert first is not None and second is not None
    assert stored_expires(second) > stored_expires(first)
    assert second["views"] == 1


async def test_changed_loaded_session_with_max_age_resends_same_id_with_later_expires(
    store: Store,
) -> None:
    """A loaded session with max_age whose data changes gets Set-Cookie again: same id, later Expires."""
    app = make_app(store, cookie={"max_age": 60})
    client = browser(app)
    first = await client.get("/count")
    first_value = cookie_value(first)
    await asyncio.sleep(1.05)
    second = await client.get("/count")
    assert cookie_value(second) == first_value
    assert expires_of(only_cookie(second)) > expires_of(only_cookie(first))
    assert (await second.get_json())["views"] == 2


async def test_changed_loaded_browser_session_sends_no_cookie_but_is_stored(store: Store) -> None:
    """Without max_age a loaded session's change is stored, but its cookie is not re-sent."""
    app = make_app(store)
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    response = await client.get("/count")
    assert set_cookies(response) == []
    record = await store.get(sid)
    assert record is not None
    assert record["views"] == 2


async def test_rolling_sends_the_cookie_on_every_response_of_a_loaded_session(store: Store) -> None:
    """rolling: even unchanged, a loaded browser-session cookie is re-sent each time, same id."""
    app = make_app(store, rolling=True)
    client = browser(app)
    value = cookie_value(await client.get("/count"))
    for _ in range(2):
        response = await client.get("/read")
        assert cookie_value(response) == value


async def test_rolling_advances_expires_on_unchanged_requests(store: Store) -> None:
    """rolling with max_age: an unchanged request re-sends the cookie with a fresh Expires and stored expiry."""
    app = make_app(store, rolling=True, cookie={"max_age": 60})
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    await asyncio.sleep(1.1)
    before = datetime.now(UTC)
    response = await client.get("/read")
    sent = expires_of(only_cookie(response))
    assert sent >= (before + timedelta(seconds=60)).replace(microsecond=0)
    record = await store.get(sid)
    assert record is not None
    assert (
        stored_expires(record).replace(microsecond=0) == sent
    )  # what the browser and store hold agree
    assert 59.9 < await remaining_of(store, sid) <= 60


async def test_rolling_without_save_uninitialized_ignores_an_untouched_new_session(
    store: Store,
) -> None:
    """rolling does not make an untouched new session send a cookie or be stored."""
    app = make_app(store, rolling=True)
    response = await app.test_client(use_cookies=False).get("/")
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_changing_only_max_age_of_a_browser_session_sends_no_cookie(store: Store) -> None:
    """Changing only cookie.max_age is not a data change: express sends no cookie for it."""
    app = make_app(store)

    @app.get("/only-max-age")
    async def only_max_age() -> Any:
        session.cookie.max_age = 30
        return "ok"

    client = browser(app)
    await client.get("/count")
    response = await client.get("/only-max-age")
    assert set_cookies(response) == []


async def test_nested_change_is_detected_and_stored(store: Store) -> None:
    """Mutating a nested value in place counts as a change and is stored."""
    app = make_app(store)
    client = browser(app)
    first = await client.post("/nested")
    sid = sid_of(cookie_value(first) or "")
    second = await client.post("/nested")
    assert (await second.get_json())["cart"] == {"items": [0, 1]}
    record = await store.get(sid)
    assert record is not None
    assert record["cart"] == {"items": [0, 1]}


async def test_nested_key_named_cookie_counts_as_a_change(store: Store) -> None:
    """Only the top-level cookie is left out of change detection: a nested 'cookie' key is data."""
    app = make_app(store)
    client = browser(app)
    sid = sid_of(cookie_value(await client.get("/count")) or "")
    await client.post("/set", json={"prefs": {"cookie": "chocolate"}})
    record = await store.get(sid)
    assert record is not None
    assert record["prefs"] == {"cookie": "chocolate"}
    assert isinstance(record["cookie"], dict)


async def test_an_anonymous_session_has_a_short_idle_life_and_an_owned_one_keeps_the_stores(
    store: Store,
) -> None:
    """anonymous_ttl: a stored session nobody signed into lives for that idle time (the demo's
    counter: 30 minutes); one with an owner keeps the store's ttl. Both slide as they are used."""
    app = make_app(store, anonymous_ttl=120)
    anonymous, owned = browser(app), browser(app)
    anonymous_sid = (await (await anonymous.get("/count")).get_json())["id"]
    owned_sid = (await (await owned.post("/owner", json={"owner": "user:1"})).get_json())["id"]
    for _ in range(2):  # written, then renewed by a read
        assert 119 < await remaining_of(store, anonymous_sid) <= 120
        assert 86_399 < await remaining_of(store, owned_sid) <= 86_400
        await anonymous.get("/read")
        await owned.get("/read")
