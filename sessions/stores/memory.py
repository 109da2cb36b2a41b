"""MemoryStore: one process's dict. For development and tests; sessions vanish on restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from ..expiry import Renewal, effective_deadline, now_ms, renew_record
from ..record import Change, merge_record
from .base import TTL, Store

__all__ = ["MemoryStore"]

# Pruning walks the dict in slices this long, yielding to the event loop in between.
_PRUNE_SLICE = 2000


class MemoryStore(Store):
    """Sessions in this process's memory; expired entries are pruned in the background (bounded memory).

    ::

        Sessions(app, store=MemoryStore())

    Every operation runs without awaiting in between, so each one is atomic within the process.
    """

    shared = False

    def __init__(self, *, ttl: TTL = 86400, prune_interval: float = 60.0) -> None:
        super().__init__(ttl=ttl)
        self._records: dict[str, tuple[bytes, int | None]] = {}
        self._owners: dict[str, set[str]] = {}
        self._prune_interval_ms = int(prune_interval * 1000)
        self._next_prune = now_ms() + self._prune_interval_ms
        self._pruning: asyncio.Task[int] | None = None

    def _live(self, sid: str, at: int) -> bytes | None:
        entry = self._records.get(sid)
        if entry is None:
            return None
        raw, deadline = entry
        if deadline is not None and deadline <= at:
            del self._records[sid]
            return None
        return raw

    def _put(self, sid: str, raw: bytes, deadline: int | None, at: int) -> None:
        self._records[sid] = (raw, effective_deadline(raw, deadline))
        if at >= self._next_prune and self._pruning is None:
            self._next_prune = at + self._prune_interval_ms
            self._pruning = asyncio.get_running_loop().create_task(self.purge_expired())
            self._pruning.add_done_callback(self._pruned)

    def _pruned(self, task: asyncio.Task[int]) -> None:
        self._pruning = None
        if not task.cancelled():
            task.exception()

    async def load(self, sid: str, renew: Renewal | None = None) -> bytes | None:
        at = now_ms() if renew is None else renew.now_ms
        raw = self._live(sid, at)
        if raw is None or renew is None:
            return raw
        renewed = renew_record(raw, renew)
        if renewed is None:
            del self._records[sid]
            return None
        if renewed[1] is not None:
            self._records[sid] = (renewed[0], renewed[1])
        return renewed[0]

    async def load_many(self, sids: Sequence[str]) -> list[bytes | None]:
        at = now_ms()
        return [self._live(sid, at) for sid in sids]

    async def write(self, sid: str, record: bytes, expires_ms: int | None) -> None:
        self._put(sid, record, expires_ms, now_ms())

    async def apply(self, sid: str, change: Change, expires_ms: int | None) -> bytes | None:
        at = now_ms()
        current = self._live(sid, at)
        if current is None:
            return None
        merged = merge_record(current, change)
        self._put(sid, merged, expires_ms, at)
        return merged

    async def renew(self, sid: str, renewal: Renewal) -> None:
        await self.load(sid, renewal)

    async def delete(self, *sids: str) -> None:
        for sid in sids:
            self._records.pop(sid, None)

    async def scan(self, batch: int = 500) -> AsyncIterator[list[str]]:
        at, found = now_ms(), []
        for sid, (_, deadline) in list(self._records.items()):
            if deadline is None or deadline > at:
                found.append(sid)
                if len(found) >= batch:
                    yield found
                    found = []
        if found:
            yield found

    async def deadlines(self, sids: Sequence[str]) -> list[int | None]:
        at = now_ms()
        return [None if self._live(sid, at) is None else self._records[sid][1] for sid in sids]

    async def purge_expired(self) -> int:
        """Drop expired entries, a slice at a time so that requests keep being served meanwhile."""
        purged, sids = 0, list(self._records)
        for offset in range(0, len(sids), _PRUNE_SLICE):
            at = now_ms()
            for sid in sids[offset : offset + _PRUNE_SLICE]:
                entry = self._records.get(sid)
                if entry is not None and entry[1] is not None and entry[1] <= at:
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
