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

from typing import cast

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
from .stores.postgres import PostgresStore
from .stores.redis import RedisStore

#: ``quart.session`` typed as our Session: ``from sessions import session``.
session = cast(Session, _quart_session)

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
