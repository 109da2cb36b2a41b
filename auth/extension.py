"""The ``Auth`` extension object: options, backends and the per-request hooks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from argon2 import PasswordHasher
from quart import Quart, current_app, g, request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from sessions import MemoryStore, PostgresStore, RedisStore
from sessions.stores.postgres_pool import Connections
from sessions.stores.redis import redis_client

from .csrf import CSRF, csrf_token
from .globals import ANONYMOUS, current_user
from .passwords import Passwords
from .postgres import Database, connect, table_name
from .signins import SignIns
from .throttle import (
    Counters,
    FileCounters,
    MemoryCounters,
    PostgresCounters,
    RedisCounters,
    Throttle,
)
from .tokens import Tokens
from .users import FileUserStore, PostgresUserStore, RedisUserStore, UserStore
from .views import blueprint

__all__ = ["DEFAULTS", "EVICTING_POLICIES", "Auth"]

logger = logging.getLogger("auth")

P = ParamSpec("P")
T = TypeVar("T")

# Config keys and their defaults; constructor arguments win over app.config, which wins over these.
DEFAULTS: dict[str, Any] = {
    "AUTH_REMEMBER_DURATION": timedelta(days=30),
    "AUTH_LOGIN_LIMIT": 5,
    "AUTH_ADDRESS_LIMIT": 50,
    "AUTH_LIMIT_WINDOW": timedelta(minutes=15),
    "AUTH_REGISTER_LIMIT": 20,
    "AUTH_REGISTER_WINDOW": timedelta(hours=1),
    "AUTH_PASSWORD_MIN_LENGTH": 8,
    "AUTH_PASSWORD_MAX_LENGTH": 1024,
    "AUTH_PASSWORD_MIN_SCORE": 3,
    "AUTH_MAX_SESSIONS": 10,
    "AUTH_KEY_PREFIX": "auth:",
    "AUTH_HOME": "/",
    "AUTH_SECRET": None,
    "AUTH_URL_PREFIX": "",
    "AUTH_PASSWORD_HASHER": None,
    "AUTH_REDIS_URL": None,
    "AUTH_DATABASE_URL": None,
}

RedisBackends = RedisUserStore | RedisCounters

#: Redis policies that may evict keys without a TTL: user records and the username index.
EVICTING_POLICIES = frozenset({"allkeys-lru", "allkeys-lfu", "allkeys-random"})


class Auth:
    """Sign-up, sign-in, sign-out and the account page on top of ``sessions``.

    Every argument is keyword-only and optional: a missing one comes from ``app.config``
    (``AUTH_*`` keys, see ``DEFAULTS``), and with no config key from the default.  The
    sessions extension must be set up first.  Tokens are signed with the sessions' secrets
    unless ``secret`` (``AUTH_SECRET``) is given.  Users and throttle counters live:

    - in Redis with ``redis_url`` (``AUTH_REDIS_URL``), in PostgreSQL with ``database_url``
      (``AUTH_DATABASE_URL``; giving both is an error);
    - else where the sessions live: on a ``RedisStore``'s client, or in a ``PostgresStore``'s
      database through its pool;
    - else in files in the instance folder (counters in memory beside a ``MemoryStore``).

    In PostgreSQL they are two tables named after ``key_prefix`` (``AUTH_KEY_PREFIX``): the
    default ``auth:`` gives ``auth_users`` and ``auth_throttle`` (see ``postgres.table_name``),
    each created when missing.  Example::

        app = Quart(__name__)
        Sessions(app, store=RedisStore.from_url("redis://127.0.0.1:6379/0"))
        auth = Auth(app, remember_duration=timedelta(days=14), redis_url="redis://10.0.0.5/0")
    """

    def __init__(
        self,
        app: Quart | None = None,
        *,
        users: UserStore | None = None,
        counters: Counters | None = None,
        hasher: PasswordHasher | None = None,
        remember_duration: timedelta | int | None = None,
        login_limit: int | None = None,
        address_limit: int | None = None,
        limit_window: timedelta | int | None = None,
        register_limit: int | None = None,
        register_window: timedelta | int | None = None,
        password_min_length: int | None = None,
        password_max_length: int | None = None,
        password_min_score: int | None = None,
        max_sessions: int | None = None,
        key_prefix: str | None = None,
        home: str | None = None,
        secret: str | bytes | list[str | bytes] | None = None,
        url_prefix: str | None = None,
        redis_url: str | None = None,
        database_url: str | None = None,
    ) -> None:
        self._options: dict[str, Any] = {
            "AUTH_REMEMBER_DURATION": remember_duration,
            "AUTH_LOGIN_LIMIT": login_limit,
            "AUTH_ADDRESS_LIMIT": address_limit,
            "AUTH_LIMIT_WINDOW": limit_window,
            "AUTH_REGISTER_LIMIT": register_limit,
            "AUTH_REGISTER_WINDOW": register_window,
            "AUTH_PASSWORD_MIN_LENGTH": password_min_length,
            "AUTH_PASSWORD_MAX_LENGTH": password_max_length,
            "AUTH_PASSWORD_MIN_SCORE": password_min_score,
            "AUTH_MAX_SESSIONS": max_sessions,
            "AUTH_KEY_PREFIX": key_prefix,
            "AUTH_HOME": home,
            "AUTH_SECRET": secret,
            "AUTH_URL_PREFIX": url_prefix,
            "AUTH_REDIS_URL": redis_url,
            "AUTH_DATABASE_URL": database_url,
        }
        self._users = users
        self._counters = counters
        self._hasher = hasher
        self._own_client: Redis | None = None
        self._own_database: Connections | None = None
        self._exempt: set[Callable[..., Any]] = set()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Quart) -> None:
        """Resolve the options, set up the backends, register the blueprint and the hooks."""
        sessions = app.extensions.get("sessions")
        if sessions is None:
            raise RuntimeError("set up sessions.Sessions on the app before auth.Auth")
        store = sessions.store

        option = self._resolve(app)
        self.remember_duration = _seconds(option("AUTH_REMEMBER_DURATION"))
        self.password_min_length = int(option("AUTH_PASSWORD_MIN_LENGTH"))
        self.password_max_length = int(option("AUTH_PASSWORD_MAX_LENGTH"))
        self.password_min_score = int(option("AUTH_PASSWORD_MIN_SCORE"))
        self.home = str(option("AUTH_HOME"))
        self.passwords = Passwords(self._hasher or option("AUTH_PASSWORD_HASHER"))
        prefix = str(option("AUTH_KEY_PREFIX"))

        # One secret resolution, the sessions' (SESSION_SECRET, else SECRET_KEY + fallbacks).
        secret = option("AUTH_SECRET")
        if secret is None:
            keys = list(sessions.secrets)
        else:
            keys = list(secret) if isinstance(secret, list | tuple) else [secret]
        self.tokens = Tokens(keys)
        self.csrf = CSRF(self.tokens)

        redis_url, database_url = option("AUTH_REDIS_URL"), option("AUTH_DATABASE_URL")
        if redis_url and database_url:
            raise ValueError(
                "auth: give users and throttle counters one home, AUTH_REDIS_URL or "
                "AUTH_DATABASE_URL, not both"
            )
        client = None if database_url else self._redis(redis_url, store)
        database = None if client is not None else self._database(database_url, store)
        instance = Path(app.instance_path)
        if self._users is None:
            if client is not None:
                self._users = RedisUserStore(client, prefix=prefix)
            elif database is not None:
                self._users = PostgresUserStore(database, table=table_name(prefix, "users"))
            else:
                self._users = FileUserStore(instance / "users.json")
        if self._counters is None:
            if client is not None:
                self._counters = RedisCounters(client, prefix=f"{prefix}throttle:")
            elif database is not None:
                self._counters = PostgresCounters(database, table=table_name(prefix, "throttle"))
            elif isinstance(store, MemoryStore):
                self._counters = MemoryCounters()
            else:
                self._counters = FileCounters(instance / "throttle.json")
        self.users: UserStore = self._users
        self.throttle = Throttle(
            self._counters,
            per_user=int(option("AUTH_LOGIN_LIMIT")),
            per_address=int(option("AUTH_ADDRESS_LIMIT")),
            window=_seconds(option("AUTH_LIMIT_WINDOW")),
            registrations=int(option("AUTH_REGISTER_LIMIT")),
            registration_window=_seconds(option("AUTH_REGISTER_WINDOW")),
        )
        self.signins = SignIns(
            self.users,
            store,
            remember_duration=self.remember_duration,
            max_sessions=int(option("AUTH_MAX_SESSIONS")),
        )

        app.before_request(self._skip_exempt)
        app.after_request(self.csrf.set_cookie)
        app.context_processor(_template_globals)
        app.before_serving(self._refuse_an_evicting_redis)
        app.after_serving(self._after_serving)
        app.register_blueprint(blueprint, url_prefix=option("AUTH_URL_PREFIX") or None)
        app.extensions["auth"] = self

    def exempt(self, view: Callable[P, T]) -> Callable[P, T]:
        """Mark a view that never needs the signed-in user (so it never reads the session).

        Example::

            @app.get("/healthz")
            @auth.exempt
            async def healthz() -> dict[str, str]: ...
        """
        self._exempt.add(view)
        return view

    async def ping(self) -> bool:
        """True when the user store answers and accepts writes (for a health check)."""
        return await self.users.ping()

    def _resolve(self, app: Quart) -> Callable[[str], Any]:
        def option(key: str) -> Any:
            value = self._options.get(key)
            if value is None:
                value = app.config.get(key, DEFAULTS[key])
            return value

        return option

    def _redis(self, url: str | None, store: object) -> Redis | None:
        """The Redis of users and counters: ``AUTH_REDIS_URL``'s, else the sessions' own."""
        if url:
            self._own_client = redis_client(url)
            return self._own_client
        if isinstance(store, RedisStore):
            client: Redis = store.client
            return client
        return None

    def _database(self, url: str | None, store: object) -> Database | None:
        """The PostgreSQL of users and counters: ``AUTH_DATABASE_URL``'s, else the sessions' pool."""
        if url:
            self._own_database = connect(url)
            return self._own_database
        if isinstance(store, PostgresStore):
            return store.connections
        return None

    async def _skip_exempt(self) -> None:
        if request.endpoint == "static":
            g._auth_user = ANONYMOUS
            return
        view = current_app.view_functions.get(request.endpoint or "")
        if view is not None and view in self._exempt:
            g._auth_user = ANONYMOUS

    async def _refuse_an_evicting_redis(self) -> None:
        """Refuse to start on a Redis that may evict users (``allkeys-*``); see the README."""
        backends = (self.users, self.throttle.counters)
        clients = {id(b.client): b.client for b in backends if isinstance(b, RedisBackends)}
        for client in clients.values():
            try:
                info = await client.info("memory")
            except (RedisError, OSError) as error:
                logger.warning("auth: could not read maxmemory-policy of its Redis: %s", error)
                continue
            for policy in _policies(info):
                if policy in EVICTING_POLICIES:
                    raise RuntimeError(
                        f"auth: the Redis that holds users and throttle counters has "
                        f"maxmemory-policy {policy}, which evicts keys that have no TTL: user "
                        f"records would vanish and their names could be registered again. Give "
                        f"that Redis maxmemory-policy noeviction (or volatile-*), or give auth a "
                        f"Redis of its own with AUTH_REDIS_URL."
                    )

    async def _after_serving(self) -> None:
        self.passwords.close()
        if self._own_client is not None:
            await self._own_client.aclose()
        if self._own_database is not None:
            await self._own_database.close()


def _policies(info: dict[str, Any]) -> list[str]:
    """``maxmemory_policy`` from INFO; a cluster client answers per node."""
    if "maxmemory_policy" in info:
        return [str(info["maxmemory_policy"])]
    nodes = [node for node in info.values() if isinstance(node, dict)]
    return [str(node["maxmemory_policy"]) for node in nodes if "maxmemory_policy" in node]


def _seconds(value: timedelta | float | int) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "current_user": current_user}
