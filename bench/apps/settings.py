"""The environment every benchmark app reads (set by bench.stacks when it starts a server)."""

from __future__ import annotations

import os

SECRET = os.environ.get("BENCH_SECRET", "bench-secret-not-for-production")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "")
PREFIX = os.environ.get("BENCH_PREFIX", "bench:sess:")
FILE_DIR = os.environ.get("BENCH_FILE_DIR", "")
STORE = os.environ.get("BENCH_STORE", "memory")


def require_redis_url() -> str:
    if not REDIS_URL:
        raise RuntimeError("BENCH_REDIS_URL must name the benchmark's private redis-server")
    return REDIS_URL


def body(views: int) -> str:
    return f"views={views}"
