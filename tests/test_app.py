"""The demo site: counter, headers, health, secret handling, restarts and a store that goes away."""

from __future__ import annotations

import html
import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from app import WORKER_HISTORY, create_app, worker_history
from deploy.postgres_server import PostgresServer
from deploy.redis_server import RedisServer

from .auth.support import (
    Browser,
    Site,
    read_only,
    site_settings,
    start_site,
)

ROOT = Path(__file__).resolve().parent.parent
#: The variables that move sessions or accounts out of the instance folder.
WHERE_TO_STORE = ("REDIS_URL", "DATABASE_URL", "AUTH_REDIS_URL", "AUTH_DATABASE_URL")


async def test_counter_welcomes_then_counts(site: Site) -> None:
    browser = site.browser()
    first = await browser.text("/")
    assert "Welcome, this is your first visit" in first
    assert 'id="visits">1<' in first
    second = await browser.text("/")
    assert "You have visited this page 2 times" in second
    assert 'id="visits">2<' in second
    assert await browser.visits() == 3


async def test_each_browser_has_its_own_count(site: Site) -> None:
    one, two = site.browser(), site.browser()
    for _ in range(3):
        await one.visits()
    assert await two.visits() == 1
    assert await one.visits() == 4


async def test_every_response_says_which_worker_answered(site: Site) -> None:
    served_by = f"{socket.gethostname()}:{os.getpid()}"
    browser = site.browser()
    for path in ("/", "/login", "/healthz", "/static/style.css", "/no-such-page", "/logout"):
        response = await browser.get(path)
        assert response.headers["X-Served-By"] == served_by, path
    assert f'id="served-by">{served_by}<' in await browser.text("/")


async def test_pages_carry_security_headers(site: Site) -> None:
    for path in ("/", "/login", "/no-such-page"):
        headers = (await site.browser().get(path)).headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        # Scripts only from this site's own files: no inline script, no eval.
        assert "script-src 'self'" in csp, path
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, path
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cache-Control"] == "no-store"


