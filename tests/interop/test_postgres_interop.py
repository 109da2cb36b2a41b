"""express-session + connect-pg-simple (Node) and our Quart sessions on PostgresStore share one
secret, one table and one browser cookie: each side reads, continues and destroys the other's
sessions, and each writes the rows the other expects."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from sessions import PostgresStore

from .conftest import Browser, NodeSide, QuartSide, StartNode, build_quart_app
from .test_express_interop import COOKIE_CONFIGS, EXPRESS_COOKIE_FIELDS, JS_ISO_DATE, LIFETIMES, ms

SECRET = "interop test secret"
DAY_S = 86400  # connect-pg-simple's default ttl, for a cookie without expires


class SharedTable:
    """connect-pg-simple's table "session" in a schema of its own (both sides' schema option),
    and both apps on it."""

    def __init__(self, url: str, schema: str, start_node: StartNode, stack: AsyncExitStack) -> None:
        self.url, self.schema, self.table = url, schema, f'"{schema}".session'
        self._start_node, self._stack = start_node, stack

    def node(self, max_age: int | None = None, name: str = "connect.sid") -> NodeSide:
        return self._start_node(
            [SECRET], ms(max_age), name, STORE="postgres", DATABASE_URL=self.url, SCHEMA=self.schema
        )

    async def quart(self, max_age: int | None = None, name: str = "connect.sid") -> QuartSide:
        store = PostgresStore.from_url(self.url, schema=self.schema, prune_interval=None)
        self._stack.push_async_callback(store.close)
        app = build_quart_app(store, [SECRET], max_age, name)
        await self._stack.enter_async_context(app.test_app())
        return QuartSide(app)

    async def row(self, sid: str) -> tuple[dict[str, Any], datetime] | None:
        """The row's record and its `expire` (as UTC)."""
        connection = await asyncpg.connect(self.url)
        try:
            found = await connection.fetchrow(
                f"SELECT sess::text, expire::timestamptz FROM {self.table} WHERE sid = $1", sid
            )
        finally:
            await connection.close()
        return None if found is None else (json.loads(found[0]), found[1])

    async def set_expire(self, sid: str, seconds: int) -> None:
        connection = await asyncpg.connect(self.url)
        try:
            await connection.execute(
                f"UPDATE {self.table} SET expire = now() + $2 * interval '1 second' WHERE sid = $1",
                sid,
                seconds,
            )
        finally:
            await connection.close()


@pytest.fixture
async def shared(
    postgres_database: str,
    start_node: StartNode,
) -> AsyncIterator[SharedTable]:
    schema = f"interop_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(postgres_database)
    await connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        async with AsyncExitStack() as stack:
            yield SharedTable(postgres_database, schema, start_node, stack)
    finally:
        await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await connection.close()


def close_to(moment: datetime, expected: datetime, slack: float = 2.0) -> bool:
    return abs((moment - expected).total_seconds()) <= slack


@pytest.mark.parametrize(("max_age", "name"), COOKIE_CONFIGS)
async def test_a_session_started_on_node_continues_on_quart_and_back_on_node(
    shared: SharedTable, max_age: int | None, name: str
) -> None:
    node = shared.node(max_age, name)  # connect-pg-simple creates the table (createTableIfMissing)
    quart = await shared.quart(max_age, name)
    browser = Browser(name)

    sid = (await browser.visit(node, "GET", "/count")).body["id"]
    assert (await browser.visit(node, "GET", "/count")).body == {"id": sid, "views": 2}
    assert (await browser.visit(quart, "GET", "/count")).body == {"id": sid, "views": 3}
    assert (await browser.visit(node, "GET", "/count")).body == {"id": sid, "views": 4}
    assert (await browser.visit(quart, "GET", "/read")).body == {"id": sid, "data": {"views": 4}}
    found = await shared.row(sid)
    assert found is not None and found[0]["views"] == 4


@pytest.mark.parametrize(("max_age", "name"), COOKIE_CONFIGS)
async def test_a_session_started_on_quart_is_read_and_continued_by_node(
    shared: SharedTable, max_age: int | None, name: str
) -> None:
    quart = await shared.quart(max_age, name)
    browser = Browser(name)
    sid = (await browser.visit(quart, "GET", "/count")).body["id"]  # PostgresStore creates it
    node = shared.node(max_age, name)

    assert (await browser.visit(node, "GET", "/read")).body == {"id": sid, "data": {"views": 1}}
    assert (await browser.visit(node, "GET", "/count")).body == {"id": sid, "views": 2}
    assert (await browser.visit(quart, "POST", "/set?key=cart&value=%7B%22n%22%3A1e21%7D")).body[
        "data"
    ] == {"views": 2, "cart": {"n": 1e21}}
    assert (await browser.visit(node, "GET", "/read")).body["data"] == {
        "views": 2,
        "cart": {"n": 1e21},
    }
    assert (await browser.visit(node, "GET", "/count")).body == {"id": sid, "views": 3}
    assert (await browser.visit(quart, "GET", "/read")).body["data"] == {
        "views": 3,
        "cart": {"n": 1e21},
    }


