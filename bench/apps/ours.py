"""Our sessions extension with the store named by BENCH_STORE (memory, file or redis)."""

from __future__ import annotations

from quart import Quart

from bench.apps.settings import FILE_DIR, PREFIX, SECRET, STORE, add_pages, require_redis_url
from sessions import FileStore, MemoryStore, RedisStore, Sessions, Store


def make_store() -> Store:
    if STORE == "memory":
        return MemoryStore()
    if STORE == "file":
        if not FILE_DIR:
            raise RuntimeError("BENCH_FILE_DIR must name a directory for FileStore")
        return FileStore(FILE_DIR)
    if STORE == "redis":
        return RedisStore.from_url(require_redis_url(), prefix=PREFIX)
    raise RuntimeError(f"BENCH_STORE must be memory, file or redis, not {STORE!r}")


app = Quart(__name__)
# The express-session configuration the issue names: no resave, no rolling, nothing saved
# for visitors who never touch the session, a browser-session cookie.
Sessions(
    app, secret=SECRET, store=make_store(), resave=False, rolling=False, save_uninitialized=False
)

add_pages(app)
