"""Test helpers for the demo site: a browser over the Quart test client, and a site factory."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from quart import Quart
from quart.testing import QuartClient
from quart.testing.connections import TestHTTPConnection
from quart.typing import HTTPScope
from quart.wrappers import Response

from app import create_app
from auth import Auth
from deploy.postgres_server import PostgresServer, psql

COOKIE = "connect.sid"
PASSWORD = "correct horse battery"
# Cheap argon2id for tests that are not about hashing cost (8 KiB, one pass).
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

SiteFactory = Callable[..., Awaitable["Site"]]


class OneCookieHeader(TestHTTPConnection):
    """A request whose cookies travel in one Cookie header, as a browser sends them over
    HTTP/1.1 (Quart's test client sends one header per cookie)."""

    def __init__(self, app: Quart, scope: HTTPScope, _preserve_context: bool = False) -> None:
        cookies = [value for name, value in scope["headers"] if name.lower() == b"cookie"]
        if len(cookies) > 1:
            others = [
                (name, value) for name, value in scope["headers"] if name.lower() != b"cookie"
            ]
            scope = {**scope, "headers": [*others, (b"cookie", b"; ".join(cookies))]}
        super().__init__(app, scope, _preserve_context=_preserve_context)


class BrowserClient(QuartClient):
    """Quart's test client with browser-like Cookie headers."""

    http_connection_class = OneCookieHeader


class Browser:
    """One browser: its own cookie jar and client address."""

    def __init__(self, client: QuartClient, address: str = "127.0.0.1") -> None:
        self.client = client
        self.address = address

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.client.get(path, scope_base={"client": (self.address, 50000)}, **kwargs)

    async def post(
        self,
        path: str,
        form: dict[str, str] | None = None,
        *,
        csrf: bool = True,
        **kwargs: Any,
    ) -> Response:
        form = dict(form or {})
        if csrf and "csrf_token" not in form:
            form["csrf_token"] = await self.csrf_token()
        return await self.client.post(
            path, form=form, scope_base={"client": (self.address, 50000)}, **kwargs
        )

    async def text(self, path: str) -> str:
        response = await self.get(path)
        return await response.get_data(as_text=True)

    async def csrf_token(self) -> str:
        page = await self.text("/login")
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match, "the login page has no csrf_token field"
        return match.group(1)

    async def register(self, username: str, password: str = PASSWORD, **extra: str) -> Response:
        form = {"username": username, "password": password, "confirm": password, **extra}
        return await self.post("/register", form)

    async def login(
        self,
        username: str,
        password: str = PASSWORD,
        *,
        remember: bool = False,
        headers: dict[str, str] | None = None,
        **extra: str,
    ) -> Response:
        form = {"username": username, "password": password, **extra}
        if remember:
            form["remember"] = "on"
        return await self.post("/login", form, headers=headers)

    async def logout(self) -> Response:
        return await self.post("/logout")

    async def visits(self) -> int:
        page = await self.text("/")
        match = re.search(r'id="visits">(\d+)<', page)
        assert match, "the start page shows no visit counter"
        return int(match.group(1))

    async def signed_in_as(self) -> str | None:
        """The username the site greets us with, or None when anonymous."""
        response = await self.get("/account")
        if response.status_code != 200:
            return None
        page = await response.get_data(as_text=True)
        match = re.search(r'<h1 id="account-title">([^<]+)</h1>', page)
        return match.group(1) if match else None

    @property
    def cookie(self) -> str | None:
        jar = self.client.cookie_jar
        assert jar is not None
        return next((c.value for c in jar if c.name == COOKIE), None)

    def set_cookie(self, value: str) -> None:
        self.client.set_cookie("localhost", COOKIE, value)


class Site:
    """A running demo app and a way to open browsers on it."""

    def __init__(self, app: Quart, backend: str, settings: Mapping[str, Any]) -> None:
        self.app = app
        self.backend = backend
        self.settings = dict(settings)

    def browser(self, address: str = "127.0.0.1") -> Browser:
        return Browser(self.app.test_client(), address)

    @property
    def auth(self) -> Auth:
        ext: Auth = self.app.extensions["auth"]
        return ext

    @property
    def store(self) -> Any:
        return self.app.extensions["sessions"].store

    async def user(self, username: str = "alice", password: str = PASSWORD) -> Browser:
        """A browser signed in as a freshly registered user."""
        browser = self.browser()
        assert (await browser.register(username, password)).status_code == 302
        assert (await browser.login(username, password)).status_code == 302
        return browser


BACKENDS = ["embedded", "redis", "postgres"]


def database_for(backend: str, request: pytest.FixtureRequest) -> str | None:
    """A database of this test's own (``postgres_database``) for the "postgres" backend."""
    return str(request.getfixturevalue("postgres_database")) if backend == "postgres" else None


def site_settings(
    backend: str,
    instance: Path,
    prefix: str,
    redis_url: str | None = None,
    *,
    database_url: str | None = None,
    **config: Any,
) -> dict[str, Any]:
    """create_app settings for a test site; ``prefix`` is this test's own key prefix on the
    Redis at ``redis_url`` (the ``redis_url`` fixture), which the "redis" backend needs. The
    "postgres" backend needs ``database_url`` (``database_for``); its users and counters go to
    tables named after ``prefix`` there, and its sessions to the ``session`` table."""
    settings: dict[str, Any] = {
        "TESTING": True,
        "SECRET_KEY": "test secret " + "x" * 32,
        "INSTANCE_PATH": str(instance),
        "AUTH_PASSWORD_HASHER": FAST_HASHER,
    }
    if backend == "redis":
        if redis_url is None:
            raise ValueError("the redis backend needs redis_url (the redis_url fixture)")
        settings["REDIS_URL"] = redis_url
        settings["REDIS_PREFIX"] = prefix
    elif backend == "postgres":
        if database_url is None:
            raise ValueError("the postgres backend needs database_url (see database_for)")
        settings["DATABASE_URL"] = database_url
        settings["AUTH_KEY_PREFIX"] = f"{prefix}auth:"
    settings.update(config)
    return settings


def read_only(server: PostgresServer, on: bool) -> None:
    """Every transaction of a private PostgreSQL read-only (or not), on open connections too."""
    value = "on" if on else "off"
    psql(server.url, f"ALTER SYSTEM SET default_transaction_read_only = {value}")
    psql(server.url, "SELECT pg_reload_conf()")
    # The reload reaches the postmaster asynchronously. Once a new connection has the setting,
    # the postmaster has also passed it to every open one, which applies it before its next
    # statement: from here on the app's pooled connections see it too.
    deadline = time.monotonic() + 10
    while psql(server.url, "SHOW default_transaction_read_only") != value:
        assert time.monotonic() < deadline, f"default_transaction_read_only did not become {value}"
        time.sleep(0.02)


async def start_site(stack: AsyncExitStack, backend: str, settings: dict[str, Any]) -> Site:
    """Create the demo app with ``settings`` and run its lifespan until ``stack`` closes."""
    app = create_app(settings)
    app.test_client_class = BrowserClient
    await stack.enter_async_context(app.test_app())
    return Site(app, backend, settings)