async def test_strict_transport_security_only_over_https(site: Site) -> None:
    browser = site.browser()
    assert "Strict-Transport-Security" not in (await browser.get("/")).headers
    secure = await browser.client.get("/", scheme="https")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_stylesheet_is_served_locally(site: Site) -> None:
    page = await site.browser().text("/")
    assert 'href="/static/style.css"' in page
    assert "http://" not in page and "https://" not in page
    response = await site.browser().get("/static/style.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"


async def test_healthz_reports_a_reachable_store(site: Site) -> None:
    response = await site.browser().get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok", "store": True, "accounts": True}
    assert "Set-Cookie" not in response.headers


async def test_healthz_reports_a_database_that_refuses_writes(
    tmp_path: Path, private_postgres: PostgresServer
) -> None:
    """Sessions and accounts in one PostgreSQL that turns read-only: both are reported, and the
    counter page is a 503 rather than a count that is not kept."""
    settings = site_settings(
        "postgres", tmp_path / "instance", "demo:", database_url=private_postgres.url
    )
    async with AsyncExitStack() as stack:
        site = await start_site(stack, "postgres", settings)
        browser = site.browser()
        assert await browser.visits() == 1
        read_only(private_postgres, True)
        try:
            health = await browser.get("/healthz")
            assert health.status_code == 503
            assert await health.get_json() == {
                "status": "degraded",
                "store": False,
                "accounts": False,
            }
            assert (await browser.get("/")).status_code == 503
        finally:
            read_only(private_postgres, False)
        assert (await browser.get("/healthz")).status_code == 200
        assert await browser.visits() == 2


async def test_unknown_pages_get_a_plain_404(site: Site) -> None:
    response = await site.browser().get("/no-such-page")
    assert response.status_code == 404
    assert "Not Found" in await response.get_data(as_text=True)


async def test_oversized_posts_get_413_not_500(site: Site) -> None:
    browser = site.browser()
    token = await browser.csrf_token()
    form = {"csrf_token": token, "username": "a" * (100 * 1024), "password": "x"}
    response = await browser.post("/login", form)
    assert response.status_code == 413
    assert "Traceback" not in await response.get_data(as_text=True)


async def test_forged_cookies_are_anonymous_not_errors(site: Site) -> None:
    for value in ("garbage", "s%3Aabc.def", "s:" + "A" * 4000, "%ff%fe"):
        browser = site.browser()
        browser.set_cookie(value)
        response = await browser.get("/")
        assert response.status_code == 200, value
        assert 'id="visits">1<' in await response.get_data(as_text=True), value


async def test_a_restart_keeps_everyone_signed_in(
    backend: str,
    tmp_path: Path,
    key_prefix: str,
    redis_url: str,
    redis_client: Any,
    database_url: str | None,
) -> None:
    prefix = key_prefix.removesuffix("sess:")
    settings = site_settings(
        backend, tmp_path / "instance", prefix, redis_url, database_url=database_url
    )
    async with AsyncExitStack() as stack:
        before = await start_site(stack, backend, settings)
        browser = before.browser()
        await browser.register("alice")
        await browser.login("alice")
        await browser.visits()
        cookie = browser.cookie
    assert cookie is not None
    async with AsyncExitStack() as stack:
        after = await start_site(stack, backend, settings)
        returning = after.browser()
        returning.set_cookie(cookie)
        assert await returning.signed_in_as() == "alice"
        assert await returning.visits() == 2


async def test_without_secret_key_one_is_generated_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    for name in WHERE_TO_STORE:
        monkeypatch.delenv(name, raising=False)
    instance = tmp_path / "instance"
    with caplog.at_level(logging.WARNING):
        first = create_app({"INSTANCE_PATH": str(instance), "TESTING": True})
    secret_file = instance / "secret_key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert first.config["SECRET_KEY"] == secret_file.read_text().strip()
    assert len(first.config["SECRET_KEY"]) >= 32
    assert "SECRET_KEY is not set" in caplog.text

    second = create_app({"INSTANCE_PATH": str(instance), "TESTING": True})
    assert second.config["SECRET_KEY"] == first.config["SECRET_KEY"]
    other = create_app({"INSTANCE_PATH": str(tmp_path / "elsewhere"), "TESTING": True})
    assert other.config["SECRET_KEY"] != first.config["SECRET_KEY"]


async def test_secret_key_from_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "from the environment " + "e" * 20)
    app = create_app({"INSTANCE_PATH": str(tmp_path), "TESTING": True})
    assert app.config["SECRET_KEY"] == "from the environment " + "e" * 20
    assert not (tmp_path / "secret_key").exists()


def test_asgi_entry_point_is_app_colon_app(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in WHERE_TO_STORE}
    env.update(INSTANCE_PATH=str(tmp_path), SECRET_KEY="s" * 40)
    code = "import app, quart; print(isinstance(app.app, quart.Quart), app.app is app.app)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["True", "True"], result.stderr


