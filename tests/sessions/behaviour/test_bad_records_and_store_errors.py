"""Corrupt records are a fresh session; an unreachable store is a 503 where the session is used."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from sessions import FileStore, PostgresStore, RedisStore, Store
from sessions.expiry import now_ms
from tests.sessions.behaviour.support import (
    browser,
    free_port,
    signed,
    warnings_from_sessions,
)
from tests.sessions.conftest import make_app, set_cookies


@pytest.mark.parametrize(
    "raw",
    [b'{"views": 5}', b"{not json", b"[1, 2]", b'{"cookie": "x", "views": 5}'],
    ids=["no-cookie", "corrupt-json", "not-an-object", "cookie-not-an-object"],
)
async def test_record_without_cookie_or_corrupt_json_is_a_fresh_session_with_a_warning(
    store: Store, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A record without a cookie object, or not JSON at all, gives a fresh session and a warning, not a 500."""
    sid = "brokenrecord000000000000000000000"
    try:
        await store.write(sid, raw, now_ms() + 60_000)
    except ValueError:  # PostgreSQL's json column holds JSON only: no such row can exist there
        assert isinstance(store, PostgresStore)
        return
    app = make_app(store)
    client = browser(app)
    client.cookie = signed(sid)
    with caplog.at_level(logging.WARNING, logger="sessions"):
        response = await client.get("/count")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["views"] == 1
    assert body["id"] != sid
    assert warnings_from_sessions(caplog)


@pytest.fixture(params=["file", "redis", "redis-multiplexed", "postgres"])
async def unreadable(
    request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str
) -> AsyncIterator[tuple[Store, str]]:
    """A store whose read of one session id fails: a file that is a folder, or Redis that is not there."""
    sid = "unreadablesession000000000000000"
    if request.param == "file":
        store = FileStore(tmp_path / "sessions")
        (store.path / f"{sid}.json").mkdir(parents=True)
        yield store, sid
    elif request.param == "postgres":
        nowhere = PostgresStore.from_url(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
        yield nowhere, sid
        await nowhere.close()
    elif request.param == "redis-multiplexed":
        nobody = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", prefix=key_prefix)
        yield nobody, sid
        await nobody.close()
    else:
        client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
        yield RedisStore(client, prefix=key_prefix), sid
        await client.aclose()


async def test_store_read_error_gives_503_not_500(
    unreadable: tuple[Store, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A failing store read: untouched pages still render; touching the session is a 503 with Retry-After."""
    store, sid = unreadable
    app = make_app(store)
    client = browser(app)
    client.cookie = signed(sid)
    with caplog.at_level(logging.WARNING, logger="sessions"):
        page = await client.get("/")
        assert page.status_code == 200
        assert await page.get_data() == b"hello"
        failed = await client.get("/count")
    assert failed.status_code == 503
    assert failed.headers.get("Retry-After")
    assert set_cookies(failed) == []
    assert warnings_from_sessions(caplog)


@pytest.fixture(params=["file", "redis", "redis-multiplexed", "postgres"])
async def unwritable(
    request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str
) -> AsyncIterator[Store]:
    """A store whose writes fail: its folder is a file, or Redis is not there."""
    if request.param == "file":
        store = FileStore(tmp_path / "sessions")
        store.path.write_text("not a folder")
        yield store
    elif request.param == "postgres":
        nowhere = PostgresStore.from_url(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
        yield nowhere
        await nowhere.close()
    elif request.param == "redis-multiplexed":
        nobody = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", prefix=key_prefix)
        yield nobody
        await nobody.close()
    else:
        client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
        yield RedisStore(client, prefix=key_prefix)
        await client.aclose()


async def test_store_write_error_at_the_end_gives_503_and_no_cookie(
    unwritable: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing end-of-request write is a logged 503 with Retry-After, and no cookie for unsaved data."""
    app = make_app(unwritable)
    with caplog.at_level(logging.WARNING, logger="sessions"):
        response = await app.test_client(use_cookies=False).get("/count")
    assert response.status_code == 503
    assert response.headers.get("Retry-After")
    assert set_cookies(response) == []
    assert warnings_from_sessions(caplog)
