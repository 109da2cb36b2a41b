"""Parallel requests on one session: every change to a different key persists, the last write of a
key wins, and a session destroyed meanwhile never comes back. At the fan-out browsers and
XHR-heavy pages produce (10, 50, 100 at once), in-process on every store kind."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from quart import Quart, jsonify, request, session

from sessions import Store
from tests.sessions.conftest import Browser, make_app, sid_of


def app_with_barrier(store: Store, parties: int) -> tuple[Quart, asyncio.Barrier]:
    """An app whose /slow route loads the session, waits for every party, then changes it."""
    app = make_app(store)
    barrier = asyncio.Barrier(parties)

    @app.post("/slow")
    async def slow() -> Any:
        values = await request.get_json()
        await barrier.wait()  # every request has loaded the same version before anyone saves
        delay = values.pop("_after", 0)
        if delay:
            await asyncio.sleep(delay)
        session.update(values)
        return jsonify(ok=True)

    @app.post("/pop")
    async def pop() -> Any:
        await barrier.wait()
        session.pop("start")
        return jsonify(ok=True)

    return app, barrier


def with_cookie(app: Quart, cookie: str | None) -> Browser:
    browser = Browser(app.test_client(use_cookies=False))
    browser.cookie = cookie
    return browser


async def start_session(browser: Browser) -> str:
    await browser.post("/set", json={"start": 1})
    assert browser.cookie is not None
    return sid_of(browser.cookie)


@pytest.mark.parametrize("parallel", [10, 50, 100])
async def test_parallel_requests_changing_different_keys_all_persist(
    store: Store, parallel: int
) -> None:
    app, _ = app_with_barrier(store, parallel)
    browser = Browser(app.test_client(use_cookies=False))
    sid = await start_session(browser)

    responses = await asyncio.gather(
        *(
            with_cookie(app, browser.cookie).post("/slow", json={f"k{n}": n})
            for n in range(parallel)
        )
    )

    assert [r.status_code for r in responses] == [200] * parallel
    record = await store.get(sid)
    assert record is not None
    kept = {key for key in record if key.startswith("k")}
    assert kept == {f"k{n}" for n in range(parallel)}, f"lost {parallel - len(kept)} of {parallel}"
    assert record["start"] == 1


async def test_parallel_requests_changing_the_same_key_keep_the_last_write(store: Store) -> None:
    app, _ = app_with_barrier(store, 2)
    browser = Browser(app.test_client(use_cookies=False))
    sid = await start_session(browser)

    await asyncio.gather(
        browser.post("/slow", json={"color": "red", "_after": 0.2}),  # changes it last
        browser.post("/slow", json={"color": "blue"}),
    )

    record = await store.get(sid)
    assert record is not None
    assert record["color"] == "red"
    assert record["start"] == 1


async def test_a_deleted_key_stays_deleted_when_another_request_changes_another_key(
    store: Store,
) -> None:
    app, _ = app_with_barrier(store, 2)
    browser = Browser(app.test_client(use_cookies=False))
    sid = await start_session(browser)

    await asyncio.gather(browser.post("/pop"), browser.post("/slow", json={"added": True}))

    record = await store.get(sid)
    assert record is not None
    assert "start" not in record
    assert record["added"] is True


def app_racing_a_logout(store: Store) -> Quart:
    app = make_app(store)

    @app.post("/write/<int:n>")
    async def write(n: int) -> Any:
        await asyncio.sleep(random.uniform(0, 0.004))  # loaded; finish at a random moment
        session[f"w{n}"] = n
        return jsonify(ok=True)

    @app.post("/logout")
    async def logout() -> Any:
        await asyncio.sleep(random.uniform(0, 0.002))
        await session.destroy()
        return jsonify(ok=True)

    return app


async def test_a_logout_racing_fifty_writers_is_final_in_every_one_of_200_trials(
    store: Store,
) -> None:
    """However the 50 writes and the logout interleave, the session is gone afterwards, for good.

    (A write that arrives after the logout starts a new, anonymous session under a new id, as
    express does; the logged-out id never comes back.)
    """
    app = app_racing_a_logout(store)
    resurrected, logged_out = [], set()
    for trial in range(200):
        browser = Browser(app.test_client(use_cookies=False))
        sid = await start_session(browser)
        logged_out.add(sid)
        cookie = browser.cookie
        writers = [with_cookie(app, cookie).post(f"/write/{n}") for n in range(50)]
        logout = with_cookie(app, cookie).post("/logout")
        responses = await asyncio.gather(logout, *writers)
        assert {r.status_code for r in responses} == {200}
        if await store.get(sid) is not None:
            resurrected.append(trial)
            continue
        # The old cookie opens nothing: a fresh, empty session under another id.
        read = await (await with_cookie(app, cookie).get("/read")).get_json()
        assert read["data"] == {} and read["id"] != sid
    assert resurrected == [], f"resurrected in trials {resurrected}"
    assert logged_out.isdisjoint(await store.ids())
