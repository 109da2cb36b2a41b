"""RedisStore: sessions in Redis, in connect-redis's key and JSON layout (`sess:<id>` → JSON)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from redis import exceptions as redis_errors

from ..errors import StoreUnavailable
from .base import TTL, Store
from .multiplex import MultiplexedConnection

__all__ = ["RedisStore", "Serializer"]

T = TypeVar("T")

# One round trip for the common read: GET, then slide the TTL the way a touch would
# (the cookie's original max age when it has an expiry, else the store's ttl).
_READ_AND_TOUCH = """
local value = redis.call('GET', KEYS[1])
if not value then return false end
local ttl = tonumber(ARGV[1])
local ok, record = pcall(cjson.decode, value)
if ok and type(record) == 'table' and type(record['cookie']) == 'table' then
  local cookie = record['cookie']
  if type(cookie['expires']) == 'string' and type(cookie['originalMaxAge']) == 'number' then
    ttl = math.ceil(cookie['originalMaxAge'] / 1000)
  end
end
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return value
"""

# Compare-and-set on the SHA-1 of the value the request loaded: 1 when written, 0 when the key
# is gone (never resurrect a destroyed session), else the newer value for the caller to merge.
_REPLACE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if redis.sha1hex(current) ~= ARGV[1] then return current end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"""

_UNAVAILABLE = (
    redis_errors.ConnectionError,  # BusyLoadingError (LOADING after a restart) included
    redis_errors.ReadOnlyError,  # a demoted master, until the client follows the failover
    redis_errors.MasterDownError,
    redis_errors.OutOfMemoryError,  # maxmemory reached with noeviction
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    OSError,
)

# RedisCluster reports "no node answers" while it (re)discovers the topology as a plain
# RedisClusterException (the ConnectionError is its __cause__): the cluster is unreachable.
# Other RedisClusterExceptions (bad arguments, cross-slot keys) are bugs and propagate.
_CLUSTER_UNREACHABLE = ("Redis Cluster cannot be connected", "All slots are not covered")

# Error replies of a Redis that is up but refuses writes for now: too few replicas in sync
# (min-replicas-to-write), a failing disk (MISCONF), a script running too long (BUSY).
_REFUSING = ("NOREPLICAS", "MISCONF", "BUSY ")


class Serializer(Protocol):
    """How records are written to Redis; JSON by default (connect-redis's `serializer`)."""

    def dumps(self, record: Any) -> str | bytes: ...
    def loads(self, raw: bytes) -> Any: ...


