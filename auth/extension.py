"""The ``Auth`` extension object, ``current_user`` and the login/logout primitives."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from argon2 import PasswordHasher
from quart import Quart, Response, abort, current_app, g, request, url_for
from quart import session as _quart_session
from werkzeug.local import LocalProxy

from sessions import MemoryStore, RedisStore, Session

from .csrf import SESSION_KEY as CSRF_SESSION_KEY
from .csrf import csrf_token
from .passwords import Passwords
from .throttle import Counters, FileCounters, MemoryCounters, RedisCounters, Throttle
from .tokens import Tokens
from .users import AnonymousUser, FileUserStore, RedisUserStore, User, UserStore

__all__ = [
    "DEFAULTS",
    "Auth",
    "current_user",
    "login_required",
    "login_user",
    "logout_user",
    "signed_in_user",
    "wants_json",
]

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
    "AUTH_KEY_PREFIX": "auth:",
    "AUTH_HOME": "/",
    "AUTH_SECRET": None,
    "AUTH_URL_PREFIX": "",
    "AUTH_PASSWORD_HASHER": None,
}

# Session keys; the leading underscore keeps them apart from the application's own data.
USER_ID = "_auth_user_id"
TOKEN = "_auth_token"
CREATED = "_auth_created"
USER_AGENT = "_auth_user_agent"
REMEMBER = "_auth_remember"
USER_AGENT_LENGTH = 200

ANONYMOUS = AnonymousUser()

# quart's proxy is typed as Flask's SessionMixin; ours has id, cookie, owner, regenerate, destroy.
session = cast(Session, _quart_session)


class Auth:
    """Sign-up, sign-in, sign-out and the account page on top of ``sessions``.

    Every argument is keyword-only and optional: a missing one comes from ``app.config``
    (``AUTH_*`` keys, see ``DEFAULTS``), and with no config key from the default.  The
    sessions extension must be set up first; users and throttle counters then live in the
    same backend as the sessions unless given.  Example::

        app = Quart(__name__)
        Sessions(app, store=RedisStore.from_url("redis://127.0.0.1:6379/0"))
        auth = Auth(app, remember_duration=timedelta(days=14))
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
        key_prefix: str | None = None,
        home: str | None = None,
        secret: str | list[str] | None = None,
        url_prefix: str | None = None,
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
            "AUTH_KEY_PREFIX": key_prefix,
            "AUTH_HOME": home,
            "AUTH_SECRET": secret,
            "AUTH_URL_PREFIX": url_prefix,
        }
        self._users = users
        self._counters = counters
        self._hasher = hasher
        self._exempt: set[Callable[..., Any]] = set()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Quart) -> None:
        """Resolve the options, register the blueprint and the per-request hooks."""
        from .views import blueprint

        sessions = app.extensions.get("sessions")
        if sessions is None:
            raise RuntimeError("set up sessions.Sessions on the app before auth.Auth")
        store = sessions.store

        option = self._resolve(app)
        self.remember_duration = _seconds(option("AUTH_REMEMBER_DURATION"))
        self.password_min_length = int(option("AUTH_PASSWORD_MIN_LENGTH"))
        self.password_max_length = int(option("AUTH_PASSWORD_MAX_LENGTH"))
        self.home = str(option("AUTH_HOME"))
        self.passwords = Passwords(self._hasher or option("AUTH_PASSWORD_HASHER"))
        prefix = str(option("AUTH_KEY_PREFIX"))

        secret = option("AUTH_SECRET")
        if secret is None and app.config.get("SECRET_KEY"):
            secret = [app.config["SECRET_KEY"], *(app.config.get("SECRET_KEY_FALLBACKS") or ())]
        if secret is None:
            secret = app.config.get("SESSION_SECRET")
        keys = list(secret) if isinstance(secret, list | tuple) else [secret]
        self.tokens = Tokens([k for k in keys if k])

        instance = Path(app.instance_path)
        if self._users is None:
            if isinstance(store, RedisStore):
                self._users = RedisUserStore(store.client, prefix=prefix)
            else:
                self._users = FileUserStore(instance / "users.json")
        if self._counters is None:
            if isinstance(store, RedisStore):
                self._counters = RedisCounters(store.client, prefix=f"{prefix}throttle:")
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

        app.before_request(self._load_user)
        app.context_processor(_template_globals)
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

    def _resolve(self, app: Quart) -> Callable[[str], Any]:
        def option(key: str) -> Any:
            value = self._options.get(key)
            if value is None:
                value = app.config.get(key, DEFAULTS[key])
            return value

        return option

    async def _load_user(self) -> None:
        g._auth_user = ANONYMOUS
        if request.endpoint == "static":
            return
        view = current_app.view_functions.get(request.endpoint or "")
        if view is not None and view in self._exempt:
            return
        g._auth_user = await self._user_from_session()

    async def _user_from_session(self) -> User | AnonymousUser:
        user_id = session.get(USER_ID)
        if not isinstance(user_id, str):
            return ANONYMOUS
        user = await self.users.get(user_id)
        token = session.get(TOKEN)
        key = None if user is None or not isinstance(token, str) else self.tokens.which(user, token)
        if user is None or key is None:
            # A password change (or a deleted account) ended this sign-in: nothing of it stays.
            await session.destroy()
            return ANONYMOUS
        if key != 0:
            session[TOKEN] = self.tokens.sign_in(user)
        return user

    async def _after_serving(self) -> None:
        self.passwords.close()


