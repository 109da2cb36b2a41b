"""PostgresStore: sessions in PostgreSQL, on connect-pg-simple's table (`sid`, `sess` json, `expire`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from ..errors import StoreUnavailable
from .contract import Change, Renewal, merge_record
from .postgres_sql import Statements, json_now

__all__ = ["PostgresStore"]

T = TypeVar("T")
log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# SQLSTATE classes of a server that cannot serve us now: connection (08), resources such as a
# full disk or too many connections (53), operator intervention such as statement_timeout or a
# shutdown (57), system and internal errors (58, XX); a read-only server; lock and
# serialization failures.
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58", "XX")
_UNAVAILABLE_STATES = ("25006", "55P03", "40001", "40P01")


def _unavailable(error: BaseException) -> bool:
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        return state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES
    return isinstance(error, OSError | TimeoutError | asyncpg.InterfaceError)


async def _keep_session_state(connection: asyncpg.Connection) -> None:
    """The pool's reset on release: none (asyncpg's default costs a round trip per use)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class PostgresStore:
    """Sessions in PostgreSQL, sharing connect-pg-simple's table with express apps.

    ::

        store = PostgresStore.from_url("postgresql://app@127.0.0.1/app", schema="public")

    A read that renews is one statement; a changed session, two (that read, then a merge into
    the current row on the server: parallel requests that change different keys all persist,
    and a destroyed or expired row is never written back). Expired rows are deleted in the
    background in batches, by one instance at a time. An asyncpg pool you pass yourself is
    best made with ``reset=`` a no-op coroutine: asyncpg's default reset is a round trip.
    """

    def __init__(
        self,
        pool: asyncpg.Pool | None,
        *,
        table: str = "session",
        schema: str | None = None,
        ttl: int = 86400,
        create_table: bool = True,
        prune_interval: float | None = 900,
        prune_batch: int = 1000,
        acquire_timeout: float = 2.0,
        statement_timeout: float = 2.0,
        connect: Callable[[], Awaitable[asyncpg.Pool]] | None = None,
    ) -> None:
        if pool is None and connect is None:
            raise ValueError("PostgresStore needs an asyncpg pool (or use PostgresStore.from_url)")
        self.sql = Statements(table, schema)
        self.ttl = ttl
        self.create_table = create_table
        self.prune_interval = prune_interval
        self.prune_batch = prune_batch
        self.acquire_timeout = acquire_timeout
        self.statement_timeout = statement_timeout
        self._given = pool
        self._connect = connect
        self._pools: dict[asyncio.AbstractEventLoop, asyncio.Task[asyncpg.Pool]] = {}
        self._pruners: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    @classmethod
    def from_url(
        cls, url: str, *, pool_size: int = 10, connect_timeout: float = 2.0, **options: Any
    ) -> PostgresStore:
        """A store with its own pool per event loop; `statement_timeout` bounds every statement."""
        statement_timeout = float(options.get("statement_timeout", 2.0))

        async def connect() -> asyncpg.Pool:
            return await asyncpg.create_pool(
                url,
                min_size=0,
                max_size=pool_size,
                timeout=connect_timeout,
                reset=_keep_session_state,
                server_settings={
                    "statement_timeout": str(int(statement_timeout * 1000)),
                    "application_name": "sessions.PostgresStore",
                },
            )

        return cls(None, connect=connect, **options)

    async def _ready(self, pool: asyncpg.Pool) -> asyncpg.Pool:
        """The pool, once the table and the owner index exist (created when missing)."""
        if self.create_table:
            async with pool.acquire(timeout=self.acquire_timeout) as connection:
                # One instance at a time: concurrent CREATE ... IF NOT EXISTS can collide.
                await connection.execute(self.sql.setup_lock, self.sql.name)
                try:
                    for statement in self.sql.create_table:
                        await connection.execute(statement)
                    await connection.execute(self.sql.create_owner_index)
                finally:
                    await connection.execute(self.sql.setup_unlock, self.sql.name)
        return pool

    async def _open(self) -> asyncpg.Pool:
        if self._given is not None:
            return await self._ready(self._given)
        assert self._connect is not None
        pool = await self._connect()
        try:
            return await self._ready(pool)
        except BaseException:
            pool.terminate()
            raise

    async def _pool(self) -> asyncpg.Pool:
        """This event loop's pool (asyncpg's are bound to one loop), opened on first use."""
        loop = asyncio.get_running_loop()
        task = self._pools.get(loop)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            for other in [other for other in self._pools if other.is_closed()]:
                del self._pools[other]
            task = self._pools[loop] = loop.create_task(self._open())
        try:
            pool = await asyncio.shield(task)
        except Exception as error:
            raise StoreUnavailable(f"PostgreSQL: cannot connect: {error!r}") from error
        if self.prune_interval and loop not in self._pruners:
            self._pruners[loop] = loop.create_task(self._prune_forever(self.prune_interval))
        return pool

    async def _run(self, use: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """One statement on a pooled connection; a connection lost before it ran is retried once."""
        pool = await self._pool()
        for attempt in (1, 2):
            try:
                connection = await pool.acquire(timeout=self.acquire_timeout)
            except Exception as error:
                raise StoreUnavailable(f"PostgreSQL: no connection: {error!r}") from error
            try:
                return await use(connection)
            except BaseException as error:
                if isinstance(error, TimeoutError | asyncio.CancelledError):
                    connection.terminate()  # its statement may still run: never reuse it
                if not isinstance(error, Exception):
                    raise
                if attempt == 1 and isinstance(error, asyncpg.ConnectionDoesNotExistError):
                    continue  # the server closed it (a restart) before we noticed
                if _unavailable(error):
                    raise StoreUnavailable(f"PostgreSQL: {error!r}") from error
                raise
            finally:
                await pool.release(connection)
        raise AssertionError("unreachable")

    def _value(self, statement: str, *args: Any) -> Awaitable[Any]:
        timeout = self.statement_timeout + 1.0  # the server's statement_timeout fires first
        return self._run(lambda c: c.fetchval(statement, *args, timeout=timeout))

    def _rows(self, statement: str, *args: Any) -> Awaitable[list[asyncpg.Record]]:
        timeout = self.statement_timeout + 1.0
        return self._run(lambda c: c.fetch(statement, *args, timeout=timeout))

    # The contract's primitives.

    async def load(self, sid: str, renew: Renewal | None = None) -> bytes | None:
        if renew is None:
            now = _now_ms()
            found = await self._value(self.sql.load, sid, now, json_now(now))
        else:
            now = renew.now_ms
            found = await self._value(
                self.sql.load_renew, sid, now, json_now(now), renew.idle_ms, renew.anonymous_idle_ms
            )
        return None if found is None else found.encode()

    async def load_many(self, sids: Sequence[str]) -> list[bytes | None]:
        if not sids:
            return []
        now = _now_ms()
        rows = await self._rows(self.sql.load_many, list(sids), now, json_now(now))
        found = {sid: sess.encode() for sid, sess in rows}
        return [found.get(sid) for sid in sids]

    async def write(self, sid: str, record: bytes, expires_ms: int | None) -> None:
        await self._value(self.sql.write, sid, record.decode(), expires_ms)

    async def apply(self, sid: str, change: Change, expires_ms: int | None) -> bytes | None:
        now = _now_ms()
        keys = [key for key, _ in change.assign]
        values = [value for _, value in change.assign]
        removed = sorted(change.remove)
        stored = await self._value(
            self.sql.apply, sid, change.cookie, keys, values, removed, expires_ms, now, json_now(now)
        )
        if stored is None:  # gone, expired, or a record the server cannot merge
            return await self._apply_in_python(sid, change, expires_ms)
        return stored.encode()

    async def _apply_in_python(
        self, sid: str, change: Change, expires_ms: int | None
    ) -> bytes | None:
        """The merge of a record holding a \\u0000 escape: a compare-and-set on its text."""
        for _ in range(20):
            now = _now_ms()
            current = await self._value(self.sql.load_unmergeable, sid, now, json_now(now))
            if current is None:
                return None
            merged = merge_record(current.encode(), change).decode()
            stored = await self._value(self.sql.replace, sid, current, merged, expires_ms)
            if stored is not None:
                return stored.encode()
        raise StoreUnavailable("PostgreSQL: the record kept changing under a merge")

    async def renew(self, sid: str, renewal: Renewal) -> None:
        now = renewal.now_ms
        await self._value(
            self.sql.renew, sid, now, json_now(now), renewal.idle_ms, renewal.anonymous_idle_ms
        )

    async def delete(self, *sids: str) -> None:
        if sids:
            await self._value(self.sql.delete, list(sids))

    async def scan(self, batch: int = 500) -> AsyncIterator[list[str]]:
        after = ""
        while True:
            now = _now_ms()
            rows = await self._rows(self.sql.scan, after, batch, now, json_now(now))
            if not rows:
                return
            page = [row[0] for row in rows]
            yield page
            after = page[-1]

    async def deadlines(self, sids: Sequence[str]) -> list[int | None]:
        if not sids:
            return []
        now = _now_ms()
        rows = await self._rows(self.sql.deadlines, list(sids), now, json_now(now))
        found: dict[str, int | None] = {}
        for sid, expires, expire_ms in rows:
            cookie_ms = _ms_of_json_iso(expires)
            found[sid] = cookie_ms if cookie_ms is not None else expire_ms
        return [found.get(sid) for sid in sids]

    async def purge_expired(self) -> int:
        """Delete expired rows in batches; 0 at once when another instance is pruning."""

        async def prune(connection: asyncpg.Connection) -> int:
            if not await connection.fetchval(self.sql.try_lock, self.sql.name):
                return 0
            deleted = 0
            try:
                while True:
                    status = await connection.execute(self.sql.prune, _now_ms(), self.prune_batch)
                    count = int(status.rsplit(" ", 1)[1])
                    deleted += count
                    if count < self.prune_batch:
                        return deleted
            except BaseException:
                connection.terminate()  # the server drops the lock with the connection
                raise
            finally:
                if not connection.is_closed():
                    await connection.fetchval(self.sql.unlock, self.sql.name)

        return await self._run(prune)

    async def _prune_forever(self, interval: float) -> None:
        while True:
            # Spread the instances' attempts (connect-pg-simple's 50-150 %); the lock does the rest.
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))
            try:
                deleted = await self.purge_expired()
            except StoreUnavailable as error:
                log.warning("pruning expired sessions failed: %s", error)
            else:
                log.debug("pruned %d expired sessions", deleted)

    async def index_add(self, owner: str, sid: str) -> None:
        """Nothing to do: the expression index follows the record's "_owner" key."""

    async def index_remove(self, owner: str, *sids: str) -> None:
        """Nothing to do: the expression index follows the record's "_owner" key."""

    async def index_members(self, owner: str) -> list[str]:
        rows = await self._rows(self.sql.owned, owner)
        return sorted(row[0] for row in rows)

    async def ping(self) -> None:
        if not await self._value(self.sql.ping):
            raise StoreUnavailable("PostgreSQL: the server is read-only")

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        pruner = self._pruners.pop(loop, None)
        if pruner is not None:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
        task = self._pools.pop(loop, None)
        if task is not None and self._given is None:
            with contextlib.suppress(Exception):
                await (await task).close()


def _ms_of_json_iso(text: str | None) -> int | None:
    """Epoch ms of a JSON ISO string such as ``"2026-11-29T13:53:21.123Z"`` (else None)."""
    if text is None or len(text) != 26 or not text.startswith('"'):
        return None
    try:
        moment = datetime.strptime(text[1:-1], "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None
    return (moment - _EPOCH) // timedelta(milliseconds=1)
