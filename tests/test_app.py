"""The demo site: counter, headers, health, secret handling, restarts and a store that goes away."""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from app import create_app

from .auth.support import BACKENDS, Site, SiteFactory, site_settings, start_site

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_site(
    backend: str, tmp_path: Path, key_prefix: str, redis_url: str, redis_client: Any
) -> AsyncIterator[SiteFactory]:
    async with AsyncExitStack() as stack:

        async def make(**config: Any) -> Site:
            prefix = key_prefix.removesuffix("sess:")
            settings = site_settings(backend, tmp_path / "instance", prefix, redis_url, **config)
            return await start_site(stack, backend, settings)

        yield make


@pytest.fixture
async def site(make_site: SiteFactory) -> Site:
    return await make_site()


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
        assert "script-src" not in csp and "'unsafe-inline'" not in csp
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
    backend: str, tmp_path: Path, key_prefix: str, redis_url: str, redis_client: Any
) -> None:
    prefix = key_prefix.removesuffix("sess:")
    settings = site_settings(backend, tmp_path / "instance", prefix, redis_url)
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
    monkeypatch.delenv("REDIS_URL", raising=False)
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
    env = {**os.environ, "INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "s" * 40}
    env.pop("REDIS_URL", None)
    code = "import app, quart; print(isinstance(app.app, quart.Quart), app.app is app.app)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["True", "True"], result.stderr


async def test_store_outage_gives_friendly_503_and_recovery(
    tmp_path: Path, private_redis: Any
) -> None:
    settings = site_settings("redis", tmp_path / "instance", "demo:", private_redis.url)
    async with AsyncExitStack() as stack:
        site = await start_site(stack, "redis", settings)
        browser = await site.user("alice")
        assert await browser.visits() == 1
        token = await browser.csrf_token()

        private_redis.stop()
        page = await browser.get("/")
        assert page.status_code == 503
        assert int(page.headers["Retry-After"]) > 0
        text = await page.get_data(as_text=True)
        assert "Back in a moment" in text and "Traceback" not in text
        assert page.headers["X-Served-By"]
        health = await browser.get("/healthz")
        assert health.status_code == 503
        assert await health.get_json() == {"status": "degraded", "store": False, "accounts": False}
        login = await browser.post(
            "/login", {"username": "alice", "password": "x", "csrf_token": token}
        )
        assert login.status_code == 503
        assert "Back in a moment" in await login.get_data(as_text=True)

        private_redis.start()
        assert (await browser.get("/healthz")).status_code == 200
        assert await browser.signed_in_as() == "alice"
        assert await browser.visits() == 2


def test_workers_starting_together_agree_on_the_generated_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "REDIS_URL")}
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
