"""PostgresStore: sessions in PostgreSQL, in connect-pg-simple's table (`sid`, `sess` json, `expire`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from ..errors import StoreUnavailable
from ..expiry import Renewal, now_ms, renew_record
from ..record import Change, merge_record
from ..serialization import dump_json
from .base import TTL, Store
from .postgres_pool import Connections, pool_maker
from .postgres_sql import Statements

__all__ = ["PostgresStore"]

logger = logging.getLogger("sessions")
#: What a step the server leaves to Python gives: a record to write and its deadline, the record
#: as it stands (nothing to write), or None (gone).
Outcome = tuple[bytes, int | None] | bytes | None
# Compare-and-set rounds for the records the server leaves to Python (see postgres_sql).
_ATTEMPTS = 20


class PostgresStore(Store):
    """Sessions in PostgreSQL, sharing connect-pg-simple's table with express apps.

    ::

        store = PostgresStore.from_url("postgresql://app@127.0.0.1/app", schema="public")
        # or PostgresStore(pool) with an asyncpg pool of yours, used on the loop it belongs to,
        # or PostgresStore(make_pool), a coroutine function called for a pool per event loop

    A read that renews is one statement; a changed session one more (a merge into the current
    row on the server: parallel requests that change different keys all persist, and a
    destroyed or expired row is never written back). The owner index is a companion table,
    ``<table>_owner``. Expired rows are deleted in the background, in batches, by one instance at
    a time. A pool you pass is best made with ``reset=`` a no-op coroutine (asyncpg's default
    reset costs a round trip per use) and a ``statement_timeout`` server setting.
    """

    def __init__(
        self,
        pool: asyncpg.Pool | Callable[[], Awaitable[asyncpg.Pool]],
        *,
        table: str = "session",
        schema: str | None = None,
        ttl: TTL = 86400,
        disable_ttl: bool = False,
        disable_touch: bool = False,
        create_table: bool = True,
        prune_interval: float | None = 900,
        prune_batch: int = 1000,
        acquire_timeout: float = 2.0,
        statement_timeout: float = 2.0,
    ) -> None:
        super().__init__(ttl=ttl, disable_ttl=disable_ttl, disable_touch=disable_touch)
        self.sql = Statements(table, schema)
        self.create_table = create_table
        self.prune_interval = prune_interval
        self.prune_batch = prune_batch
        self.connections = Connections(
            pool,
            self._create_missing_tables,
            acquire_timeout=acquire_timeout,
            statement_timeout=statement_timeout,
        )
        self._pruners: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    @classmethod
    def from_url(
        cls, url: str, *, pool_size: int = 10, connect_timeout: float = 2.0, **options: Any
    ) -> PostgresStore:
        """A store with a pool of its own per event loop; `statement_timeout` bounds every statement."""
        connect = pool_maker(
            url,
            size=pool_size,
            connect_timeout=connect_timeout,
            statement_timeout=float(options.get("statement_timeout", 2.0)),
            application_name="sessions.PostgresStore",
        )
        return cls(connect, **options)

    async def _create_missing_tables(self, connection: asyncpg.Connection) -> None:
        """connect-pg-simple's table and the owner table, each created only when missing."""
        if not self.create_table:
            return
        async with connection.transaction():
            # One instance at a time, or two CREATEs of a missing table collide.
            await connection.execute(self.sql.setup_lock, self.sql.name)
            for name, statements in (
                (self.sql.name, self.sql.create_table),
                (self.sql.owners, self.sql.create_owners),
            ):
                if not await connection.fetchval(self.sql.exists, name):
                    for statement in statements:
                        await connection.execute(statement)

    async def _call(self, method: str, statement: str, *args: Any) -> Any:
        """One statement (see `Connections.call`); the first one of a loop starts its pruner."""
        loop = asyncio.get_running_loop()
        if self.prune_interval and loop not in self._pruners:
            self._pruners[loop] = loop.create_task(self._prune_forever(self.prune_interval))
        return await self.connections.call(method, statement, *args)

    # ------------------------------------------------------------------ primitives

    async def load(self, sid: str, renew: Renewal | None = None) -> bytes | None:
        if renew is None:
            found = await self._call("fetchval", self.sql.load, sid, now_ms())
            return None if found is None else str(found).encode()
        row = await self._call(
            "fetchrow", self.sql.renew, sid, renew.now_ms, renew.idle_ms, renew.anonymous_idle_ms
        )
        if row is None:
            return None
        text, head = str(row[0]), bool(row[1])
        if head:
            return text.encode()

        def renewed(raw: bytes) -> Outcome:
            try:
                result = renew_record(raw, renew)
            except (OverflowError, ValueError, OSError):  # an expiry no Date can hold: as it is
                return raw
            return raw if result is not None and result[0] == raw else result

        return await self._in_python(sid, text, renewed, renew.now_ms)

    async def _in_python(
        self, sid: str, text: str | None, step: Callable[[bytes], Outcome], now: int
    ) -> bytes | None:
        """What the server leaves to Python: `step` on the row's text, then a compare-and-set."""
        for _ in range(_ATTEMPTS):
            if (
                text is None
                and (text := await self._call("fetchval", self.sql.load, sid, now)) is None
            ):
                return None
            outcome = step(text.encode())
            if not isinstance(outcome, tuple):
                return outcome  # gone, or nothing to write
            new, deadline = outcome
            args = (sid, text, new.decode(), deadline, now)
            if await self._call("fetchval", self.sql.replace, *args) is not None:
                return new
            text = None  # another write came first: read it again
        raise StoreUnavailable("PostgreSQL: the record kept changing under a compare-and-set")

    async def load_many(self, sids: Sequence[str]) -> list[bytes | None]:
        if not sids:
            return []
        rows = await self._call("fetch", self.sql.load_many, list(sids), now_ms())
        found = {sid: sess.encode() for sid, sess in rows}
        return [found.get(sid) for sid in sids]

    async def write(self, sid: str, record: bytes, expires_ms: int | None) -> None:
        """Store a record; ValueError when it is not JSON (the `json` column holds nothing else)."""
        try:
            await self._call("fetchval", self.sql.write, sid, record.decode(), expires_ms)
        except asyncpg.DataError as error:
            raise ValueError(f"PostgreSQL refuses the session record: {error}") from error

    async def apply(self, sid: str, change: Change, expires_ms: int | None) -> bytes | None:
        assigned = dict(change.assign)
        merged = None
        if not any("\x00" in key for key in (*assigned, *change.remove)):  # SQL text holds none
            keys = list(assigned)
            merged = await self._call(
                "fetchval",
                self.sql.apply,
                sid,
                change.cookie,
                keys,
                [dump_json(key) for key in keys],
                list(assigned.values()),
                list(change.remove),
                expires_ms,
                now_ms(),
            )
        if merged is not None:
            return str(merged).encode()

        def merge(raw: bytes) -> Outcome:
            try:
                return merge_record(raw, change), expires_ms
            except ValueError:  # not a JSON object: nothing to merge into
                return None

        # Gone or expired (never written back), or a record the server leaves to Python.
        return await self._in_python(sid, None, merge, now_ms())

    async def renew(self, sid: str, renewal: Renewal) -> None:
        await self.load(sid, renewal)

    async def delete(self, *sids: str) -> None:
        if sids:
            await self._call("fetchval", self.sql.delete, list(sids))

    async def scan(self, batch: int = 500) -> AsyncIterator[list[str]]:
        after = ""
        while rows := await self._call("fetch", self.sql.scan, after, batch, now_ms()):
            page = [row[0] for row in rows]
            yield page
            after = page[-1]

    async def deadlines(self, sids: Sequence[str]) -> list[int | None]:
        if not sids:
            return []
        rows = await self._call("fetch", self.sql.deadlines, list(sids), now_ms())
        found: dict[str, int | None] = {}
        for sid, *ends in rows:  # the row's `expire` and its cookie's expiry
            known = [ms for ms in ends if ms is not None]
            found[sid] = min(known) if known else None
        return [found.get(sid) for sid in sids]

    async def purge_expired(self) -> int:
        """Delete expired rows in batches; 0 at once while another instance is pruning."""

        async def prune(connection: asyncpg.Connection) -> int:
            if not await connection.fetchval(self.sql.try_lock, self.sql.name):
                return 0

            async def drain(statement: str, *args: Any) -> int:
                total = 0
                while True:
                    count = int(await connection.fetchval(statement, self.prune_batch, *args))
                    total += count
                    if count < self.prune_batch:
                        return total

            try:
                deleted = await drain(self.sql.prune, now_ms())
                await drain(self.sql.prune_owners)
            except BaseException:
                connection.terminate()  # the server drops the lock with the connection
                raise
            await connection.fetchval(self.sql.unlock, self.sql.name)
            return deleted

        return await self.connections.run(prune)

    async def _prune_forever(self, interval: float) -> None:
        while True:
            # Spread the instances' attempts (connect-pg-simple's 50-150 %); the lock does the rest.
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))
            try:
                deleted = await self.purge_expired()
            except Exception as error:  # the next round may succeed: never stop pruning
                logger.warning("sessions: pruning expired sessions failed: %r", error)
            else:
                logger.debug("sessions: pruned %d expired sessions", deleted)

    async def index_add(self, owner: str, sid: str) -> None:
        await self._call("fetchval", self.sql.index_add, owner, sid)

    async def index_remove(self, owner: str, *sids: str) -> None:
        if sids:
            await self._call("fetchval", self.sql.index_remove, owner, list(sids))

    async def index_members(self, owner: str) -> list[str]:
        return [row[0] for row in await self._call("fetch", self.sql.index_members, owner)]

    async def ping(self) -> None:
        if not await self._call("fetchval", self.sql.ping):
            raise StoreUnavailable("PostgreSQL: the database is read-only")

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        pruner = self._pruners.pop(loop, None)
        if pruner is not None:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
        await self.connections.close()
