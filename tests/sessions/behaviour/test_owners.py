"""The owner index: list an owner's live sessions, sign out one or all others."""

from __future__ import annotations

from typing import Any

from sessions import Store
from tests.sessions.behaviour.support import app_with_login
from tests.sessions.conftest import Browser, sid_of


async def signed_in(app: Any, name: str) -> Browser:
    browser = Browser(app.test_client(use_cookies=False))
    await browser.post(f"/login/{name}")
    return browser


async def test_an_owner_lists_its_live_sessions_with_their_data_and_last_seen(store: Store) -> None:
    app = app_with_login(store)
    phone, laptop = await signed_in(app, "ann"), await signed_in(app, "ann")
    await signed_in(app, "bob")

    sessions = await store.owned("user:ann")

    assert {info.id for info in sessions} == {
        sid_of(phone.cookie or ""),
        sid_of(laptop.cookie or ""),
    }
    for info in sessions:
        assert info.data == {"agent": "ann"}
        assert info.expires is not None and info.last_seen is not None
        assert 3590 <= (info.expires - info.last_seen).total_seconds() <= 3601


async def test_destroyed_and_regenerated_sessions_drop_out_of_the_listing(store: Store) -> None:
    app = app_with_login(store)
    browsers = [await signed_in(app, "ann") for _ in range(3)]
    await browsers[0].post("/destroy")
    await browsers[1].post("/regenerate-empty")
    await store.destroy(sid_of(browsers[2].cookie or ""))  # e.g. expired in the store

    assert await store.owned("user:ann") == []
    assert await store.index_members("user:ann") == []


async def test_signing_out_every_other_session_keeps_the_current_one(store: Store) -> None:
    app = app_with_login(store)
    here, *others = [await signed_in(app, "ann") for _ in range(3)]
    current = sid_of(here.cookie or "")

    deleted = await store.destroy_owned("user:ann", keep=current)

    assert deleted == 2
    assert [info.id for info in await store.owned("user:ann")] == [current]
    for browser in others:
        response = await browser.get("/read")
        assert (await response.get_json())["data"] == {}
    assert (await (await here.get("/read")).get_json())["data"] == {"agent": "ann"}
