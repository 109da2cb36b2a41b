"""RedisStore: it serves any event loop, a hung Redis costs one timeout, a client you pass works."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from deploy.redis_server import RedisServer
from sessions import RedisStore
from sessions.expiry import now_ms
from tests.sessions.conftest import SECRET, Browser, make_app

ROOT = Path(__file__).resolve().parents[3]
BASE = now_ms()  # fixed for the module: hypothesis must draw the same values when it replays

# ---------------------------------------------------------------- event loops

MODULE_LEVEL_TESTS = textwrap.dedent(
    """
    import os
    import pytest
    from quart import Quart, session
    from sessions import RedisStore, Sessions

    # Made once, at import, as an application module does; each test below runs on a new loop.
    stores = {
        "multiplexed": RedisStore.from_url(os.environ["REDIS_URL"], prefix="loops:a:"),
        "redis-py": RedisStore.from_url(os.environ["REDIS_URL"], prefix="loops:b:", multiplex=False),
    }
    apps = {}
    for name, store in stores.items():
        app = apps[name] = Quart(name)
        Sessions(app, secret="s", store=store)

        @app.get("/")
        async def count():
            session["n"] = session.get("n", 0) + 1
            session.owner = "user:1"
            return {"n": session["n"]}

    @pytest.fixture(params=list(apps))
    def name(request):
        return request.param

    async def visit(name, times):
        client = apps[name].test_client()
        for n in range(1, times + 1):
            assert (await (await client.get("/")).get_json()) == {"n": n}
        store = stores[name]
        assert len(await store.owned("user:1")) >= 1
        assert await store.length() >= 1
        await store.ping()

    async def test_first(name):
        await visit(name, 2)

    async def test_second(name):
        await visit(name, 3)

    async def test_third(name):
        await visit(name, 1)
        await stores[name].clear()
    """
)


def test_a_module_level_store_serves_three_pytest_tests_in_a_row(
    tmp_path: Path, redis_url: str
) -> None:
    """pytest-asyncio gives each test a new event loop; a store made at import must follow."""
    (tmp_path / "test_module_level.py").write_text(MODULE_LEVEL_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        env={**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "6 passed" in result.stdout, result.stdout + result.stderr


# ---------------------------------------------------------------- a hung Redis


@pytest.mark.parametrize("multiplex", [True, False])
async def test_a_hung_redis_costs_a_signed_in_request_one_timeout_not_two(
    private_redis: RedisServer, multiplex: bool
) -> None:
    timeout = 1.0
    store = RedisStore.from_url(private_redis.url, timeout=timeout, multiplex=multiplex)
    app = make_app(store, secret=SECRET)
    browser = Browser(app.test_client(use_cookies=False))
    await browser.get("/count")
    assert private_redis.pid is not None
    os.kill(private_redis.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = await browser.get("/count")
        took = time.monotonic() - started
    finally:
        os.kill(private_redis.pid, signal.SIGCONT)
    assert response.status_code == 503
    assert timeout * 0.9 <= took < timeout * 1.8, f"waited {took:.2f} s for a {timeout} s timeout"
    assert (await browser.get("/count")).status_code == 200  # and it recovers by itself
    await store.close()


def test_store_level_commands_work_on_a_redis_py_client_you_pass(redis_url: str) -> None:
    """Your own client is used as it is (on the loop it belongs to)."""
    import redis.asyncio as aioredis

    async def run() -> Any:
        client = aioredis.Redis.from_url(redis_url)
        store = RedisStore(client, prefix="own:")
        await store.write("a", b'{"cookie":{}}', now_ms() + 60_000)
        found = [await store.load("a"), await store.ids()]
        await store.clear()
        await client.aclose()
        return found

    assert asyncio.run(run()) == [b'{"cookie":{}}', ["a"]]
