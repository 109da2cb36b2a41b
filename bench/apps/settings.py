"""The environment every benchmark app reads (set by bench.stacks when it starts a server)."""

from __future__ import annotations

import os

from quart import Quart, session

SECRET = os.environ.get("BENCH_SECRET", "bench-secret-not-for-production")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "")
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "")
PREFIX = os.environ.get("BENCH_PREFIX", "bench:sess:")
FILE_DIR = os.environ.get("BENCH_FILE_DIR", "")
STORE = os.environ.get("BENCH_STORE", "memory")


def require_redis_url() -> str:
    if not REDIS_URL:
        raise RuntimeError("BENCH_REDIS_URL must name the benchmark's private redis-server")
    return REDIS_URL


def require_database_url() -> str:
    if not DATABASE_URL:
        raise RuntimeError("BENCH_DATABASE_URL must name a database on the benchmark's PostgreSQL")
    return DATABASE_URL


def body(views: int) -> str:
    return f"views={views}"


def add_pages(app: Quart) -> None:
    """The two pages every session stack serves, the same way: /count writes, /read only reads."""

    @app.get("/count")
    async def count() -> str:
        session["views"] = session.get("views", 0) + 1
        return body(session["views"])

    @app.get("/read")
    async def read() -> str:
        return body(session.get("views", 0))
