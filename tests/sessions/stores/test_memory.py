"""MemoryStore: one process's sessions, expired ones pruned in the background, a slice at a time."""

from __future__ import annotations

import asyncio

from sessions import MemoryStore
from sessions.expiry import now_ms

RECORD = b'{"cookie":{"originalMaxAge":null,"expires":null}}'


async def test_expired_entries_are_pruned_in_the_background_without_blocking_writes() -> None:
    store = MemoryStore(prune_interval=0)
    for n in range(10_000):
        await store.write(f"dead{n}", RECORD, now_ms() - 1)  # already expired, never read again
    await store.write("live", RECORD, now_ms() + 60_000)
    deadline = asyncio.get_running_loop().time() + 10
    while await store.purge_expired() or len(store._records) > 1:  # noqa: SLF001 - the dict is the memory
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert await store.ids() == ["live"]


def test_a_memory_store_says_other_processes_cannot_see_it() -> None:
    assert MemoryStore.shared is False
