"""`Sessions`: the Quart extension object that resolves options once and installs the engine."""

from __future__ import annotations

import logging
import secrets as _secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .cli import sessions_cli
from .cookie import normalize_cookie_options
from .engine import SessionEngine
from .policy import Policy
from .stores.base import Store
from .stores.memory import MemoryStore

if TYPE_CHECKING:
    from quart import Quart
    from quart.wrappers import BaseRequestWebsocket

__all__ = ["DEFAULTS", "Sessions", "default_genid"]

logger = logging.getLogger("sessions")
Secret = str | bytes
CookieOptions = Mapping[str, Any] | Callable[["BaseRequestWebsocket"], Mapping[str, Any]]


def default_genid(request: BaseRequestWebsocket) -> str:
    """32 characters of URL-safe base64: 192 bits from `secrets`, like express's uid-safe(24)."""
    return _secrets.token_urlsafe(24)


#: Documented defaults, used when neither an argument nor app.config gives a value.
DEFAULTS: dict[str, Any] = {
    "name": "connect.sid",
    "cookie": {"path": "/", "http_only": True, "secure": "auto", "same_site": "lax"},
    "resave": False,
    "rolling": False,
    "save_uninitialized": False,
    "unset": "keep",
    "proxy": None,
    "max_size": 64 * 1024,
    "retry_after": 5,
    "anonymous_ttl": None,
    "skip": ("static",),
    "skip_not_found": True,
}

# Quart's own SESSION_COOKIE_* keys, mapped to our cookie options; used only where the app changed them.
_QUART_COOKIE_CONFIG = {
    "SESSION_COOKIE_DOMAIN": "domain",
    "SESSION_COOKIE_PATH": "path",
    "SESSION_COOKIE_HTTPONLY": "http_only",
    "SESSION_COOKIE_SECURE": "secure",
    "SESSION_COOKIE_SAMESITE": "same_site",
    "SESSION_COOKIE_PARTITIONED": "partitioned",
}


