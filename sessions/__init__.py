"""Server-side sessions for Quart with express-session's semantics.

::

    from quart import Quart, session
    from sessions import Sessions, RedisStore

    app = Quart(__name__)
    Sessions(app, secret=["new", "old"], store=RedisStore.from_url("redis://127.0.0.1:6379/0"))

    @app.get("/")
    async def index():
        session["visits"] = session.get("visits", 0) + 1
        return f"visit {session['visits']}"
"""

import importlib
from typing import TYPE_CHECKING, Any, cast

from quart import session as _quart_session

from .cookie import Cookie
from .errors import (
    SessionError,
    SessionNotFound,
    SessionTooLarge,
    SessionUnavailable,
    StoreUnavailable,
)
from .extension import DEFAULTS, Sessions, default_genid
from .helpers import skip_session
from .session import Session
from .stores.base import SessionInfo, Store
from .stores.file import FileStore
from .stores.memory import MemoryStore

if TYPE_CHECKING:
    from .stores.postgres import PostgresStore
    from .stores.redis import RedisStore

#: ``quart.session`` typed as our Session: ``from sessions import session``.
session = cast(Session, _quart_session)

# The stores that need a driver are imported when first asked for, so that the folder works with
# Quart alone until you use Redis (redis[hiredis]) or PostgreSQL (asyncpg).
_BACKENDS = {"RedisStore": ("redis", "redis[hiredis]"), "PostgresStore": ("postgres", "asyncpg")}


def __getattr__(name: str) -> Any:
    if name not in _BACKENDS:
        raise AttributeError(f"module 'sessions' has no attribute {name!r}")
    module, requirement = _BACKENDS[name]
    try:
        loaded = importlib.import_module(f".stores.{module}", __name__)
    except ImportError as error:
        raise ImportError(
            f"sessions.{name} needs the {requirement!r} package: pip install '{requirement}'"
        ) from error
    value = getattr(loaded, name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULTS",
    "Cookie",
    "FileStore",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "Session",
    "SessionError",
    "SessionInfo",
    "SessionNotFound",
    "SessionTooLarge",
    "SessionUnavailable",
    "Sessions",
    "Store",
    "StoreUnavailable",
    "default_genid",
    "session",
    "skip_session",
]
