"""What a stack's requests cost its store: calls, their µs inside the store, the store's CPU.

Each store the benchmark runs (the private redis-server, the private PostgreSQL) gives a probe
per stack: `snapshot()` before and after a timed run, and `traffic()` over a few untimed
sequential requests for the round trips each request makes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Traffic:
    requests: int
    round_trips: dict[str, float]  # commands or statements sent by the app, per request
    in_scripts: dict[str, float]  # run inside the store on the app's behalf (Lua), per request


@dataclass(frozen=True)
class StoreSnapshot:
    calls: dict[str, int]  # per command (Redis) or statement (PostgreSQL), since start
    usec: dict[str, float]  # µs the store spent executing them, since start
    cpu_s: float | None  # the store's processes' utime + stime


@dataclass
class StoreCost:
    """The difference between two snapshots: one timed run's share of the store."""

    calls: dict[str, int] = field(default_factory=dict)
    usec: dict[str, float] = field(default_factory=dict)
    cpu_s: float | None = None

    @classmethod
    def between(cls, before: StoreSnapshot, after: StoreSnapshot) -> StoreCost:
        names = sorted(set(before.calls) | set(after.calls))
        calls = {name: after.calls.get(name, 0) - before.calls.get(name, 0) for name in names}
        calls = {name: count for name, count in calls.items() if count > 0}
        usec = {name: after.usec.get(name, 0) - before.usec.get(name, 0) for name in calls}
        cpu = (
            after.cpu_s - before.cpu_s
            if after.cpu_s is not None and before.cpu_s is not None
            else None
        )
        return cls(calls, usec, cpu)


class StoreProbe(Protocol):
    """One stack's view of the store it talks to."""

    def snapshot(self) -> StoreSnapshot: ...

    def traffic(self, requests: int, send: Callable[[], object]) -> Traffic: ...
