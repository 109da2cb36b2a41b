"""RedisStore: its scripts equal the Python rules, it serves any event loop, a hung Redis costs one timeout."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.redis_server import RedisServer
from sessions import RedisStore
from sessions.expiry import Renewal, iso_from_ms, now_ms, renew_record
from sessions.record import Change, merge_record
from tests.sessions.conftest import SECRET, Browser, make_app

ROOT = Path(__file__).resolve().parents[3]
BASE = now_ms()  # fixed for the module: hypothesis must draw the same values when it replays

# ---------------------------------------------------------------- the scripts against the rules

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# How other writers spell JSON: Node's 1e21, escaped characters, spaces a hand edit leaves.
node_spellings = st.sampled_from(['1e21', '"\\u00e9\\n"', '{"a" : [ 1 , 2 ]}', "-0.0", '"}{\\""'])
keys = st.text(min_size=1, max_size=8).filter(lambda key: key not in ("cookie",))


def value_texts() -> st.SearchStrategy[str]:
    return json_values.map(lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))) | node_spellings


@st.composite
def records(draw: st.DrawFn) -> bytes:
    expires = draw(st.none() | st.integers(BASE + 600_000, BASE + 10**9))
    cookie = {
        "originalMaxAge": None if expires is None else draw(st.integers(1, 10**9) | st.floats(1, 1e9)),
        "expires": None if expires is None else iso_from_ms(expires),
        "httpOnly": True,
        "path": draw(st.sampled_from(["/", "/a}b", '/q"x'])),
    }
    members = draw(st.dictionaries(keys, value_texts(), max_size=6))
    if draw(st.booleans()):
        members["_owner"] = json.dumps(draw(st.text(max_size=8)))
    body = "".join(f",{json.dumps(k, ensure_ascii=draw(st.booleans()))}:{v}" for k, v in members.items())
    return ('{"cookie":' + json.dumps(cookie, separators=(",", ":")) + body + "}").encode()


@st.composite
def changes(draw: st.DrawFn) -> Change:
    assign = tuple(draw(st.dictionaries(keys, value_texts(), max_size=4)).items())
    remove = frozenset(draw(st.sets(keys, max_size=3))) - {key for key, _ in assign}
    return Change('{"originalMaxAge":null,"expires":null}', assign, remove)


SLOW = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def test_the_merge_script_equals_the_python_merge(redis_url: str, key_prefix: str) -> None:
    store = RedisStore.from_url(redis_url, prefix=key_prefix)

    @SLOW
    @given(current=records(), change=changes())
    def check(current: bytes, change: Change) -> None:
        async def run() -> bytes | None:
            await store.write("m", current, now_ms() + 60_000)
            return await store.apply("m", change, now_ms() + 60_000)

        assert asyncio.run(run()) == merge_record(current, change)

    check()


def test_the_renewal_script_equals_the_python_renewal(redis_url: str, key_prefix: str) -> None:
    store = RedisStore.from_url(redis_url, prefix=key_prefix)

    @SLOW
    @given(current=records(), idle=st.integers(1_000, 10**8), anonymous=st.integers(1_000, 10**8))
    def check(current: bytes, idle: int, anonymous: int) -> None:
        async def run() -> tuple[bytes | None, int | None, int]:
            await store.write("r", current, now_ms() + 60_000)
            renewal = Renewal(now_ms(), idle, anonymous)
            renewed = await store.load("r", renewal)
            [deadline] = await store.deadlines(["r"])
            return renewed, deadline, renewal.now_ms

        renewed, deadline, at = asyncio.run(run())
        expected = renew_record(current, Renewal(at, idle, anonymous))
        assert expected is not None and expected[1] is not None
        assert renewed == expected[0]
        assert deadline is not None and abs(deadline - expected[1]) <= 5

    check()


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
