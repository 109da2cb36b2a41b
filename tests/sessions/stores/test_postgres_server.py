"""PostgresStore against a private PostgreSQL: statements per request counted by the server
(pg_stat_statements), and the server stopped, hung and restarted under a running app."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from deploy.postgres_server import PostgresServer
from sessions import PostgresStore
from tests.sessions.conftest import Browser, make_app, sid_of


class StatementLog:
    """The statements that reach the server, as pg_stat_statements counts their executions."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def during(self, action: Callable[[], Awaitable[Any]]) -> list[str]:
        """Each statement run while `action` ran, once per execution."""
        await self.connection.execute("SELECT pg_stat_statements_reset()")
        await action()
        rows = await self.connection.fetch(
            "SELECT query, calls FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'"
        )
        return [query for query, calls in rows for _ in range(calls)]


@pytest.fixture
async def counted(
    private_postgres: PostgresServer,
) -> AsyncIterator[tuple[Browser, StatementLog, asyncpg.Connection]]:
    """An app on the private server (one pooled connection, so its statements stay prepared)."""
    admin = await asyncpg.connect(private_postgres.url)
    await admin.execute("CREATE EXTENSION pg_stat_statements")
    store = PostgresStore.from_url(private_postgres.url, pool_size=1, prune_interval=None)
    browser = Browser(make_app(store, cookie={"max_age": 3600}).test_client(use_cookies=False))
    await store.ping()  # the table exists before anything is counted
    yield browser, StatementLog(admin), admin
    await store.close()
    await admin.close()


async def test_a_cookieless_request_that_leaves_the_session_alone_costs_no_statement(
    counted: Any,
) -> None:
    browser, log, _ = counted
    assert await log.during(lambda: browser.get("/")) == []


async def test_a_new_session_with_data_costs_one_insert(counted: Any) -> None:
    browser, log, _ = counted
    statements = await log.during(lambda: browser.get("/count"))
    assert [s.split()[0] for s in statements] == ["INSERT"]


async def test_a_read_only_request_costs_one_statement_that_also_slides_the_expiry(
    counted: Any,
) -> None:
    browser, log, admin = counted
    await browser.get("/count")
    await browser.get("/read")  # prepares the renewal on the pool's connection
    sid = sid_of(browser.cookie or "")
    await admin.execute(  # as if the session had been idle for almost an hour
        "UPDATE session SET expire = now() + interval '100 seconds' WHERE sid = $1", sid
    )

    statements = await log.during(lambda: browser.get("/read"))

    assert len(statements) == 1, statements
    assert statements[0].startswith("UPDATE")
    left = await admin.fetchval(
        "SELECT extract(epoch FROM expire::timestamptz - now()) FROM session WHERE sid = $1", sid
    )
    assert 3590 <= left <= 3600


async def test_a_modified_session_costs_a_read_and_a_merge(counted: Any) -> None:
    browser, log, admin = counted
    await browser.get("/count")
    await browser.get("/count")  # prepares both statements

    statements = await log.during(lambda: browser.get("/count"))

    assert [s.split()[0] for s in statements] == ["UPDATE", "UPDATE"], statements
    stored = await admin.fetchval(
        "SELECT sess::text FROM session WHERE sid = $1", sid_of(browser.cookie or "")
    )
    assert '"views":3' in stored


async def test_a_hung_postgres_is_a_503_within_the_statement_timeout(
    private_postgres: PostgresServer,
) -> None:
    store = PostgresStore.from_url(
        private_postgres.url, connect_timeout=0.5, statement_timeout=0.5, prune_interval=None
    )
    app = make_app(store)
    browser = Browser(app.test_client(use_cookies=False))
    await browser.get("/count")
    frozen = private_postgres.processes()
    assert frozen, "the server is not running"
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        responses = await asyncio.gather(browser.get("/count"), browser.get("/read"))
        elapsed = time.monotonic() - started
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    assert [r.status_code for r in responses] == [503, 503]
    assert elapsed < 3  # bounded by the timeouts, not by the server waking up
    recovered = await browser.get("/count")
    assert recovered.status_code == 200
    await store.close()
