"""PostgresStore's connections: an asyncpg pool per event loop, and one vocabulary of failure.

Every statement goes through `Connections.call`: a bounded wait for a connection, a bounded
statement, and every error of a server that cannot serve now raised as `StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from ..errors import StoreUnavailable

__all__ = ["Connections", "no_reset", "pool_maker"]

T = TypeVar("T")

# SQLSTATE classes of a server that cannot serve us now: connection (08), refused credentials
# (28), a missing database (3D), resources such as a full disk or too many connections (53),
# operator intervention such as statement_timeout or a shutdown (57), system errors (58, XX);
# then a read-only server, lock and serialization failures.
_UNAVAILABLE_CLASSES = ("08", "28", "3D", "53", "57", "58", "XX")
_UNAVAILABLE_STATES = ("25006", "55P03", "40001", "40P01")
# A pooled connection the server dropped (a restart): the statement never ran, take another.
_DROPPED_STATES = ("08003", "08006", "57P01", "57P02")
# asyncpg's error for a connection the server ended while it sat in the pool (a shutdown's
# FATAL message read before the socket closed): "another operation is in progress".
_Broken = asyncpg.exceptions._base.InternalClientError


def _unavailable(error: Exception) -> bool:
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        return state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES
    return isinstance(error, OSError | TimeoutError | asyncpg.InterfaceError | _Broken)


def _dropped(error: Exception) -> bool:
    state = getattr(error, "sqlstate", None)
    return state in _DROPPED_STATES or isinstance(error, ConnectionError | _Broken)


async def no_reset(connection: asyncpg.Connection) -> None:
    """A pool's reset on release that does nothing (asyncpg's default costs a round trip per use)."""


def pool_maker(
    url: str,
    *,
    size: int,
    connect_timeout: float,
    statement_timeout: float,
    application_name: str,
) -> Callable[[], Awaitable[asyncpg.Pool]]:
    """What `Connections` calls to open a pool on `url`: connections made on demand, no reset on
    release, and every statement bounded by the server's statement_timeout."""

    async def make_pool() -> asyncpg.Pool:
        return await asyncpg.create_pool(
            url,
            min_size=0,
            max_size=size,
            timeout=connect_timeout,
            reset=no_reset,
            server_settings={
                "statement_timeout": str(int(statement_timeout * 1000)),
                "application_name": application_name,
            },
        )

    return make_pool


class Connections:
    """A pool you give (used as is, on its loop), or pools `pool()` makes, one per event loop.

    `setup` runs on a connection of each pool before its first use (PostgresStore creates its
    tables there).
    """

    def __init__(
        self,
        pool: asyncpg.Pool | Callable[[], Awaitable[asyncpg.Pool]],
        setup: Callable[[asyncpg.Connection], Awaitable[None]],
        *,
        acquire_timeout: float,
        statement_timeout: float,
    ) -> None:
        self._given = pool if isinstance(pool, asyncpg.Pool) else None
        self._connect = None if isinstance(pool, asyncpg.Pool) else pool
        self._setup = setup
        self.acquire_timeout = acquire_timeout
        self.statement_timeout = statement_timeout
        self._pools: dict[asyncio.AbstractEventLoop, asyncio.Task[asyncpg.Pool]] = {}

    async def _open(self) -> asyncpg.Pool:
        pool = self._given
        if pool is None:
            assert self._connect is not None
            pool = await self._connect()
        try:
            async with pool.acquire(timeout=self.acquire_timeout) as connection:
                await self._setup(connection)
        except BaseException:
            if self._given is None:
                pool.terminate()
            raise
        return pool

    async def pool(self) -> asyncpg.Pool:
        """This event loop's pool (asyncpg's belong to one loop), opened on first use."""
        loop = asyncio.get_running_loop()
        task = self._pools.get(loop)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            for closed in [other for other in self._pools if other.is_closed()]:
                del self._pools[closed]
            task = self._pools[loop] = loop.create_task(self._open())
        try:
            return await asyncio.shield(task)
        except Exception as error:
            if not _unavailable(error):
                raise
            raise StoreUnavailable(f"PostgreSQL: cannot connect: {error!r}") from error

    async def run(self, use: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`use` on a pooled connection; a connection the server dropped is replaced once."""
        pool = await self.pool()
        for attempt in (1, 2):
            try:
                connection = await pool.acquire(timeout=self.acquire_timeout)
            except Exception as error:
                if not _unavailable(error):
                    raise
                raise StoreUnavailable(f"PostgreSQL: no connection: {error!r}") from error
            try:
                return await use(connection)
            except (TimeoutError, asyncio.CancelledError):
                connection.terminate()  # its statement may still run: never reuse it
                raise
            except Exception as error:
                if isinstance(error, _Broken):
                    connection.terminate()
                if attempt == 1 and _dropped(error):
                    continue
                if _unavailable(error):
                    raise StoreUnavailable(f"PostgreSQL: {error!r}") from error
                raise
            finally:
                await pool.release(connection)
        raise AssertionError("unreachable")

    async def call(self, method: str, statement: str, *args: Any) -> Any:
        """One statement through `method` (fetchval, fetchrow, fetch), within statement_timeout."""
        timeout = self.statement_timeout + 0.5  # the server's statement_timeout fires first
        try:
            return await self.run(lambda c: getattr(c, method)(statement, *args, timeout=timeout))
        except TimeoutError as error:
            raise StoreUnavailable(f"PostgreSQL: no answer within {timeout}s") from error

    async def close(self) -> None:
        """Close this loop's pool, when it is one of ours."""
        task = self._pools.pop(asyncio.get_running_loop(), None)
        if task is not None and self._given is None:
            with contextlib.suppress(Exception):
                await (await task).close()
