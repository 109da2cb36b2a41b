"""MemoryStore: one process's dict. For development and tests; sessions vanish on restart."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from typing import NamedTuple

from ..expiry import (
    LAST_MS,
    Layout,
    Renewal,
    is_owned,
    iso_from_ms,
    layout_of,
    now_ms,
    renew_record,
)
from ..record import Change, merge_record
from .base import TTL, Store

__all__ = ["MemoryStore"]

# Pruning walks the dict in slices this long, yielding to the event loop in between.
_PRUNE_SLICE = 2000


class _Entry(NamedTuple):
    raw: bytes
    deadline: int | None
    layout: Layout | None  # found once per write, so that a renewal is a splice of 24 bytes


class MemoryStore(Store):
    """Sessions in this process's memory; expired entries are pruned in the background (bounded memory).

    ::

        Sessions(app, store=MemoryStore())

    Every operation runs without awaiting in between, so each one is atomic within the process.
    """

    shared = False

    def __init__(self, *, ttl: TTL = 86400, prune_interval: float = 60.0) -> None:
        super().__init__(ttl=ttl)
        self._records: dict[str, _Entry] = {}
        self._owners: dict[str, set[str]] = {}
        self._prune_interval_ms = int(prune_interval * 1000)
        self._next_prune = now_ms() + self._prune_interval_ms
        self._pruning: asyncio.Task[int] | None = None

    def _live(self, sid: str, at: int) -> _Entry | None:
        entry = self._records.get(sid)
        if entry is None:
            return None
        if entry.deadline is not None and entry.deadline <= at:
            del self._records[sid]
            return None
        return entry

    def _put(self, sid: str, raw: bytes, deadline: int | None, at: int) -> None:
        layout = layout_of(raw)
        expires = None if layout is None else layout.expires_ms
        if expires is not None:  # never outlive the cookie
            deadline = expires if deadline is None else min(deadline, expires)
        self._records[sid] = _Entry(raw, deadline, layout)
        if at >= self._next_prune and self._pruning is None:
            self._next_prune = at + self._prune_interval_ms
            self._pruning = asyncio.get_running_loop().create_task(self.purge_expired())
            self._pruning.add_done_callback(self._pruned)

    def _pruned(self, task: asyncio.Task[int]) -> None:
        self._pruning = None
        if not task.cancelled():
            task.exception()

    @staticmethod
    def _renewed(entry: _Entry, renew: Renewal) -> _Entry:
        """expiry.renew_record's rule, on the layout found at write time."""
        raw, deadline, layout = entry
        if layout is None:
            return entry
        if layout.persistent:
            if layout.expires_at is None:  # an expiry written oddly: the general rule
                renewed = renew_record(raw, renew)
                if renewed is None or renewed[1] is None:
                    return entry
                return _Entry(renewed[0], renewed[1], layout)
            if layout.original_ms is None:
                return entry
            deadline = math.floor(renew.now_ms + layout.original_ms)
            if deadline > LAST_MS:
                return entry
            at = layout.expires_at
            raw = raw[:at] + iso_from_ms(deadline).encode() + raw[at + 24 :]
            return _Entry(raw, deadline, layout)
        idle = renew.idle_ms
        if idle != renew.anonymous_idle_ms:
            if layout.owned is None:
                layout = layout._replace(owned=is_owned(raw))
            if not layout.owned:
                idle = renew.anonymous_idle_ms
        return _Entry(raw, renew.now_ms + idle, layout)

    async def load(self, sid: str, renew: Renewal | None = None) -> bytes | None:
        entry = self._live(sid, now_ms() if renew is None else renew.now_ms)
        if entry is None:
            return None
        if renew is not None:
            entry = self._records[sid] = self._renewed(entry, renew)
        return entry.raw

    async def load_many(self, sids: Sequence[str]) -> list[bytes | None]:
        at = now_ms()
        return [None if (entry := self._live(sid, at)) is None else entry.raw for sid in sids]

    async def write(self, sid: str, record: bytes, expires_ms: int | None) -> None:
        self._put(sid, record, expires_ms, now_ms())

    async def apply(self, sid: str, change: Change, expires_ms: int | None) -> bytes | None:
        at = now_ms()
        current = self._live(sid, at)
        if current is None:
            return None
        merged = merge_record(current.raw, change)
        self._put(sid, merged, expires_ms, at)
        return merged

    async def renew(self, sid: str, renewal: Renewal) -> None:
        await self.load(sid, renewal)

    async def delete(self, *sids: str) -> None:
        for sid in sids:
            self._records.pop(sid, None)

    async def scan(self, batch: int = 500) -> AsyncIterator[list[str]]:
        at, found = now_ms(), []
        for sid, entry in list(self._records.items()):
            if entry.deadline is None or entry.deadline > at:
                found.append(sid)
                if len(found) >= batch:
                    yield found
                    found = []
        if found:
            yield found

    async def deadlines(self, sids: Sequence[str]) -> list[int | None]:
        at = now_ms()
        return [None if (entry := self._live(sid, at)) is None else entry.deadline for sid in sids]

    async def purge_expired(self) -> int:
        """Drop expired entries, a slice at a time so that requests keep being served meanwhile."""
        purged, sids = 0, list(self._records)
        for offset in range(0, len(sids), _PRUNE_SLICE):
            at = now_ms()
            for sid in sids[offset : offset + _PRUNE_SLICE]:
                entry = self._records.get(sid)
                if entry is not None and entry.deadline is not None and entry.deadline <= at:
                    del self._records[sid]
                    purged += 1
            await asyncio.sleep(0)
        return purged

    async def index_add(self, owner: str, sid: str) -> None:
        self._owners.setdefault(owner, set()).add(sid)

    async def index_remove(self, owner: str, *sids: str) -> None:
        members = self._owners.get(owner)
        if members is not None:
            members.difference_update(sids)
            if not members:
                del self._owners[owner]

    async def index_members(self, owner: str) -> list[str]:
        return sorted(self._owners.get(owner, ()))

    async def ping(self) -> None:
        """Always reachable: the memory is this process's own."""

    async def close(self) -> None:
        if self._pruning is not None:
            self._pruning.cancel()
