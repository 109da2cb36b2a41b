"""MemoryStore: one process's dict. For development and tests; sessions vanish on restart."""

from __future__ import annotations

import time
from collections.abc import Sequence

from .base import TTL, Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """Sessions in this process's memory, expired entries pruned as time passes (bounded memory).

    ::

        Sessions(app, store=MemoryStore())
    """

    def __init__(self, *, ttl: TTL = 86400, prune_interval: float = 60.0) -> None:
        super().__init__(ttl=ttl)
        self._records: dict[str, tuple[bytes, float | None]] = {}
        self._owners: dict[str, set[str]] = {}
        self._prune_interval = prune_interval
        self._next_prune = time.monotonic() + prune_interval

    @staticmethod
    def _deadline(ttl: int | None) -> float | None:
        return None if ttl is None else time.monotonic() + ttl

    def _live(self, sid: str) -> bytes | None:
        entry = self._records.get(sid)
        if entry is None:
            return None
        raw, deadline = entry
        if deadline is not None and deadline <= time.monotonic():
            del self._records[sid]
            return None
        return raw

    async def purge_expired(self) -> int:
        """Drop every expired entry now; returns how many."""
        return self.prune()

    def prune(self) -> int:
        """Drop every expired entry now; returns how many."""
        now = time.monotonic()
        expired = [
            sid
            for sid, (_, deadline) in self._records.items()
            if deadline is not None and deadline <= now
        ]
        for sid in expired:
            del self._records[sid]
        self._next_prune = now + self._prune_interval
        return len(expired)

    def _store(self, sid: str, raw: bytes, ttl: int | None) -> None:
        self._records[sid] = (raw, self._deadline(ttl))
        if time.monotonic() >= self._next_prune:
            self.prune()

    async def read(self, sid: str) -> bytes | None:
        return self._live(sid)

    async def write(self, sid: str, raw: bytes, ttl: int | None) -> None:
        self._store(sid, raw, ttl)

    async def replace(
        self, sid: str, expected: bytes, raw: bytes, ttl: int | None
    ) -> bool | bytes | None:
        current = self._live(sid)
        if current is None or current != expected:
            return current
        self._store(sid, raw, ttl)
        return True

    async def remove(self, *sids: str) -> None:
        for sid in sids:
            self._records.pop(sid, None)

    async def expire(self, sid: str, ttl: int | None) -> None:
        raw = self._live(sid)
        if raw is not None:
            self._records[sid] = (raw, self._deadline(ttl))

    async def scan(self) -> list[str]:
        return [sid for sid in list(self._records) if self._live(sid) is not None]

    async def read_many(self, sids: Sequence[str]) -> list[bytes | None]:
        return [self._live(sid) for sid in sids]

    async def remaining(self, sids: Sequence[str]) -> list[float | None]:
        now = time.monotonic()
        result: list[float | None] = []
        for sid in sids:
            entry = self._records.get(sid)
            result.append(None if entry is None or entry[1] is None else max(entry[1] - now, 0.0))
        return result

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
