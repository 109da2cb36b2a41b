"""The storage contract: each backend maps session ids to stored bytes; the base owns the rest."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..serialization import OWNER_KEY, dump_json, load_record

__all__ = ["SessionInfo", "Store", "TTL"]

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
    """Async session storage with express-session's store API on top of a few backend primitives.

    A backend implements `read`, `write`, `replace`, `remove`, `expire`, `scan`, `read_many`,
    `remaining` and the owner index (`index_add`, `index_remove`, `index_members`).
    TTLs are whole seconds; None means "never expires".
    """

    #: The backend slides the expiry itself when `read` is called (saves a round trip per request).
    touches_on_read = False

    def __init__(
        self, *, ttl: TTL = 86400, disable_ttl: bool = False, disable_touch: bool = False
    ) -> None:
        if not callable(ttl) and (not isinstance(ttl, int) or ttl <= 0):
            raise ValueError(f"ttl must be a positive number of seconds or a function, not {ttl!r}")
        self.ttl = ttl
        self.disable_ttl = disable_ttl
        self.disable_touch = disable_touch

    @abstractmethod
    async def read(self, sid: str) -> bytes | None:
        """The stored bytes, or None (missing, expired or unreadable)."""

    @abstractmethod
    async def write(self, sid: str, raw: bytes, ttl: int | None) -> None:
        """Store unconditionally."""

    @abstractmethod
    async def replace(
        self, sid: str, expected: bytes, raw: bytes, ttl: int | None
    ) -> bool | bytes | None:
        """Store only if the current value is `expected`: True, else the current bytes, or None if gone."""

    @abstractmethod
    async def remove(self, *sids: str) -> None:
        """Delete records; missing ones are fine."""

    @abstractmethod
    async def expire(self, sid: str, ttl: int | None) -> None:
        """Set a record's remaining lifetime without rewriting it; a missing record stays missing."""

    @abstractmethod
    async def scan(self) -> list[str]:
        """Every stored session id (live ones; expired ones may be skipped)."""

    @abstractmethod
    async def read_many(self, sids: Sequence[str]) -> list[bytes | None]:
        """`read` for several ids, in order, without sliding their expiry."""

    @abstractmethod
    async def remaining(self, sids: Sequence[str]) -> list[float | None]:
        """Seconds each record has left (None: no expiry or missing)."""

    @abstractmethod
    async def index_add(self, owner: str, sid: str) -> None:
        """Record that `sid` belongs to `owner`."""

    @abstractmethod
    async def index_remove(self, owner: str, *sids: str) -> None:
        """Forget that these ids belong to `owner`."""

    @abstractmethod
    async def index_members(self, owner: str) -> list[str]:
        """Ids recorded for `owner`, dead ones included."""

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""

    async def close(self) -> None:
        """Release connections and files."""

    def ttl_for_cookie(
        self, expires: datetime | None, record: Callable[[], Mapping[str, Any]]
    ) -> int | None:
        """connect-redis's rule: a ttl function wins, then the cookie's expiry, then `ttl`."""
        if callable(self.ttl):
            seconds = int(self.ttl(record()))
        elif expires is not None:
            seconds = math.ceil((expires - datetime.now(UTC)).total_seconds())
        else:
            seconds = self.ttl
        if self.disable_ttl and seconds > 0:
            return None
        return seconds

    def ttl_for(self, record: Mapping[str, Any]) -> int | None:
        """The TTL a record is stored with (see `ttl_for_cookie`)."""
        stored = record.get("cookie", {}).get("expires")
        try:
            expires = datetime.fromisoformat(stored) if isinstance(stored, str) else None
        except ValueError:
            expires = None
        return self.ttl_for_cookie(expires, lambda: record)

    def sliding_ttl(self, record: Mapping[str, Any]) -> int | None:
        """The lifetime a touch gives a record: its original max age, else `ttl`."""
        if self.disable_ttl:
            return None
        if callable(self.ttl):
            return int(self.ttl(record))
        cookie = record.get("cookie", {})
        original = cookie.get("originalMaxAge")
        if cookie.get("expires") is not None and isinstance(original, int | float):
            return math.ceil(original / 1000)
        return self.ttl

    async def get(self, sid: str) -> Record | None:
        """The record stored under `sid` (express layout), or None."""
        raw = await self.read(sid)
        return None if raw is None else load_record(raw)

    async def set(self, sid: str, record: Mapping[str, Any]) -> None:
        """Store a record; one whose cookie has already expired is deleted instead."""
        ttl = self.ttl_for(record)
        if ttl is not None and ttl <= 0:
            await self.remove(sid)
        else:
            await self.write(sid, dump_json(record).encode(), ttl)

    async def destroy(self, sid: str) -> None:
        """Delete the record stored under `sid`."""
        await self.remove(sid)

    async def touch(self, sid: str, record: Mapping[str, Any]) -> None:
        """Slide the record's expiry without rewriting it."""
        if self.disable_touch or self.disable_ttl:
            return
        ttl = self.ttl_for(record)
        if ttl is not None and ttl <= 0:
            await self.remove(sid)
        else:
            await self.expire(sid, ttl)

    async def all(self) -> dict[str, Record]:
        """Every live session: {id: record}."""
        sids = await self.scan()
        records = {
            sid: load_record(raw)
            for sid, raw in zip(sids, await self.read_many(sids), strict=True)
            if raw
        }
        return {sid: record for sid, record in records.items() if record is not None}

    async def ids(self) -> list[str]:
        """Every stored session id."""
        return sorted(set(await self.scan()))

    async def length(self) -> int:
        """How many sessions are stored."""
        return len(set(await self.scan()))

    async def clear(self) -> None:
        """Delete every session of this store."""
        sids = await self.scan()
        if sids:
            await self.remove(*sids)

    async def owned(self, owner: str) -> list[SessionInfo]:
        """The live sessions of `owner`, most recently seen first; dead ids are dropped from the index.

        ::

            for info in await store.owned(f"user:{user.id}"):
                print(info.id, info.last_seen, info.data.get("user_agent"))
        """
        sids = await self.index_members(owner)
        raws = await self.read_many(sids)
        live: list[tuple[str, Record]] = []
        dead: list[str] = []
        for sid, raw in zip(sids, raws, strict=True):
            record = None if raw is None else load_record(raw)
            if record is not None and record.get(OWNER_KEY) == owner:
                live.append((sid, record))
            else:
                dead.append(sid)
        if dead:
            await self.index_remove(owner, *dead)
        now = datetime.now(UTC)
        infos = []
        for (sid, record), left in zip(
            live, await self.remaining([sid for sid, _ in live]), strict=True
        ):
            expires = None if left is None else now + timedelta(seconds=left)
            sliding = self.sliding_ttl(record)
            last_seen = (
                None if expires is None or sliding is None else expires - timedelta(seconds=sliding)
            )
            data = {k: v for k, v in record.items() if k not in ("cookie", OWNER_KEY)}
            infos.append(SessionInfo(sid, data, expires, last_seen))
        infos.sort(key=lambda info: info.last_seen or now, reverse=True)
        return infos

    async def destroy_owned(self, owner: str, keep: str | None = None) -> int:
        """Delete every session of `owner` except `keep`; returns how many were deleted.

        ::

            await store.destroy_owned(f"user:{user.id}", keep=session.id)  # sign out other devices
        """
        doomed = [sid for sid in await self.index_members(owner) if sid != keep]
        if doomed:
            await self.remove(*doomed)
            await self.index_remove(owner, *doomed)
        return len(doomed)
