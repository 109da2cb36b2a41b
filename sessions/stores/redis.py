"""RedisStore: sessions in Redis, in connect-redis's key and JSON layout (`sess:<id>` → JSON)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from redis import exceptions as redis_errors

from ..errors import StoreUnavailable
from ..expiry import Renewal, is_expired, iso_from_ms, now_ms
from ..record import Change
from ..serialization import dump_json
from .base import TTL, Store
from .multiplex import HAVE_HIREDIS, MultiplexedConnection
from .redis_scripts import APPLY, LOAD, Script

__all__ = ["RedisStore", "redis_client"]

logger = logging.getLogger("sessions")

_UNAVAILABLE = (
    redis_errors.ConnectionError,  # BusyLoadingError (LOADING after a restart) included
    redis_errors.ReadOnlyError,  # a demoted master, until the client follows the failover
    redis_errors.MasterDownError,
    redis_errors.OutOfMemoryError,  # maxmemory reached with noeviction
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.SlotNotCoveredError,
    OSError,
)
# RedisCluster reports "no node answers" while it (re)discovers the topology as a plain
# RedisClusterException; other ones (bad arguments, cross-slot keys) are bugs and propagate.
_CLUSTER_UNREACHABLE = ("Redis Cluster cannot be connected", "All slots are not covered")
# A Redis that is up but refuses writes for now: too few replicas in sync (min-replicas-to-write),
# a failing disk (MISCONF), a script running too long (BUSY).
_REFUSING = ("NOREPLICAS", "MISCONF", "BUSY ")


class Connection(Protocol):
    """What the store needs from a Redis client: commands, batches of commands, and SCAN."""

    async def execute(self, *args: Any) -> Any: ...
    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]: ...
    def scan(self, match: str, count: int) -> AsyncIterator[list[bytes]]: ...
    async def close(self) -> None: ...


class ClientConnection:
    """Any redis.asyncio-compatible client (plain, RedisCluster, a Sentinel master) as a Connection."""

    def __init__(self, client: Any, *, owned: bool) -> None:
        self.client = client
        self.owned = owned

    async def execute(self, *args: Any) -> Any:
        return await self.client.execute_command(*args)

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute())

    async def scan(self, match: str, count: int) -> AsyncIterator[list[bytes]]:
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=match, count=count):
            batch.append(key.encode() if isinstance(key, str) else key)
            if len(batch) >= count:
                yield batch
                batch = []
        if batch:
            yield batch

    async def close(self) -> None:
        if self.owned:
            await self.client.aclose()


class RedisStore(Store):
    """Sessions in Redis; any redis.asyncio-compatible client (plain, RedisCluster, Sentinel master).

    ::

        store = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix="sess:")
        # or with a client you built: RedisStore(redis.asyncio.RedisCluster(host=..., port=...))

    A read is one command (a script that checks the expiry and slides it), a modified session one
    more (a script that merges the request's changes into the current record). `from_url` makes its
    connections per event loop; a client you pass is used as is, on the loop it belongs to.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str | None = "sess:",
        ttl: TTL = 86400,
        disable_ttl: bool = False,
        disable_touch: bool = False,
        scan_count: int = 100,
        index_prefix: str | None = None,
    ) -> None:
        super().__init__(ttl=ttl, disable_ttl=disable_ttl, disable_touch=disable_touch)
        self.prefix = "sess:" if prefix is None else prefix
        self.index_prefix = index_prefix or self.prefix.rstrip(":") + "-owners:"
        self.scan_count = scan_count
        self.url: str | None = None
        self._timeout = 2.0  # from_url's; bounds the client `client` makes
        self._client = client
        self._owns_client = False
        self._factory: Callable[[], Connection] | None = None
        self._shared: Connection | None = (
            None if client is None else ClientConnection(client, owned=False)
        )
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Connection] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float = 2.0, multiplex: bool = True, **options: Any
    ) -> RedisStore:
        """A store with connections of its own, one per event loop; `timeout` bounds every command.

        With `multiplex` (a plain ``redis://`` or ``unix://`` URL and hiredis), each loop's requests
        share one pipelined connection: about half the client CPU of redis-py's pool.
        """
        store = cls(None, **options)
        store.url = url
        store._timeout = timeout
        use_multiplex = multiplex and MultiplexedConnection.from_url(url) is not None
        if multiplex and not HAVE_HIREDIS:
            logger.warning("sessions: hiredis is not installed; RedisStore uses redis-py's pool")

        def connect() -> Connection:
            if use_multiplex:
                connection = MultiplexedConnection.from_url(url, timeout=timeout)
                assert connection is not None
                return connection
            return ClientConnection(redis_client(url, timeout), owned=True)

        store._factory = connect
        return store

    @property
    def client(self) -> Any:
        """A redis.asyncio client of this store's Redis, for other extensions (auth's users, say)."""
        if self._client is None:
            assert self.url is not None
            self._client = redis_client(self.url, self._timeout)
            self._owns_client = True
        return self._client

    def key(self, sid: str) -> str:
        return self.prefix + sid

    def _connection(self) -> Connection:
        if self._shared is not None:
            return self._shared
        assert self._factory is not None
        loop = asyncio.get_running_loop()
        connection = self._per_loop.get(loop)
        if connection is None:
            connection = self._per_loop[loop] = self._factory()
        return connection

    async def _call(self, work: Callable[[Connection], Any]) -> Any:
        """Every command goes through here: one connection per loop, one error vocabulary."""
        try:
            return await work(self._connection())
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"Redis: {error}") from error
        except redis_errors.ResponseError as error:
            if str(error).startswith(_REFUSING):
                raise StoreUnavailable(f"Redis: {error}") from error
            raise
        except redis_errors.RedisClusterException as error:
            if str(error).startswith(_CLUSTER_UNREACHABLE):
                raise StoreUnavailable(f"Redis: {error}") from error
            raise

    async def _script(self, script: Script, key: str, *args: Any) -> Any:
        async def run(connection: Connection) -> Any:
            try:
                return await connection.execute("EVALSHA", script.sha, 1, key, *args)
            except redis_errors.NoScriptError:
                return await connection.execute("EVAL", script.source, 1, key, *args)

        return await self._call(run)

    # ------------------------------------------------------------------ primitives

    async def load(self, sid: str, renew: Renewal | None = None) -> bytes | None:
        at = now_ms() if renew is None else renew.now_ms
        idle = (renew.idle_ms, renew.anonymous_idle_ms) if renew is not None else (0, 0)
        flag = "1" if renew is not None else "0"
        try:
            value = await self._script(LOAD, self.key(sid), at, iso_from_ms(at), *idle, flag)
        except redis_errors.ResponseError as error:
            if str(error).startswith("WRONGTYPE"):
                return None  # the key holds something that is not a session record
            raise
        return _bytes(value)

    async def load_many(self, sids: Sequence[str]) -> list[bytes | None]:
        if not sids:
            return []
        values = await self._call(lambda c: c.execute_many([("GET", self.key(s)) for s in sids]))
        at = now_ms()
        # A record connect-redis wrote lives up to a second past its cookie's expiry (EX rounds up).
        return [None if (raw := _bytes(v)) is None or is_expired(raw, at) else raw for v in values]

    async def write(self, sid: str, record: bytes, expires_ms: int | None) -> None:
        expiry = () if expires_ms is None else ("PX", max(expires_ms - now_ms(), 1))
        await self._call(lambda c: c.execute("SET", self.key(sid), record, *expiry))

    async def apply(self, sid: str, change: Change, expires_ms: int | None) -> bytes | None:
        at = now_ms()
        ttl = "" if expires_ms is None else max(expires_ms - at, 1)
        base = "" if change.base is None else hashlib.sha1(change.base).hexdigest()
        result = b"" if change.base is None or change.result is None else change.result
        args: list[Any] = [iso_from_ms(at), ttl, change.cookie, base, result, len(change.remove)]
        args += [dump_json(key) for key in change.remove]
        for key, text in change.assign:
            args += [dump_json(key), text]
        return _bytes(await self._script(APPLY, self.key(sid), *args))

    async def renew(self, sid: str, renewal: Renewal) -> None:
        await self.load(sid, renewal)

    async def delete(self, *sids: str) -> None:
        if sids:
            await self._call(lambda c: c.execute_many([("DEL", self.key(s)) for s in sids]))

    async def scan(self, batch: int = 500) -> AsyncIterator[list[str]]:
        """Keys under the prefix, a batch at a time; SCAN may list a key twice while Redis resizes."""
        start = len(self.prefix)
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.prefix) + "*"
        try:
            async for keys in self._connection().scan(escaped, batch):
                yield [key[start:].decode(errors="replace") for key in keys]
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"Redis: {error}") from error

    async def deadlines(self, sids: Sequence[str]) -> list[int | None]:
        if not sids:
            return []
        left = await self._call(lambda c: c.execute_many([("PTTL", self.key(s)) for s in sids]))
        at = now_ms()
        return [None if ms is None or ms < 0 else at + ms for ms in left]

    async def purge_expired(self) -> int:
        """Redis expires keys by itself."""
        return 0

    async def index_add(self, owner: str, sid: str) -> None:
        await self._call(lambda c: c.execute("SADD", self.index_prefix + owner, sid))

    async def index_remove(self, owner: str, *sids: str) -> None:
        if sids:
            await self._call(lambda c: c.execute("SREM", self.index_prefix + owner, *sids))

    async def index_members(self, owner: str) -> list[str]:
        members = await self._call(lambda c: c.execute("SMEMBERS", self.index_prefix + owner))
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    async def ping(self) -> None:
        """A write, so that a Redis refusing writes (OOM, READONLY, MISCONF) fails too."""
        probe = self.prefix.rstrip(":") + "-ping"
        await self._call(lambda c: c.execute("SET", probe, "1", "PX", 10_000))

    async def close(self) -> None:
        connections = [self._shared] if self._shared is not None else []
        loop = asyncio.get_running_loop()
        current = self._per_loop.pop(loop, None)
        if current is not None:
            connections.append(current)
        self._per_loop.clear()  # those of other (finished) loops die with them
        for connection in connections:
            await connection.close()
        if self._owns_client:
            await self._client.aclose()


def _bytes(value: Any) -> bytes | None:
    if isinstance(value, str):  # a client made with decode_responses=True
        return value.encode()
    return value or None


def redis_client(url: str, timeout: float = 2.0) -> Any:
    """A redis.asyncio client of `url` that waits `timeout` for an answer and survives a restart."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # One immediate retry on a dead connection (after a Redis restart) makes recovery
        # invisible; a timeout is not retried, so a hung Redis costs one timeout, not two.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis_errors.ConnectionError,)),
        health_check_interval=30,
    )
