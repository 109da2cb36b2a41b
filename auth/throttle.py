"""Failed-login throttling with fixed-window counters in Redis, PostgreSQL, a file, or memory."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import math
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

import asyncpg
from redis.asyncio import Redis

from .errors import Throttled, unavailable_as_503
from .postgres import AuthTable, Database
from .users import username_key

__all__ = [
    "Counters",
    "FileCounters",
    "MemoryCounters",
    "PostgresCounters",
    "RedisCounters",
    "Throttle",
]

T = TypeVar("T")
Limits = Sequence[tuple[str, int]]
# key -> [count, expiry as a wall-clock timestamp]
Table = dict[str, list[float]]


class Counters(ABC):
    """Fixed-window counters: the contract behind ``Throttle``."""

    @abstractmethod
    async def acquire(self, limits: Limits, window: float) -> float:
        """Seconds to wait if any key is at its limit; else count one on every key and return 0."""

    @abstractmethod
    async def release(self, key: str) -> None:
        """Take back one count from ``key``."""

    @abstractmethod
    async def reset(self, key: str) -> None:
        """Forget ``key``."""


def _acquire(table: Table, limits: Limits, window: float, now: float) -> float:
    """The counting rule shared by the memory and file counters (Redis runs it in Lua)."""
    for key, _ in limits:
        entry = table.get(key)
        if entry is not None and entry[1] <= now:
            del table[key]
    wait = max(
        (table[key][1] - now for key, limit in limits if key in table and table[key][0] >= limit),
        default=0.0,
    )
    if wait > 0:
        return wait
    for key, _ in limits:
        entry = table.setdefault(key, [0, now + window])
        entry[0] += 1
    return 0.0


def _release(table: Table, key: str) -> None:
    entry = table.get(key)
    if entry is not None:
        entry[0] -= 1
        if entry[0] <= 0:
            del table[key]


class MemoryCounters(Counters):
    """Counters in this process only (one worker, or tests)."""

    def __init__(self) -> None:
        self.table: Table = {}

    async def acquire(self, limits: Limits, window: float) -> float:
        now = time.time()
        if len(self.table) > 10_000:
            self.table = {k: v for k, v in self.table.items() if v[1] > now}
        return _acquire(self.table, limits, window, now)

    async def release(self, key: str) -> None:
        _release(self.table, key)

    async def reset(self, key: str) -> None:
        self.table.pop(key, None)


class FileCounters(Counters):
    """Counters in a JSON file, locked with flock, shared by every worker on the machine.

    Example::

        counters = FileCounters(Path(app.instance_path) / "throttle.json")
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    async def acquire(self, limits: Limits, window: float) -> float:
        return await self._change(lambda table: _acquire(table, limits, window, time.time()))

    async def release(self, key: str) -> None:
        await self._change(lambda table: _release(table, key))

    async def reset(self, key: str) -> None:
        await self._change(lambda table: table.pop(key, None))

    async def _change(self, change: Callable[[Table], T]) -> T:
        with unavailable_as_503("the throttle file"):
            return await asyncio.to_thread(self._change_sync, change)

    def _change_sync(self, change: Callable[[Table], T]) -> T:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                table = self._load()
                result = change(table)
                now = time.time()
                self._store({k: v for k, v in table.items() if v[1] > now})
                return result
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> Table:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError:
            return {}  # a torn file only forgets counts; rename makes that unlikely
        return {str(k): [float(v[0]), float(v[1])] for k, v in data.items()}

    def _store(self, table: Table) -> None:
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(table, handle)
            os.replace(tmp, self.path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


# KEYS: counters; ARGV[1]: window in ms; ARGV[2..]: the limit of each key.
_ACQUIRE = """
local window = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, window)
      ttl = window
    end
    if ttl > wait then wait = ttl end
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, window) end
end
return 0
"""

_RELEASE = """
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('DECR', KEYS[1]) <= 0 then
  redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisCounters(Counters):
    """Counters in Redis (check and count in one Lua call), shared by every worker and host.

    Example::

        counters = RedisCounters(store.client, prefix="auth:throttle:")
    """

    def __init__(self, client: Redis, *, prefix: str = "auth:throttle:") -> None:
        self.client = client
        self.prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    async def acquire(self, limits: Limits, window: float) -> float:
        keys = [self.prefix + key for key, _ in limits]
        args = [math.ceil(window * 1000), *(limit for _, limit in limits)]
        with unavailable_as_503("the throttle counters"):
            wait_ms = await self._acquire(keys=keys, args=args)
        return int(wait_ms) / 1000

    async def release(self, key: str) -> None:
        with unavailable_as_503("the throttle counters"):
            await self._release(keys=[self.prefix + key])

    async def reset(self, key: str) -> None:
        with unavailable_as_503("the throttle counters"):
            await self.client.delete(self.prefix + key)


_COUNTERS_TABLE = (
    "CREATE TABLE {table} (key text PRIMARY KEY, count integer NOT NULL,"
    " expires timestamptz NOT NULL)",
    "CREATE INDEX ON {table} (expires)",
)


class PostgresCounters(Counters):
    """Counters in a PostgreSQL table (``auth_throttle`` by default), created when missing.

    The database's clock times the windows, so every worker and host agrees. An acquire locks
    its rows (in key order: two acquires never wait on each other in a cycle), checks and counts
    in one transaction. A row whose window ended, or whose count went back to 0, counts as
    absent; such rows are deleted in batches by an acquire every ``prune_interval`` seconds.
    Example::

        counters = PostgresCounters(sessions_store.connections, table="auth_throttle")
    """

    def __init__(
        self,
        database: Database,
        *,
        table: str = "auth_throttle",
        prune_interval: float = 60.0,
        prune_batch: int = 1000,
    ) -> None:
        self.table = AuthTable(database, table, _COUNTERS_TABLE)
        self.prune_interval = prune_interval
        self.prune_batch = prune_batch
        self._next_prune = 0.0
        t = self.table.sql_name
        # $1 keys (sorted), $2 the window in ms. Locks each row; restarts an ended window.
        self._lock = (
            f"INSERT INTO {t} AS c (key, count, expires)"
            " SELECT k, 0, now() + $2::bigint * interval '1 millisecond'"
            " FROM unnest($1::text[]) AS k ORDER BY k"
            " ON CONFLICT (key) DO UPDATE SET"
            " count = CASE WHEN c.expires <= now() OR c.count <= 0 THEN 0 ELSE c.count END,"
            " expires = CASE WHEN c.expires <= now() OR c.count <= 0"
            " THEN excluded.expires ELSE c.expires END"
            " RETURNING key, count, extract(epoch FROM expires - now())::float8 AS remaining"
        )
        self._count = f"UPDATE {t} SET count = count + 1 WHERE key = ANY ($1::text[])"
        self._release = (
            f"UPDATE {t} SET count = count - 1 WHERE key = $1 AND count > 0 AND expires > now()"
        )
        self._reset = f"DELETE FROM {t} WHERE key = $1"
        self._prune = (
            f"DELETE FROM {t} WHERE key IN (SELECT key FROM {t}"
            " WHERE expires <= now() OR count <= 0 LIMIT $1 FOR UPDATE SKIP LOCKED)"
        )

    async def acquire(self, limits: Limits, window: float) -> float:
        wanted: dict[str, int] = {}
        for key, limit in limits:
            wanted[key] = min(limit, wanted.get(key, limit))
        keys = sorted(wanted)
        window_ms = math.ceil(window * 1000)

        async def check_and_count(connection: asyncpg.Connection) -> float:
            async with connection.transaction():
                rows = await connection.fetch(self._lock, keys, window_ms)
                wait = max(
                    (row["remaining"] for row in rows if row["count"] >= wanted[row["key"]]),
                    default=0.0,
                )
                if wait > 0:
                    return float(wait)
                await connection.execute(self._count, keys)
                return 0.0

        with unavailable_as_503("the throttle counters"):
            wait = await self.table.run(check_and_count)
            await self._prune_now_and_then()
        return wait

    async def release(self, key: str) -> None:
        with unavailable_as_503("the throttle counters"):
            await self.table.run(lambda c: c.execute(self._release, key))

    async def reset(self, key: str) -> None:
        with unavailable_as_503("the throttle counters"):
            await self.table.run(lambda c: c.execute(self._reset, key))

    async def _prune_now_and_then(self) -> None:
        """Delete the rows that count as absent, a batch at a time, every prune_interval."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + self.prune_interval
        while True:
            status = await self.table.run(lambda c: c.execute(self._prune, self.prune_batch))
            if int(status.rsplit(" ", 1)[-1]) < self.prune_batch:
                return


class Throttle:
    """The sign-in and registration limits of one client address.

    Only attempts that fail count: ``begin_login`` counts an attempt before the password is
    checked (so concurrent guesses cannot slip past the limit) and ``login_succeeded`` takes it
    back.  Example::

        await throttle.begin_login("ann", "203.0.113.9")   # raises Throttled (429) when over
        ...
        await throttle.login_succeeded("ann", "203.0.113.9")
    """

    def __init__(
        self,
        counters: Counters,
        *,
        per_user: int = 5,
        per_address: int = 50,
        window: float = 15 * 60,
        registrations: int = 20,
        registration_window: float = 60 * 60,
    ) -> None:
        if min(per_user, per_address, registrations) < 1 or min(window, registration_window) <= 0:
            raise ValueError("throttle limits and windows must be positive")
        self.counters = counters
        self.per_user = per_user
        self.per_address = per_address
        self.window = window
        self.registrations = registrations
        self.registration_window = registration_window

    async def begin_login(self, username: str, address: str | None) -> None:
        """Count a sign-in attempt, or raise ``Throttled`` if this client is over a limit."""
        user_key, address_key = self._login_keys(username, address)
        wait = await self.counters.acquire(
            [(user_key, self.per_user), (address_key, self.per_address)], self.window
        )
        if wait > 0:
            raise Throttled(math.ceil(wait))

    async def login_succeeded(self, username: str, address: str | None) -> None:
        """A correct password: forget this username's failures and uncount the attempt."""
        user_key, address_key = self._login_keys(username, address)
        await self.counters.reset(user_key)
        await self.counters.release(address_key)

    async def begin_registration(self, address: str | None) -> None:
        """Count a registration attempt, or raise ``Throttled``.

        Every attempt that gets as far as asking whether the name is free counts, taken or not:
        otherwise the form would answer "taken" for any number of names (a username oracle),
        and each accepted one costs a password hash.
        """
        key = f"register:{address or 'unknown'}"
        wait = await self.counters.acquire([(key, self.registrations)], self.registration_window)
        if wait > 0:
            raise Throttled(math.ceil(wait), "Too many registration attempts from this address.")

    @staticmethod
    def _login_keys(username: str, address: str | None) -> tuple[str, str]:
        # Usernames in attempts are arbitrary text: hash them into a fixed-size key part.
        name = hashlib.sha256(username_key(username).encode()).hexdigest()[:24]
        client = address or "unknown"
        return f"login:user:{name}:{client}", f"login:addr:{client}"