@pytest.mark.parametrize("backend", ["redis", "postgres"])
async def test_store_outage_gives_friendly_503_and_recovery(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Sessions, users and counters on one private server (Redis or PostgreSQL) that stops."""
    if backend == "redis":
        server: RedisServer | PostgresServer = request.getfixturevalue("private_redis")
        settings = site_settings("redis", tmp_path / "instance", "demo:", server.url)
    else:
        server = request.getfixturevalue("private_postgres")
        settings = site_settings(
            "postgres", tmp_path / "instance", "demo:", database_url=server.url
        )
    async with AsyncExitStack() as stack:
        site = await start_site(stack, backend, settings)
        browser = await site.user("alice")
        assert await browser.visits() == 1
        token = await browser.csrf_token()

        server.stop()
        page = await browser.get("/")
        assert page.status_code == 503
        assert int(page.headers["Retry-After"]) > 0
        text = await page.get_data(as_text=True)
        assert "Back in a moment" in text and "Traceback" not in text
        assert 'id="retry" href="/"' in text
        assert page.headers["X-Served-By"]
        health = await browser.get("/healthz")
        assert health.status_code == 503
        assert await health.get_json() == {"status": "degraded", "store": False, "accounts": False}
        login = await browser.post(
            "/login", {"username": "alice", "password": "x", "csrf_token": token}
        )
        assert login.status_code == 503
        assert "Back in a moment" in await login.get_data(as_text=True)

        server.start()
        assert (await browser.get("/healthz")).status_code == 200
        assert await browser.signed_in_as() == "alice"
        assert await browser.visits() == 2


def test_workers_starting_together_agree_on_the_generated_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", *WHERE_TO_STORE)}
    env["INSTANCE_PATH"] = str(tmp_path / "instance")
    code = "import app; print(app.create_app().config['SECRET_KEY'])"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    secrets = {worker.communicate(timeout=60)[0].strip() for worker in workers}
    assert len(secrets) == 1 and len(secrets.pop()) >= 32


def session_id(browser: Browser) -> str:
    """The full session id inside the browser's signed cookie (``s:<id>.<signature>``)."""
    cookie = browser.cookie
    assert cookie is not None, "the browser holds no session cookie"
    return unquote(cookie).removeprefix("s:").rsplit(".", 1)[0]


def shown(page: str, element: str) -> str:
    """The text of the element with id ``element`` on ``page``."""
    match = re.search(rf'id="{element}"[^>]*>(.*?)</', page, re.S)
    assert match, f"the page has no #{element}"
    return html.unescape(match.group(1)).strip()


def shown_record(page: str) -> dict[str, Any]:
    match = re.search(r'<pre class="record" id="record">(.*?)</pre>', page, re.S)
    assert match, "the counter page shows no stored record"
    record: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return record


def assert_same_record(on_page: dict[str, Any], stored: dict[str, Any]) -> None:
    """Equal, except that tokens are cut short on the page and the expiry slid a moment later."""
    assert on_page.keys() == stored.keys()
    for name, value in stored.items():
        if name == "cookie" and value.get("expires") is not None:
            page_cookie, stored_cookie = dict(on_page[name]), dict(value)
            page_expiry = datetime.fromisoformat(page_cookie.pop("expires"))
            stored_expiry = datetime.fromisoformat(stored_cookie.pop("expires"))
            assert page_cookie == stored_cookie
            assert timedelta(0) <= stored_expiry - page_expiry < timedelta(seconds=2)
        elif name.endswith("_token"):
            assert on_page[name] == value[:6] + "…", name
        else:
            assert on_page[name] == value, name


async def test_the_counter_page_shows_the_record_exactly_as_the_store_holds_it(site: Site) -> None:
    browser = site.browser()
    for _ in range(3):
        page = await browser.text("/")
        stored = await site.store.get(session_id(browser))
        assert stored is not None
        assert_same_record(shown_record(page), stored)
    assert stored["visits"] == 3


async def test_a_signed_in_remembered_record_is_shown_as_stored_and_holds_no_secret(
    site: Site,
) -> None:
    browser = await site.user("alice")
    await browser.login("alice", remember=True)
    page = await browser.text("/")  # flashed messages settled
    stored = await site.store.get(session_id(browser))
    assert stored is not None
    on_page = shown_record(page)
    assert_same_record(on_page, stored)
    assert on_page["_owner"] == stored["_owner"] == f"user:{stored['_auth_user_id']}"
    # CSRF tokens are derived, not stored: nothing secret sits in the record or on the page.
    assert not [key for key in stored if key.endswith("_token")]


async def test_the_panel_shows_the_short_id_the_store_and_the_cookie(
    site: Site,
    backend: str,
    tmp_path: Path,
    key_prefix: str,
    redis_url: str,
    database_url: str | None,
) -> None:
    browser = site.browser()
    page = await browser.text("/")
    sid = session_id(browser)
    assert shown(page, "session-id") == sid[:8]
    assert sid not in page
    if backend == "redis":
        assert shown(page, "store") == "RedisStore"
        assert shown(page, "store-location") == redis_url.removeprefix("redis://")
        assert shown(page, "store-key") == f"{key_prefix}{sid[:8]}…"
    elif backend == "postgres":
        assert database_url is not None
        where = urlsplit(database_url)
        assert shown(page, "store") == "PostgresStore"
        assert shown(page, "store-location") == f"127.0.0.1:{where.port}{where.path}"
        assert shown(page, "store-key") == f'"session" row {sid[:8]}…'
        assert where.password and where.password not in page
    else:
        assert shown(page, "store") == "FileStore"
        assert shown(page, "store-location") == str(tmp_path / "instance" / "sessions")
        assert shown(page, "store-key") == f"{sid[:8]}….json"
    assert shown(page, "cookie-name") == "connect.sid"
    attributes = re.findall(r"<li[^>]*>([^<]+)</li>", shown_block(page, "cookie-attributes"))
    assert attributes == ["Path=/", "HttpOnly", "no Secure (plain HTTP)", "SameSite=Lax"]


def shown_block(page: str, element: str) -> str:
    match = re.search(rf'id="{element}"[^>]*>(.*?)</ul>', page, re.S)
    assert match, f"the page has no #{element}"
    return match.group(1)


async def test_over_https_the_panel_shows_the_secure_attribute(site: Site) -> None:
    browser = site.browser()
    response = await browser.client.get("/", scheme="https")
    page = await response.get_data(as_text=True)
    assert "; Secure" in response.headers["Set-Cookie"]
    assert "<li>Secure</li>" in shown_block(page, "cookie-attributes")


async def test_the_panel_tells_a_browser_session_from_a_remembered_cookie(site: Site) -> None:
    browser = await site.user("alice")
    page = await browser.text("/")
    assert "Browser-session cookie" in shown(page, "cookie-lifetime")
    assert "data-remaining" not in page

    await browser.login("alice", remember=True)
    page = await browser.text("/")
    assert "Persistent cookie" in page and "remember me” on" in page
    match = re.search(r'id="expires-in"[^>]*data-remaining="([0-9.]+)"[^>]*>([^<]+)<', page)
    assert match, "a remembered cookie shows no countdown"
    remaining = float(match.group(1))
    thirty_days = 30 * 86400
    assert thirty_days - 60 < remaining <= thirty_days
    assert match.group(2) in ("29 d 23:59:59", "29 d 23:59:58", "30 d 00:00:00")


async def test_a_redis_password_never_reaches_the_page(tmp_path: Path) -> None:
    password = "hunter2-" + "p" * 16
    server = RedisServer(tmp_path, durable=False, options=("--requirepass", password))
    server.start()
    try:
        url = f"redis://:{password}@127.0.0.1:{server.port}/3"
        settings = site_settings("redis", tmp_path / "instance", "demo:", redis_url=url)
        async with AsyncExitStack() as stack:
            site = await start_site(stack, "redis", settings)
            page = await site.browser().text("/")
        assert shown(page, "store-location") == f"127.0.0.1:{server.port}/3"
        assert password not in page and "hunter2" not in page
    finally:
        server.stop()


async def test_one_worker_appears_once_in_the_history_however_often_it_serves(site: Site) -> None:
    served_by = f"{socket.gethostname()}:{os.getpid()}"
    browser = site.browser()
    for _ in range(WORKER_HISTORY + 2):
        page = await browser.text("/")
    stored = await site.store.get(session_id(browser))
    assert stored is not None and stored["workers"] == [served_by]
    assert shown(page, "worker") == served_by
    assert re.findall(r"<li[^>]*><code>([^<]+)</code>", page) == [served_by]


def test_the_worker_history_keeps_the_last_six_without_repeats_in_a_row() -> None:
    history: list[str] = []
    for worker in ["a:1", "a:1", "b:2", "a:1", "c:3", "c:3", "d:4", "e:5", "f:6", "g:7"]:
        history = worker_history(history, worker)
    assert history == ["b:2", "a:1", "c:3", "d:4", "e:5", "f:6", "g:7"][-WORKER_HISTORY:]
    assert worker_history({"not": "a list"}, "a:1") == ["a:1"]
    assert worker_history(["a:1", 7, None], "b:2") == ["a:1", "b:2"]


async def test_the_count_survives_sign_in_under_a_new_id(site: Site) -> None:
    browser = site.browser()
    await site.browser().register("alice")
    for expected in (1, 2, 3):
        assert await browser.visits() == expected
    anonymous_id = session_id(browser)
    assert (await browser.login("alice")).status_code == 302
    assert session_id(browser) != anonymous_id
    assert await site.store.get(anonymous_id) is None
    assert await browser.visits() == 4
    assert await browser.signed_in_as() == "alice"


async def test_the_count_does_not_pass_from_one_user_to_the_next(site: Site) -> None:
    browser = await site.user("alice")
    await site.browser().register("bob")
    for _ in range(3):
        await browser.visits()
    assert (await browser.login("bob")).status_code == 302
    assert await browser.signed_in_as() == "bob"
    assert await browser.visits() == 1
