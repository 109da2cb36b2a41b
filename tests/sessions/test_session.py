"""The session a handler sees: a dict plus id, cookie, owner, new/modified/permanent and express's methods."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from quart import Quart, jsonify, session
from werkzeug.exceptions import ServiceUnavailable

from sessions import MemoryStore, Session
from sessions.session import UnavailableSession
from tests.sessions.conftest import Browser, make_app


async def run_in_request(app: Quart, check: Any, cookie: str | None = None) -> Any:
    """Run `check(session)` inside a request of `app` and return what it returns."""
    results: list[Any] = []

    @app.get("/check")
    async def checking() -> Any:
        results.append(check(session))
        return jsonify(ok=True)

    browser = Browser(app.test_client(use_cookies=False))
    browser.cookie = cookie
    await browser.get("/check")
    return results[0]


async def test_a_new_session_is_new_empty_and_unmodified_until_data_changes() -> None:
    def check(s: Session) -> list[Any]:
        before = (s.new, s.modified, dict(s))
        s["nested"] = {"list": []}
        s["nested"]["list"].append(1)  # a nested change counts, as express's hash sees it
        return [before, s.modified]

    before, after = await run_in_request(make_app(MemoryStore()), check)
    assert before == (True, False, {}) and after is True


async def test_modified_can_be_forced_and_owner_must_be_a_string() -> None:
    def check(s: Session) -> list[Any]:
        s.modified = True
        with pytest.raises(TypeError, match="owner"):
            s.owner = 42  # type: ignore[assignment]
        s.owner = "user:1"
        return [s.modified, s.owner]

    assert await run_in_request(make_app(MemoryStore()), check) == [True, "user:1"]


async def test_permanent_uses_permanent_session_lifetime_and_false_makes_a_browser_session_cookie() -> (
    None
):
    app = make_app(MemoryStore())
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=2)
    app.extensions["sessions"].init_app(app)  # pick up the new lifetime

    def check(s: Session) -> list[Any]:
        first = s.permanent
        s.permanent = True
        lifetime = s.cookie.original_max_age
        s.permanent = False
        return [first, lifetime, s.permanent, s.cookie.expires]

    assert await run_in_request(app, check) == [False, 7200, False, None]


async def test_a_loaded_session_is_not_new_and_shows_its_data() -> None:
    app = make_app(MemoryStore())
    browser = Browser(app.test_client(use_cookies=False))
    await browser.get("/count")
    state = await run_in_request(app, lambda s: [s.new, dict(s), repr(s)[:10]], browser.cookie)
    assert state == [False, {"views": 1}, "<Session " + state[2][9:10]]


async def test_unset_empties_the_session_for_this_request() -> None:
    def check(s: Session) -> Any:
        s["a"] = 1
        s.unset()
        return dict(s)

    assert await run_in_request(make_app(MemoryStore()), check) == {}


def test_an_unavailable_session_is_a_503_on_any_use() -> None:
    stand_in = UnavailableSession.__new__(UnavailableSession)
    for use in (
        lambda: stand_in["a"],
        lambda: stand_in.get("a"),
        lambda: len(stand_in),
        lambda: list(stand_in),
    ):
        with pytest.raises(ServiceUnavailable):
            use()