class Sessions:
    """Server-side sessions with express-session's semantics, for Quart.

    Every argument is keyword-only and falls back to ``app.config`` (``SESSION_SECRET`` or
    ``SECRET_KEY`` + ``SECRET_KEY_FALLBACKS``, ``SESSION_STORE``, ``SESSION_COOKIE_NAME``, the other
    ``SESSION_COOKIE_*`` keys, ``SESSION_RESAVE``, ``SESSION_ROLLING``, ``SESSION_SAVE_UNINITIALIZED``,
    ``SESSION_UNSET``, ``SESSION_PROXY``, ``SESSION_MAX_SIZE``, ``SESSION_RETRY_AFTER``,
    ``SESSION_ANONYMOUS_TTL``, ``SESSION_SKIP``, ``SESSION_SKIP_NOT_FOUND``), then to
    :data:`DEFAULTS`::

        app = Quart(__name__)
        Sessions(app, secret=["new", "old"], store=RedisStore.from_url("redis://127.0.0.1:6379/0"))

        # or, in a factory:
        sessions = Sessions(store=FileStore("instance/sessions"))
        sessions.init_app(app)
    """

    def __init__(self, app: Quart | None = None, **options: Any) -> None:
        self._options = options
        self.store: Store | None = None
        self.engine: SessionEngine | None = None
        #: The resolved secrets, as bytes: the first signs, every one verifies (for other extensions).
        self.secrets: tuple[bytes, ...] = ()
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: Quart,
        *,
        secret: Secret | Sequence[Secret] | None = None,
        store: Store | None = None,
        name: str | None = None,
        cookie: CookieOptions | None = None,
        resave: bool | None = None,
        rolling: bool | None = None,
        save_uninitialized: bool | None = None,
        unset: str | None = None,
        proxy: bool | None = None,
        genid: Callable[[BaseRequestWebsocket], str] | None = None,
        max_size: int | None = None,
        retry_after: int | None = None,
        anonymous_ttl: int | timedelta | None = None,
        skip: Sequence[str] | None = None,
        skip_not_found: bool | None = None,
    ) -> None:
        """Install the session engine on `app` (arguments override the constructor's)."""
        given = {k: v for k, v in locals().items() if k not in ("self", "app") and v is not None}
        options = {**self._options, **given}
        unknown = set(options) - set(DEFAULTS) - {"secret", "store", "genid"}
        if unknown:
            raise TypeError(f"unknown Sessions option(s): {sorted(unknown)}")
        config = app.config

        def pick(key: str) -> Any:
            if key in options:
                return options[key]
            return config.get(f"SESSION_{key.upper()}", DEFAULTS[key])

        store = options.get("store") or config.get("SESSION_STORE")
        if store is None:
            store = MemoryStore()
            if not (app.debug or app.testing):
                logger.warning(
                    "sessions: using MemoryStore; sessions live in one process and vanish on restart. "
                    "Pass store=FileStore(...) or RedisStore.from_url(...) in production."
                )
        unset_value = pick("unset")
        if unset_value not in ("keep", "destroy"):
            raise ValueError(f"unset must be 'keep' or 'destroy', not {unset_value!r}")
        policy = Policy(
            name=self._name(app, options),
            secrets=self._secrets(app, options.get("secret")),
            cookie=self._cookie(app, options.get("cookie")),
            resave=bool(pick("resave")),
            rolling=bool(pick("rolling")),
            save_uninitialized=bool(pick("save_uninitialized")),
            unset=unset_value,
            proxy=pick("proxy"),
            genid=options.get("genid") or default_genid,
            max_size=int(pick("max_size")),
            permanent_lifetime=app.permanent_session_lifetime,
            retry_after=int(pick("retry_after")),
            anonymous_ttl=_seconds(pick("anonymous_ttl")),
            skip=frozenset(pick("skip")),
            skip_not_found=bool(pick("skip_not_found")),
        )
        if not callable(policy.genid):
            raise TypeError("genid must be a function of the request returning a str")
        store.attach(app)
        self.store = store
        self.secrets = policy.secrets
        self.engine = SessionEngine(policy, store)
        app.session_interface = self.engine  # type: ignore[assignment]
        app.extensions["sessions"] = self
        app.after_serving(store.close)
        app.cli.add_command(sessions_cli)

    @staticmethod
    def _name(app: Quart, options: Mapping[str, Any]) -> str:
        if "name" in options:
            return str(options["name"])
        configured = app.config.get("SESSION_COOKIE_NAME")
        if configured and configured != app.default_config.get("SESSION_COOKIE_NAME"):
            return str(configured)
        return str(DEFAULTS["name"])

    @staticmethod
    def _secrets(app: Quart, secret: Secret | Sequence[Secret] | None) -> tuple[bytes, ...]:
        if secret is None:
            secret = app.config.get("SESSION_SECRET")
        if secret is None and app.config.get("SECRET_KEY"):
            secret = [app.config["SECRET_KEY"], *(app.config.get("SECRET_KEY_FALLBACKS") or ())]
        if secret is None:
            raise RuntimeError(
                "sessions: no secret. Pass Sessions(app, secret=...) or set SECRET_KEY, for example "
                "from an environment variable; generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'"
            )
        values = [secret] if isinstance(secret, str | bytes) else list(secret)
        if not values or any(not value for value in values):
            raise ValueError(
                "sessions: secret must be a non-empty string or a non-empty list of them"
            )
        return tuple(value.encode() if isinstance(value, str) else bytes(value) for value in values)

    @staticmethod
    def _cookie(app: Quart, cookie: CookieOptions | None) -> CookieOptions:
        defaults = dict(DEFAULTS["cookie"])
        for key, option in _QUART_COOKIE_CONFIG.items():
            value = app.config.get(key)
            if value is not None and value != app.default_config.get(key):
                defaults[option] = value
        if callable(cookie):
            per_request = cookie
            return lambda request: {**defaults, **normalize_cookie_options(per_request(request))}
        return normalize_cookie_options({**defaults, **(cookie or {})})


def _seconds(value: int | timedelta | None) -> int | None:
    if value is None:
        return None
    seconds = int(value.total_seconds()) if isinstance(value, timedelta) else int(value)
    if seconds <= 0:
        raise ValueError(f"anonymous_ttl must be a positive number of seconds, not {value!r}")
    return seconds
