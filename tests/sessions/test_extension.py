"""The Sessions extension: options, app.config fall-backs, start-up errors, factories, the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from quart import Quart, session

from sessions import DEFAULTS, FileStore, MemoryStore, Sessions
from sessions.expiry import now_ms
from sessions.signing import unsign
from tests.sessions.conftest import Browser, cookie_value, set_cookies


def bare_app(**config: Any) -> Quart:
    app = Quart(__name__)
    app.config.update(TESTING=True, **config)

    @app.get("/")
    async def index() -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    return app


def test_a_missing_secret_is_a_clear_error_at_start_up() -> None:
    with pytest.raises(RuntimeError, match="no secret"):
        Sessions(bare_app())


@pytest.mark.parametrize("secret", [[], [""], ""])
def test_an_empty_secret_is_refused(secret: Any) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Sessions(bare_app(), secret=secret)


def test_an_unknown_option_or_cookie_option_is_refused() -> None:
    with pytest.raises(TypeError, match="resav"):
        Sessions(bare_app(), secret="s", resav=True)
    with pytest.raises(TypeError, match="maxAge"):
        Sessions(bare_app(), secret="s", cookie={"maxAge": 10})
    with pytest.raises(ValueError, match="unset"):
        Sessions(bare_app(), secret="s", unset="drop")
    with pytest.raises(ValueError, match="same_site"):
        Sessions(bare_app(), secret="s", cookie={"same_site": "sometimes"})


async def test_secret_key_and_its_fallbacks_sign_and_verify() -> None:
    app = bare_app(SECRET_KEY="current", SECRET_KEY_FALLBACKS=["previous"])
    Sessions(app, store=MemoryStore())
    response = await app.test_client().get("/")
    value = cookie_value(response)
    assert value is not None
    assert unsign(unquote(value), [b"current"])
    assert not unsign(unquote(value), [b"previous"])


async def test_defaults_are_secure_httponly_lax_and_secure_on_https() -> None:
    app = bare_app(SECRET_KEY="k")
    Sessions(app, store=MemoryStore())
    plain = set_cookies(await app.test_client().get("/"))[0]
    secure = set_cookies(await app.test_client().get("/", scheme="https"))[0]
    assert plain.startswith("connect.sid=s%3A")
    assert plain.endswith("; Path=/; HttpOnly; SameSite=Lax")
    assert secure.endswith("; Path=/; HttpOnly; Secure; SameSite=Lax")
    assert DEFAULTS["cookie"] == {
        "path": "/",
        "http_only": True,
        "secure": "auto",
        "same_site": "lax",
    }


async def test_quart_session_cookie_config_is_used_where_the_app_changed_it() -> None:
    app = bare_app(
        SECRET_KEY="k",
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_DOMAIN="example.test",
    )
    Sessions(app, store=MemoryStore())
    header = set_cookies(await app.test_client().get("/"), name="sid")[0]
    assert header.startswith("sid=s%3A")
    assert "Domain=example.test" in header and header.endswith("SameSite=Strict")


async def test_session_config_keys_set_the_policy() -> None:
    app = bare_app(SECRET_KEY="k", SESSION_ROLLING=True, SESSION_SAVE_UNINITIALIZED=True)
    Sessions(app, store=MemoryStore())

    @app.get("/quiet")
    async def quiet() -> str:
        return "quiet"

    browser = Browser(app.test_client(use_cookies=False))
    assert set_cookies(await browser.get("/quiet"))  # save_uninitialized: a cookie at once
    assert set_cookies(await browser.get("/quiet"))  # rolling: again on every response


async def test_init_app_works_in_a_factory_and_registers_the_extension(tmp_path: Path) -> None:
    extension = Sessions(secret="s", store=FileStore(tmp_path))

    def create_app() -> Quart:
        app = bare_app()
        extension.init_app(app, rolling=True)
        return app

    app = create_app()
    assert app.extensions["sessions"] is extension
    assert extension.engine is not None and extension.engine.policy.rolling
    browser = Browser(app.test_client(use_cookies=False))
    await browser.get("/")
    assert await (await browser.get("/")).get_data(as_text=True) == "2"


async def test_a_request_outside_the_cookie_path_has_no_session() -> None:
    app = bare_app(SECRET_KEY="k")
    Sessions(app, store=MemoryStore(), cookie={"path": "/app"})

    @app.get("/app/page")
    async def inside() -> str:
        session["x"] = 1
        return "in"

    @app.get("/application")
    async def outside() -> str:
        return "yes" if not session else "no"

    client = app.test_client(use_cookies=False)
    assert set_cookies(await client.get("/app/page"))
    response = await client.get("/application")
    assert await response.get_data(as_text=True) == "yes"
    assert not set_cookies(response)


def test_the_cli_counts_clears_and_purges(tmp_path: Path) -> None:
    import asyncio

    from sessions.cli import sessions_cli

    store = FileStore(tmp_path)
    app = bare_app(SECRET_KEY="k")
    Sessions(app, store=store)
    asyncio.run(store.write("a", b'{"cookie":{}}', now_ms() + 60_000))
    asyncio.run(store.write("b", b'{"cookie":{}}', now_ms() + 60_000))
    runner = app.test_cli_runner()

    assert "2 session(s)" in runner.invoke(sessions_cli, ["stats"]).output
    assert "0 expired" in runner.invoke(sessions_cli, ["purge-expired"]).output
    assert "deleted" in runner.invoke(sessions_cli, ["clear", "--yes"]).output
    assert "0 session(s)" in runner.invoke(sessions_cli, ["stats"]).output
