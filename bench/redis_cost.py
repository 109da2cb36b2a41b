"""What a stack's requests cost Redis: commands and their server-side µs, and the process's CPU.

`INFO commandstats` gives, per command, the calls and the µs Redis spent executing them (a script's
EVALSHA includes the commands it runs, which are counted again under their own names). The
process's CPU from /proc adds what commandstats leaves out: parsing, networking, the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.cpu import cpu_seconds
from bench.redis_server import HARNESS_COMMANDS, PrivateRedis


@dataclass(frozen=True)
class RedisSnapshot:
    calls: dict[str, int]
    usec: dict[str, int]
    cpu_s: float | None  # the redis-server process's utime + stime


@dataclass
class RedisCost:
    """The difference between two snapshots: one timed run's share of Redis."""

    calls: dict[str, int] = field(default_factory=dict)
    usec: dict[str, int] = field(default_factory=dict)
    cpu_s: float | None = None

    @classmethod
    def between(cls, before: RedisSnapshot, after: RedisSnapshot) -> RedisCost:
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


def snapshot(redis: PrivateRedis) -> RedisSnapshot:
    """Calls and µs per command since start (without the harness's own), and Redis's CPU so far."""
    if redis.client is None:
        raise RuntimeError("the private redis-server is not running")
    stats = redis.client.info("commandstats")
    calls: dict[str, int] = {}
    usec: dict[str, int] = {}
    for key, value in stats.items():
        name = key.removeprefix("cmdstat_")
        if name not in HARNESS_COMMANDS:
            calls[name] = int(value["calls"])
            usec[name] = int(value["usec"])
    pid = redis.server.pid
    return RedisSnapshot(calls, usec, None if pid is None else cpu_seconds(pid))
