"""The Auth extension: option precedence, defaults per backend, login_required on app routes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from quart import Quart

from auth import (
    DEFAULTS,
    Auth,
    FileCounters,
    FileUserStore,
    MemoryCounters,
    PostgresCounters,
    PostgresUserStore,
    RedisCounters,
    RedisUserStore,
    current_user,
    login_required,
)
from sessions import FileStore, MemoryStore, PostgresStore, RedisStore, Sessions

from .support import FAST_HASHER


def make_app(tmp_path: Path, store: object | None = None, **config: object) -> Quart:
    app = Quart(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=True, SECRET_KEY="s" * 40, AUTH_PASSWORD_HASHER=FAST_HASHER)
    app.config.update(config)
    Sessions(app, store=store or MemoryStore())
    return app


def test_constructor_beats_config_beats_defaults(tmp_path: Path) -> None:
    app = make_app(tmp_path, AUTH_LOGIN_LIMIT=7, AUTH_ADDRESS_LIMIT=70)
    auth = Auth(app, login_limit=3)
    assert auth.throttle.per_user == 3
    assert auth.throttle.per_address == 70
    assert auth.throttle.window == DEFAULTS["AUTH_LIMIT_WINDOW"].total_seconds() == 900
    assert auth.remember_duration == timedelta(days=30).total_seconds()
    assert app.extensions["auth"] is auth


def test_init_app_style(tmp_path: Path) -> None:
    auth = Auth(remember_duration=timedelta(days=1))
    app = make_app(tmp_path)
    auth.init_app(app)
    assert auth.remember_duration == 86400
    assert "auth.login" in {rule.endpoint for rule in app.url_map.iter_rules()}


def test_sessions_must_come_first(tmp_path: Path) -> None:
    app = Quart(__name__)
    with pytest.raises(RuntimeError, match="Sessions"):
        Auth(app)


def test_auth_signs_with_the_secrets_the_sessions_resolved(tmp_path: Path) -> None:
    """One resolution: SESSION_SECRET wins over SECRET_KEY for sessions, so for auth too."""
    app = make_app(tmp_path, SESSION_SECRET=["new session secret", "old session secret"])
    auth = Auth(app)
    assert auth.tokens.keys == app.extensions["sessions"].secrets
    assert auth.tokens.keys == (b"new session secret", b"old session secret")

    app = Quart(__name__, instance_path=str(tmp_path))
    Sessions(app, store=MemoryStore(), secret="given to sessions only")
    assert Auth(app).tokens.keys == (b"given to sessions only",)


def test_an_explicit_auth_secret_wins(tmp_path: Path) -> None:
    app = make_app(tmp_path, AUTH_SECRET="for auth alone")
    assert Auth(app).tokens.keys == (b"for auth alone",)
    assert Auth(make_app(tmp_path), secret=["a", "b"]).tokens.keys == (b"a", b"b")


async def test_backends_follow_the_session_store(tmp_path: Path, redis_url: str) -> None:
    memory = Auth(make_app(tmp_path))
    assert isinstance(memory.throttle.counters, MemoryCounters)
    assert isinstance(memory.users, FileUserStore)

    files = Auth(make_app(tmp_path, FileStore(tmp_path / "sessions")))
    assert isinstance(files.throttle.counters, FileCounters)
    assert isinstance(files.users, FileUserStore)
    assert files.users.path == tmp_path / "instance" / "users.json"

    store = RedisStore.from_url(redis_url, prefix="test:unused:sess:")
    redis = Auth(make_app(tmp_path, store), key_prefix="test:unused:auth:")
    assert isinstance(redis.throttle.counters, RedisCounters)
    assert redis.throttle.counters.prefix == "test:unused:auth:throttle:"
    assert isinstance(redis.users, RedisUserStore) and redis.users.client is store.client
    await store.close()

    # Nothing connects before the first request: the URL need not answer here.
    store = PostgresStore.from_url("postgresql://app@127.0.0.1:1/app")
    postgres = Auth(make_app(tmp_path, store), key_prefix="shop:auth:")
    assert isinstance(postgres.users, PostgresUserStore)
    assert isinstance(postgres.throttle.counters, PostgresCounters)
    assert postgres.users.table.database is store.connections
    assert postgres.throttle.counters.table.database is store.connections
    assert (postgres.users.table.name, postgres.throttle.counters.table.name) == (
        "shop_auth_users",
        "shop_auth_throttle",
    )


def test_an_auth_url_beats_the_session_store_and_only_one_may_be_given(tmp_path: Path) -> None:
    on_files = make_app(tmp_path, FileStore(tmp_path / "sessions"))
    auth = Auth(on_files, database_url="postgresql://app@127.0.0.1:1/accounts")
    assert isinstance(auth.users, PostgresUserStore)
    assert isinstance(auth.throttle.counters, PostgresCounters)
    assert auth.users.table.name == "auth_users"

    on_postgres = make_app(
        tmp_path,
        PostgresStore.from_url("postgresql://app@127.0.0.1:1/app"),
        AUTH_REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert isinstance(Auth(on_postgres).users, RedisUserStore)

    both = make_app(tmp_path, AUTH_REDIS_URL="redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="AUTH_REDIS_URL or AUTH_DATABASE_URL, not both"):
        Auth(both, database_url="postgresql://app@127.0.0.1:1/accounts")


async def test_login_required_on_an_app_route(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    Auth(app)

    @app.get("/reports/<int:number>")
    @login_required
    async def report(number: int) -> str:
        return f"report {number} for {current_user.username}"

    client = app.test_client()
    page = await client.get("/reports/7?format=full")
    assert page.status_code == 302
    assert page.headers["Location"] == "/login?next=/reports/7?format%3Dfull"
    api = await client.get("/reports/7", headers={"X-Requested-With": "XMLHttpRequest"})
    assert api.status_code == 401


async def test_current_user_is_anonymous_outside_sign_in(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    Auth(app)

    @app.get("/who")
    async def who() -> dict[str, object]:
        return {"authenticated": current_user.is_authenticated, "name": current_user.username}

    response = await app.test_client().get("/who")
    assert await response.get_json() == {"authenticated": False, "name": None}
