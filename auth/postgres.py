"""Auth's PostgreSQL: the connections its user store and counters share, and their tables.

Both run their statements through a ``Database``: the sessions' own when the sessions live in
PostgreSQL (``PostgresStore.connections``, one pool for everything), else one of auth's own made
by ``connect(url)``. Either bounds the wait for a connection and every statement, and raises
``StoreUnavailable`` for a server that cannot serve now; ``unavailable_as_503`` turns that, and
any other database error, into a 503.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import asyncpg

from sessions.stores.postgres_pool import Connections, pool_maker
from sessions.stores.postgres_sql import quote_identifier

__all__ = ["AuthTable", "Database", "connect", "table_name"]

T = TypeVar("T")

#: PostgreSQL cuts longer identifiers short (NAMEDATALEN - 1), which could make two tables one.
MAX_IDENTIFIER = 63


class Database(Protocol):
    """Runs a coroutine on a pooled connection (``sessions``' ``Connections`` is one)."""

    async def run(self, use: Callable[[asyncpg.Connection], Awaitable[T]]) -> T: ...


def connect(url: str, *, pool_size: int = 5, timeout: float = 2.0) -> Connections:
    """Auth's own pool on ``url`` (one per event loop): ``AUTH_DATABASE_URL``'s."""

    make_pool = pool_maker(
        url,
        size=pool_size,
        connect_timeout=timeout,
        statement_timeout=timeout,
        application_name="auth",
    )

    async def no_setup(connection: asyncpg.Connection) -> None:
        """Each store creates its own table (``AuthTable``)."""

    return Connections(make_pool, no_setup, acquire_timeout=timeout, statement_timeout=timeout)


def table_name(prefix: str, role: str) -> str:
    """The table of ``role`` under a key prefix: ``table_name("auth:", "users") == "auth_users"``.

    Every run of characters other than ASCII letters and digits becomes one ``_``, and the name
    is lower case, so ``"demo:auth:"`` gives ``demo_auth_users``.
    """
    stem = re.sub(r"[^0-9a-z]+", "_", prefix.lower()).lstrip("_")
    name = f"{stem}{role}" if not stem or stem.endswith("_") else f"{stem}_{role}"
    if len(name.encode()) > MAX_IDENTIFIER:
        raise ValueError(f"the table name {name!r} is longer than {MAX_IDENTIFIER} bytes")
    return name


class AuthTable:
    """One table of auth's, created (with its indexes) before its first use when missing.

    Creation checks first and creates only a missing table, so a database user without the
    CREATE privilege works on tables made beforehand.
    """

    def __init__(self, database: Database, name: str, create: Sequence[str]) -> None:
        self.database = database
        self.name = name
        self.sql_name = quote_identifier(name)
        self._create = [statement.format(table=self.sql_name) for statement in create]
        self._ready = False

    async def run(self, use: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """``use`` on a pooled connection, once the table exists."""
        if not self._ready:
            await self.database.run(self._create_missing)
            self._ready = True
        return await self.database.run(use)

    async def _create_missing(self, connection: asyncpg.Connection) -> None:
        async with connection.transaction():
            # Workers starting together: one creates, the others then find the table.
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('auth setup ' || $1::text, 0))",
                self.name,
            )
            if await connection.fetchval("SELECT to_regclass($1::text) IS NULL", self.sql_name):
                for statement in self._create:
                    await connection.execute(statement)