class RedisStore(Store):
    """Sessions in Redis; any redis.asyncio-compatible client (plain, RedisCluster, Sentinel master).

    ::

        store = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix="sess:")
        # or with a client you built: RedisStore(redis.asyncio.RedisCluster(host=..., port=...))

    A loaded session costs one command (GET and the sliding expiry in one script); a modified one,
    two (that read, and a compare-and-set write that merges concurrent edits of other keys).
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str | None = "sess:",
        ttl: TTL = 86400,
        disable_ttl: bool = False,
        disable_touch: bool = False,
        serializer: Serializer | None = None,
        scan_count: int = 100,
        index_prefix: str | None = None,
        owns_client: bool = False,
    ) -> None:
        super().__init__(ttl=ttl, disable_ttl=disable_ttl, disable_touch=disable_touch)
        self.client = client
        self.prefix = "sess:" if prefix is None else prefix
        self.index_prefix = index_prefix or self.prefix.rstrip(":") + "-owners:"
        self.serializer = serializer
        self.scan_count = scan_count
        self.touches_on_read = not (disable_touch or disable_ttl or callable(ttl) or serializer)
        self._owns_client = owns_client
        pool = getattr(client, "connection_pool", None)
        plain = getattr(client, "connection", None) is None and hasattr(pool, "get_connection")
        self._pool = pool if plain else None
        self._multiplexed: MultiplexedConnection | None = None
        self._read_sha = hashlib.sha1(_READ_AND_TOUCH.encode()).hexdigest()
        self._replace_sha = hashlib.sha1(_REPLACE.encode()).hexdigest()

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float = 2.0, multiplex: bool = True, **options: Any
    ) -> RedisStore:
        """A store with its own client; `timeout` bounds every command (a slow Redis gives a 503).

        With `multiplex` (a plain ``redis://`` or ``unix://`` URL), the per-request commands share
        one pipelined connection per event loop instead of a pool: about half the client CPU.
        """
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One immediate retry on a fresh connection: after a Redis restart the pooled
            # connections are dead, and the retry is what makes recovery invisible.
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
        )
        store = cls(client, owns_client=True, **options)
        if multiplex:
            store._multiplexed = MultiplexedConnection.from_url(url, timeout=timeout)
        return store

    def key(self, sid: str) -> str:
        return self.prefix + sid

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        try:
            return await command()
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"Redis: {error}") from error
        except redis_errors.ResponseError as error:
            if str(error).startswith(_REFUSING):
                raise StoreUnavailable(f"Redis: {error}") from error
            raise
        except redis_errors.RedisClusterException as error:
            if isinstance(error, redis_errors.SlotNotCoveredError) or str(error).startswith(
                _CLUSTER_UNREACHABLE
            ):
                raise StoreUnavailable(f"Redis: {error}") from error
            raise

    async def _send(self, *args: Any) -> Any:
        """One command; on a plain pooled client, without redis-py's per-command machinery."""
        if self._multiplexed is not None:
            return await self._multiplexed.execute(*args)
        pool = self._pool
        if pool is None:
            return await self.client.execute_command(*args)
        # Straight to a pooled connection: measured at less than half the client-side cost of
        # execute_command (its retry wrapper, response callbacks and observability hooks).
        for attempt in (1, 2):
            connection = await pool.get_connection()
            try:
                await connection.send_packed_command(connection.pack_command(*args), False)
                return await connection.read_response()
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError):
                await connection.disconnect()
                if attempt == 2:
                    raise  # the first failure may be a connection a restarted Redis closed
            except BaseException:
                await connection.disconnect()  # a cancelled read leaves the reply unread
                raise
            finally:
                await pool.release(connection)
        raise AssertionError("unreachable")

    async def _script(self, sha: str, source: str, key: str, *args: Any) -> Any:
        try:
            return await self._send("EVALSHA", sha, 1, key, *args)
        except redis_errors.NoScriptError:
            return await self._send("EVAL", source, 1, key, *args)

    def _encode(self, raw: bytes) -> bytes:
        if self.serializer is None:
            return raw
        encoded = self.serializer.dumps(json.loads(raw))
        return encoded.encode() if isinstance(encoded, str) else encoded

    def _decode(self, stored: bytes | str | None) -> bytes | None:
        if isinstance(stored, str):  # a client made with decode_responses=True
            stored = stored.encode()
        if stored is None or self.serializer is None:
            return stored or None
        try:
            return json.dumps(self.serializer.loads(stored), separators=(",", ":")).encode()
        except Exception:  # a record the serializer cannot read is treated as missing
            return None

    async def read(self, sid: str) -> bytes | None:
        key = self.key(sid)
        try:
            if self.touches_on_read:
                stored = await self._call(
                    lambda: self._script(self._read_sha, _READ_AND_TOUCH, key, self.ttl)
                )
            else:
                stored = await self._call(lambda: self._send("GET", key))
        except redis_errors.ResponseError as error:
            if str(error).startswith("WRONGTYPE"):
                return None  # the key holds something that is not a session record
            raise
        return self._decode(stored)

    async def write(self, sid: str, raw: bytes, ttl: int | None) -> None:
        args = ("EX", ttl) if ttl is not None else ()
        await self._call(lambda: self._send("SET", self.key(sid), self._encode(raw), *args))

    async def replace(
        self, sid: str, expected: bytes, raw: bytes, ttl: int | None
    ) -> bool | bytes | None:
        digest = hashlib.sha1(self._encode(expected)).hexdigest()
        outcome = await self._call(
            lambda: self._script(
                self._replace_sha, _REPLACE, self.key(sid), digest, self._encode(raw), ttl or 0
            )
        )
        if outcome == 1:
            return True
        if outcome == 0 or outcome is None:
            return None
        return self._decode(outcome)

    async def remove(self, *sids: str) -> None:
        if sids:
            await self._call(lambda: self.client.delete(*(self.key(sid) for sid in sids)))

    async def expire(self, sid: str, ttl: int | None) -> None:
        if ttl is None:
            await self._call(lambda: self.client.persist(self.key(sid)))
        else:
            await self._call(lambda: self._send("EXPIRE", self.key(sid), ttl))

    async def _pipelined(self, command: str, keys: Sequence[str]) -> list[Any]:
        if not keys:
            return []

        async def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                getattr(pipe, command)(key)
            results: list[Any] = await pipe.execute()
            return results

        return await self._call(run)

    async def scan(self) -> list[str]:
        async def run() -> list[str]:
            start = len(self.prefix)
            found = set()
            async for key in self.client.scan_iter(match=self._pattern(), count=self.scan_count):
                found.add((key.decode() if isinstance(key, bytes) else key)[start:])
            return sorted(found)

        return await self._call(run)

    def _pattern(self) -> str:
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.prefix)
        return escaped + "*"

    async def read_many(self, sids: Sequence[str]) -> list[bytes | None]:
        return [
            self._decode(value)
            for value in await self._pipelined("get", [self.key(s) for s in sids])
        ]

    async def remaining(self, sids: Sequence[str]) -> list[float | None]:
        results = await self._pipelined("pttl", [self.key(s) for s in sids])
        return [None if ms is None or ms < 0 else ms / 1000 for ms in results]

    async def index_add(self, owner: str, sid: str) -> None:
        await self._call(lambda: self.client.sadd(self.index_prefix + owner, sid))

    async def index_remove(self, owner: str, *sids: str) -> None:
        if sids:
            await self._call(lambda: self.client.srem(self.index_prefix + owner, *sids))

    async def index_members(self, owner: str) -> list[str]:
        members = await self._call(lambda: self.client.smembers(self.index_prefix + owner))
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    async def ping(self) -> None:
        await self._call(lambda: self.client.ping())

    async def close(self) -> None:
        if self._multiplexed is not None:
            await self._multiplexed.close()
        if self._owns_client:
            await self.client.aclose()
