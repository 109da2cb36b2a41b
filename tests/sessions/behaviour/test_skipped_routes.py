"""Routes that use no session cost no store work and send no cookie: static files, 404s, skip_session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from quart import Blueprint, Quart, jsonify, session

from sessions import Sessions, Store, skip_session
from tests.sessions.conftest import SECRET, Browser, make_app, set_cookies


def app_with_skips(store: Store, tmp_path: Path, **options: Any) -> Quart:
    static = tmp_path / "static"
    static.mkdir(exist_ok=True)
    (static / "style.css").write_text("body {}")
    app = Quart(__name__, static_folder=str(static))
    app.config["TESTING"] = True
    Sessions(app, secret=SECRET, store=store, **options)

    @app.get("/count")
    async def count() -> Any:
        session["views"] = session.get("views", 0) + 1
        return jsonify(views=session["views"])

    @app.get("/health")
    @skip_session
    async def health() -> Any:
        return jsonify(data=dict(session), views=session.get("views"))

    @app.get("/health/write")
    @skip_session
    async def health_write() -> Any:
        session["oops"] = True
        return "unreachable"

    api = Blueprint("api", __name__)

    @api.get("/api/ping")
    async def ping() -> Any:
        return jsonify(data=dict(session))

    app.register_blueprint(api)
    return app


class CountingLoads:
    """Wraps a store's load to count the reads requests make."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        original = store.load

        async def load(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(*args, **kwargs)

        store.load = load  # type: ignore[method-assign]


async def test_static_files_404s_and_skipped_views_never_read_the_store(
    store: Store, tmp_path: Path
) -> None:
    app = app_with_skips(store, tmp_path, skip=["static", "api."])
    browser = Browser(app.test_client(use_cookies=False))
    await browser.get("/count")
    loads = CountingLoads(store)
    for path in ("/static/style.css", "/nowhere", "/health", "/api/ping"):
        response = await browser.get(path)
        assert response.status_code in (200, 404), path
        assert set_cookies(response) == [], path
        assert "Cookie" not in response.headers.get("Vary", ""), path
    assert loads.count == 0
    assert (await (await browser.get("/count")).get_json())["views"] == 2
    assert loads.count == 1


async def test_a_skipped_view_sees_an_empty_session_and_writing_to_it_is_a_clear_error(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_with_skips(store, tmp_path)
    app.config["TESTING"] = False  # let Quart log the error as in production
    browser = Browser(app.test_client(use_cookies=False))
    await browser.get("/count")
    assert await (await browser.get("/health")).get_json() == {"data": {}, "views": None}
    for client in (
        browser,
        Browser(app.test_client(use_cookies=False)),
    ):  # with and without a cookie
        caplog.clear()
        response = await client.get("/health/write")
        assert response.status_code == 500
        assert set_cookies(response) == []
        errors = [str(r.exc_info[1]) for r in caplog.records if r.exc_info and r.exc_info[1]]
        assert any("does not use the session" in error for error in errors), errors


async def test_not_found_pages_can_have_a_session_when_asked(store: Store, tmp_path: Path) -> None:
    app = app_with_skips(store, tmp_path, skip_not_found=False)

    @app.errorhandler(404)
    async def not_found(error: Any) -> Any:
        session["lost"] = session.get("lost", 0) + 1
        return jsonify(lost=session["lost"]), 404

    browser = Browser(app.test_client(use_cookies=False))
    await browser.get("/nowhere")
    assert (await (await browser.get("/nowhere")).get_json())["lost"] == 2


async def test_the_default_app_skips_static_and_not_found_only(store: Store) -> None:
    app = make_app(store)
    browser = Browser(app.test_client(use_cookies=False))
    await browser.get("/count")
    assert (await (await browser.get("/count")).get_json())["views"] == 2
    assert set_cookies(await browser.get("/nowhere")) == []