def _seconds(value: timedelta | float | int) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "current_user": current_user}


def _extension() -> Auth:
    return cast(Auth, current_app.extensions["auth"])


def _get_user() -> User | AnonymousUser:
    return cast("User | AnonymousUser", g.get("_auth_user", ANONYMOUS))


def signed_in_user() -> User:
    """The signed-in user of this request; only for views behind ``login_required``."""
    user = _get_user()
    if not isinstance(user, User):
        raise RuntimeError("signed_in_user() needs a signed-in user: use @login_required")
    return user


current_user = cast("User | AnonymousUser", LocalProxy(_get_user))
"""The signed-in ``User`` of this request, or an ``AnonymousUser`` (``is_authenticated`` False)."""


async def login_user(user: User, *, remember: bool = False) -> None:
    """Sign ``user`` in: a new session id (no fixation), a token bound to the password hash.

    The session's data (a cart, a visit count) carries over to the new id, unless the session
    belonged to another user; the CSRF token is made anew.

    ``remember`` makes the cookie persistent for ``AUTH_REMEMBER_DURATION``; otherwise it is a
    browser-session cookie and the store's ttl is the idle timeout.  Example::

        await login_user(user, remember=True)
    """
    ext = _extension()
    # Like Django's login(): the visitor's data stays under a new id, unless the session was
    # another user's, whose data must not pass to this one.
    previous = session.get(USER_ID)
    await session.regenerate(keep_data=previous is None or previous == user.id)
    # A CSRF token that existed before sign-in may be known to whoever planted the session.
    session.pop(CSRF_SESSION_KEY, None)
    session[USER_ID] = user.id
    session[TOKEN] = ext.tokens.sign_in(user)
    session[CREATED] = datetime.now(UTC).isoformat(timespec="seconds")
    session[USER_AGENT] = request.headers.get("User-Agent", "")[:USER_AGENT_LENGTH]
    session[REMEMBER] = remember
    session.owner = f"user:{user.id}"
    session.cookie.max_age = ext.remember_duration if remember else None
    g._auth_user = user


async def logout_user() -> None:
    """Sign out: the session is destroyed in the store and its cookie cleared.

    Example::

        await logout_user()
    """
    await session.destroy()
    g._auth_user = ANONYMOUS


def wants_json() -> bool:
    """True when the client asked for JSON rather than a page (API and fetch requests)."""
    if request.is_json or request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def login_required(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Let only signed-in users through: others are sent to the login page (or get a JSON 401).

    Example::

        @app.get("/secret")
        @login_required
        async def secret() -> str:
            return f"Hello {current_user.username}"
    """

    @wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if not current_user.is_authenticated:
            if wants_json():
                body = json.dumps({"error": "authentication required"})
                abort(Response(body, 401, content_type="application/json"))
            target = request.full_path if request.query_string else request.path
            abort(Response("", 302, headers={"Location": url_for("auth.login", next=target)}))
        return await func(*args, **kwargs)

    return wrapper
