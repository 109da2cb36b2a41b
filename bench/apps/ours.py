"""Our sessions extension with the store named by BENCH_STORE (memory, file, redis or postgres)."""

from __future__ import annotations

from quart import Quart

from bench.apps.settings import (
    FILE_DIR,
    PREFIX,
    SECRET,
    STORE,
    add_pages,
    require_database_url,
    require_redis_url,
)
from sessions import FileStore, MemoryStore, PostgresStore, RedisStore, Sessions, Store


def make_store() -> Store:
    if STORE == "memory":
        return MemoryStore()
    if STORE == "file":
        if not FILE_DIR:
            raise RuntimeError("BENCH_FILE_DIR must name a directory for FileStore")
        return FileStore(FILE_DIR)
    if STORE == "redis":
        return RedisStore.from_url(require_redis_url(), prefix=PREFIX)
    if STORE == "postgres":
        # connect-pg-simple's table "session", in a database of the stack's own.
        return PostgresStore.from_url(require_database_url())
    raise RuntimeError(f"BENCH_STORE must be memory, file, redis or postgres, not {STORE!r}")


app = Quart(__name__)
# The express-session configuration the issue names: no resave, no rolling, nothing saved
# for visitors who never touch the session, a browser-session cookie.
Sessions(
    app, secret=SECRET, store=make_store(), resave=False, rolling=False, save_uninitialized=False
)

add_pages(app)