@pytest.mark.parametrize("max_age", LIFETIMES)
async def test_quart_writes_the_rows_connect_pg_simple_writes(
    shared: SharedTable, max_age: int | None
) -> None:
    node = shared.node(max_age)
    quart = await shared.quart(max_age)

    node_sid = (await Browser("connect.sid").visit(node, "GET", "/count")).body["id"]
    before = datetime.now(UTC)
    quart_sid = (await Browser("connect.sid").visit(quart, "GET", "/count")).body["id"]
    after = datetime.now(UTC)
    node_row, quart_row = await shared.row(node_sid), await shared.row(quart_sid)
    assert node_row is not None and quart_row is not None
    (node_record, node_expire), (record, expire) = node_row, quart_row

    assert set(record) == set(node_record) == {"cookie", "views"}
    cookie = record["cookie"]
    assert set(cookie) <= EXPRESS_COOKIE_FIELDS, f"fields express does not write: {cookie}"
    assert (cookie["httpOnly"], cookie["path"]) == (True, "/")
    lifetime = timedelta(seconds=DAY_S if max_age is None else max_age)
    # connect-pg-simple: `expire` is the cookie's expiry (whole seconds, rounded up), else
    # now + ttl; ours is the same moment to the millisecond.
    assert close_to(node_expire, before + lifetime)
    assert before + lifetime - timedelta(seconds=1) <= expire <= after + lifetime
    if max_age is None:
        assert cookie["expires"] is None and node_record["cookie"]["expires"] is None
    else:
        assert JS_ISO_DATE.fullmatch(cookie["expires"]), cookie["expires"]
        assert expire == datetime.fromisoformat(cookie["expires"])
        node_expires = datetime.fromisoformat(node_record["cookie"]["expires"]).timestamp()
        assert node_expire == datetime.fromtimestamp(math.ceil(node_expires), UTC)


@pytest.mark.parametrize("max_age", LIFETIMES)
async def test_a_read_on_either_side_moves_expire_by_the_same_rule(
    shared: SharedTable, max_age: int | None
) -> None:
    node = shared.node(max_age)
    quart = await shared.quart(max_age)
    lifetime = timedelta(seconds=DAY_S if max_age is None else max_age)
    for writer, toucher in ((node, quart), (quart, node), (quart, quart), (node, node)):
        where = f"written by {writer.label}, touched by {toucher.label}"
        browser = Browser("connect.sid")
        sid = (await browser.visit(writer, "GET", "/count")).body["id"]
        await shared.set_expire(sid, 100)  # as if idle for almost the whole lifetime
        assert (await browser.visit(toucher, "GET", "/read")).body["data"] == {"views": 1}, where
        found = await shared.row(sid)
        assert found is not None, where
        assert close_to(found[1], datetime.now(UTC) + lifetime), where


async def test_a_session_destroyed_on_one_side_is_gone_for_the_other(shared: SharedTable) -> None:
    node = shared.node(3600)
    quart = await shared.quart(3600)
    sides: list[tuple[Any, Any]] = [(node, quart), (quart, node)]
    for starter, destroyer in sides:
        browser = Browser("connect.sid")
        sid = (await browser.visit(starter, "GET", "/count")).body["id"]
        stale = browser.header()
        assert (await browser.visit(destroyer, "POST", "/destroy")).body == {"destroyed": sid}
        assert await shared.row(sid) is None
        for side in (node, quart):
            read = await side.send("GET", "/read", stale)
            assert read.body["id"] != sid and read.body["data"] == {}
        assert await shared.row(sid) is None


async def test_an_owned_session_keeps_its_owner_through_node_and_signs_out_everywhere(
    shared: SharedTable,
) -> None:
    node = shared.node(3600)
    quart = await shared.quart(3600)
    laptop, phone = Browser("connect.sid"), Browser("connect.sid")

    laptop_sid = (await laptop.visit(quart, "POST", "/own?owner=user:7")).body["id"]
    # Node rewrites the whole record when it saves; the owner must survive that.
    assert (await laptop.visit(node, "GET", "/count")).body == {"id": laptop_sid, "views": 1}

    def owned(browser: Browser) -> Awaitable[Any]:
        return browser.visit(quart, "GET", "/owned?owner=user:7")

    assert (await owned(laptop)).body["sessions"] == {laptop_sid: {"views": 1}}

    phone_sid = (await phone.visit(quart, "POST", "/own?owner=user:7")).body["id"]
    assert (await phone.visit(quart, "POST", "/sign-out-others")).body == {"signed_out": 1}
    after = await laptop.visit(node, "GET", "/read")
    assert after.body["id"] != laptop_sid and after.body["data"] == {}
    assert list((await owned(phone)).body["sessions"]) == [phone_sid]
