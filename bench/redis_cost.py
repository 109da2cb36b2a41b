"""What a stack's requests cost Redis: commands and their server-side µs, and the process's CPU.

`INFO commandstats` gives, per command, the calls and the µs Redis spent executing them (a script's
EVALSHA includes the commands it runs, which are counted again under their own names). The
process's CPU from /proc adds what commandstats leaves out: parsing, networking, the event loop.
Round trips come from MONITOR (`bench.monitor`), which tells commands sent from commands a Lua
script ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.cpu import cpu_seconds
from bench.redis_server import HARNESS_COMMANDS, PrivateRedis
from bench.store_cost import StoreSnapshot, Traffic


def snapshot(redis: PrivateRedis) -> StoreSnapshot:
    """Calls and µs per command since start (without the harness's own), and Redis's CPU so far."""
    if redis.client is None:
        raise RuntimeError("the private redis-server is not running")
    stats = redis.client.info("commandstats")
    calls: dict[str, int] = {}
    usec: dict[str, float] = {}
    for key, value in stats.items():
        name = key.removeprefix("cmdstat_")
        if name not in HARNESS_COMMANDS:
            calls[name] = int(value["calls"])
            usec[name] = float(value["usec"])
    pid = redis.server.pid
    return StoreSnapshot(calls, usec, None if pid is None else cpu_seconds(pid))


@dataclass(frozen=True)
class RedisProbe:
    """The private redis-server as a stack sees it (every stack's commands: one runs at a time)."""

    redis: PrivateRedis

    def snapshot(self) -> StoreSnapshot:
        return snapshot(self.redis)

    def traffic(self, requests: int, send: Callable[[], object]) -> Traffic:
        return self.redis.traffic(requests, send)
