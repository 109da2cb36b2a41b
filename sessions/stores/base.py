"""The storage contract: a backend maps session ids to record bytes through a few primitives.

Backends implement the primitives (``load``, ``load_many``, ``write``, ``apply``, ``renew``,
``delete``, ``scan``, ``deadlines``, ``purge_expired``, the owner index, ``ping``). This base turns
them into express's store API (``get``, ``set``, ``destroy``, ``touch``, ``all``, ``ids``,
``length``, ``clear``) and the owner API (``owned``, ``destroy_owned``). Expiries are epoch
milliseconds everywhere (`sessions.expiry`); every backend failure is a `StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..expiry import Renewal, deadline, ms_from_iso, now_ms
from ..record import OWNER_KEY, Change, parse_record
from ..serialization import dump_json, load_json

if TYPE_CHECKING:
    from quart import Quart

__all__ = ["TTL", "Change", "Renewal", "SessionInfo", "Store"]

#: Seconds of idle life for a browser-session cookie's record, or connect-redis's ``ttl(record)`` function.
TTL = int | Callable[[Mapping[str, Any]], int]
Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One live session of an owner, as listed by `Store.owned`."""

    id: str
    data: dict[str, Any]
    expires: datetime | None
    last_seen: datetime | None


class Store(ABC):
    """Async session storage: backend primitives below, express's store API on top.

    `ttl` is the idle life (seconds) of a record whose cookie has no expiry (connect-redis's `ttl`,
    a function of the record included); `disable_ttl` stores records without any expiry and
    `disable_touch` never slides it, as in connect-redis.
    """

    #: Whether other processes (workers, the CLI) see the same sessions.
    shared = True

    def __init__(
        self, *, ttl: TTL = 86400, disable_ttl: bool = False, disable_touch: bool = False
    ) -> None:
        if not callable(ttl) and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
            raise ValueError(f"ttl must be a positive number of seconds or a function, not {ttl!r}")
        self.ttl = ttl
        self.disable_ttl = disable_ttl
        self.disable_touch = disable_touch

    # ------------------------------------------------------------------ primitives

    @abstractmethod
    async def load(self, sid: str, renew: Renewal | None = None) -> bytes | None:
        """The live record, or None; with `renew`, its expiry slid in the same atomic step."""

    @abstractmethod
    async def load_many(self, sids: Sequence[str]) -> list[bytes | None]:
        """Several live records, in order, never renewed."""

    @abstractmethod
    async def write(self, sid: str, record: bytes, expires_ms: int | None) -> None:
        """Store unconditionally (the engine does so only for ids it has just minted)."""

    @abstractmethod
    async def apply(self, sid: str, change: Change, expires_ms: int | None) -> bytes | None:
        """Merge `change` into the live record atomically; the stored bytes, or None when it is gone."""

    @abstractmethod
    async def renew(self, sid: str, renewal: Renewal) -> None:
        """Slide a live record's expiry without reading it back (missing or expired: nothing)."""

    @abstractmethod
    async def delete(self, *sids: str) -> None:
        """Remove records; missing ones are fine."""

    @abstractmethod
    def scan(self, batch: int = 500) -> AsyncIterator[list[str]]:
        """Stored ids in batches, with memory bounded whatever the store holds."""

    @abstractmethod
    async def deadlines(self, sids: Sequence[str]) -> list[int | None]:
        """When each record expires, epoch ms (None: missing, or never)."""

    @abstractmethod
    async def purge_expired(self) -> int:
        """Delete expired records now; how many (0 for stores that expire records themselves)."""

    @abstractmethod
    async def index_add(self, owner: str, sid: str) -> None:
        """Record that `sid` belongs to `owner`."""

    @abstractmethod
    async def index_remove(self, owner: str, *sids: str) -> None:
        """Forget that these ids belong to `owner`."""

    @abstractmethod
    async def index_members(self, owner: str) -> list[str]:
        """The ids recorded for `owner`, dead ones included."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store can be read and written."""

    async def close(self) -> None:
        """Release connections and files, stop background work."""

    def attach(self, app: Quart) -> None:
        """Called once by `Sessions.init_app` (a FileStore resolves a relative folder here)."""

    # ------------------------------------------------------------------ expiry

    def renewal(self, at_ms: int, anonymous_ttl: int | None = None) -> Renewal | None:
        """How a read at `at_ms` slides the expiry; None when this store does not slide it on read."""
        if self.disable_touch or self.disable_ttl or callable(self.ttl):
            return None
        idle = self.ttl * 1000
        return Renewal(at_ms, idle, idle if anonymous_ttl is None else anonymous_ttl * 1000)

    def deadline_ms(
        self,
        at_ms: int,
        cookie_expires_ms: int | None,
        owned: bool,
        record: Callable[[], Mapping[str, Any]],
        anonymous_ttl: int | None = None,
    ) -> int | None:
        """When a record written at `at_ms` expires (None: never); connect-redis's ttl function wins."""
        if self.disable_ttl:
            return None
        if callable(self.ttl):
            return at_ms + int(self.ttl(record())) * 1000
        idle = self.ttl * 1000
        anonymous = idle if anonymous_ttl is None else anonymous_ttl * 1000
        return deadline(at_ms, cookie_expires_ms, owned, idle, anonymous)

    # ------------------------------------------------------------------ express's store API

    async def get(self, sid: str) -> Record | None:
        """The record stored under `sid` (express layout), or None."""
        raw = await self.load(sid)
        return None if raw is None or parse_record(raw) is None else load_json(raw)

    async def set(self, sid: str, record: Mapping[str, Any]) -> None:
        """Store a record; one whose cookie has already expired is deleted instead."""
        raw = dump_json(record).encode()
        at = now_ms()
        parsed = parse_record(raw)
        stated = None if parsed is None else parsed.cookie.get("expires")
        cookie_ms = ms_from_iso(stated) if isinstance(stated, str) else None
        owned = parsed is not None and parsed.owner is not None
        expires = self.deadline_ms(at, cookie_ms, owned, lambda: record)
        if expires is not None and expires <= at:
            await self.delete(sid)
        else:
            await self.write(sid, raw, expires)

    async def destroy(self, sid: str) -> None:
        """Delete the record stored under `sid`."""
        await self.delete(sid)

    async def touch(self, sid: str, record: Mapping[str, Any]) -> None:
        """Slide the record's expiry as a request would, rewriting its stored cookie.expires."""
        if self.disable_touch or self.disable_ttl:
            return
        at = now_ms()
        renewal = self.renewal(at)
        if renewal is None:  # a ttl function: this record's own idle time
            idle = int(self.ttl(record)) * 1000 if callable(self.ttl) else 0
            renewal = Renewal(at, idle, idle)
        await self.renew(sid, renewal)

    async def iter_all(self, batch: int = 500) -> AsyncIterator[dict[str, Record]]:
        """Every live session, a batch of {id: record} at a time (bounded memory)."""
        async for sids in self.scan(batch):
            records = {}
            for sid, raw in zip(sids, await self.load_many(sids), strict=True):
                if raw is not None and parse_record(raw) is not None:
                    records[sid] = load_json(raw)
            if records:
                yield records

    async def all(self) -> dict[str, Record]:
        """Every live session: {id: record} (all in memory at once; see `iter_all`)."""
        found: dict[str, Record] = {}
        async for records in self.iter_all():
            found.update(records)
        return found

    async def ids(self) -> list[str]:
        """Every stored session id, sorted (all in memory at once; see `scan`)."""
        found: set[str] = set()
        async for sids in self.scan():
            found.update(sids)
        return sorted(found)

    async def length(self) -> int:
        """How many sessions are stored, counted batch by batch (see each store for duplicates)."""
        count = 0
        async for sids in self.scan():
            count += len(sids)
        return count

    async def clear(self) -> None:
        """Delete every session of this store, a batch at a time."""
        async for sids in self.scan():
            await self.delete(*sids)

    # ------------------------------------------------------------------ owners

    async def owned(self, owner: str) -> list[SessionInfo]:
        """The live sessions of `owner`, most recently seen first; dead ids are dropped from the index.

        ::

            for info in await store.owned(f"user:{user.id}"):
                print(info.id, info.last_seen, info.data.get("user_agent"))
        """
        sids = await self.index_members(owner)
        # Both at once: a store that pipelines (RedisStore) answers them in one round trip.
        raws, deadlines = await asyncio.gather(self.load_many(sids), self.deadlines(sids))
        live: list[tuple[str, Record, int | None]] = []
        dead: list[str] = []
        for sid, raw, ends in zip(sids, raws, deadlines, strict=True):
            parsed = None if raw is None else parse_record(raw)
            if parsed is not None and parsed.owner == owner:
                live.append((sid, {"cookie": parsed.cookie, **parsed.data}, ends))
            else:
                dead.append(sid)
        if dead:
            await self.index_remove(owner, *dead)
        now = datetime.now(UTC)
        infos = []
        for sid, record, ends in live:
            expires = None if ends is None else datetime.fromtimestamp(ends / 1000, UTC)
            infos.append(SessionInfo(sid, _data(record), expires, self._last_seen(record, expires)))
        infos.sort(key=lambda info: info.last_seen or now, reverse=True)
        return infos

    def _last_seen(self, record: Record, expires: datetime | None) -> datetime | None:
        """When a record was last renewed: its expiry minus the life a renewal gives it."""
        if expires is None or self.disable_ttl:
            return None
        original = record["cookie"].get("originalMaxAge")
        if record["cookie"].get("expires") is not None and isinstance(original, int | float):
            return expires - timedelta(milliseconds=original)
        if callable(self.ttl):
            return expires - timedelta(seconds=int(self.ttl(record)))
        return expires - timedelta(seconds=self.ttl)

    async def destroy_owned(self, owner: str, keep: str | None = None) -> int:
        """Delete every session of `owner` except `keep`; returns how many were deleted.

        ::

            await store.destroy_owned(f"user:{user.id}", keep=session.id)  # sign out other devices
        """
        doomed = [sid for sid in await self.index_members(owner) if sid != keep]
        if doomed:
            await self.delete(*doomed)
            await self.index_remove(owner, *doomed)
        return len(doomed)


def _data(record: Record) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in ("cookie", OWNER_KEY)}
