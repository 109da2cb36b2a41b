"""The benchmark's own redis-server (deploy.redis_server, no persistence) and what it counts."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import redis

from bench.monitor import Traffic, traffic
from bench.process import pinned
from deploy.redis_server import RedisServer

# Commands the harness itself sends while measuring; they are not the stack's.
HARNESS_COMMANDS = frozenset({"info", "ping", "memory|usage", "scan", "echo", "monitor"})


class PrivateRedis:
    """A private redis-server with no persistence, pinned to `cpu`, stopped by PID."""

    def __init__(self, cpu: str | None, log_dir: Path) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-redis-")
        self.server = RedisServer(
            Path(self._dir.name),
            durable=False,
            wrapper=pinned((), cpu),
            log=log_dir / "redis-server.log",
        )
        self.port = self.server.port
        self.client: redis.Redis | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()
        self.client = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        self.server.stop()
        self._dir.cleanup()

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _redis(self) -> redis.Redis:
        if self.client is None:
            raise RuntimeError("the private redis-server is not running")
        return self.client

    def command_counts(self) -> dict[str, int]:
        """Calls per command since start, from INFO commandstats, without the harness' own."""
        stats = self._redis().info("commandstats")
        counts: dict[str, int] = {}
        for key, value in stats.items():
            name = key.removeprefix("cmdstat_")
            if name not in HARNESS_COMMANDS:
                counts[name] = int(value["calls"])
        return counts

    def traffic(self, requests: int, send: Callable[[], object]) -> Traffic:
        """Round trips and script-inner commands per request, from MONITOR (untimed)."""
        return traffic(self.port, self._redis(), requests, send)

    def keys(self, prefix: str) -> list[str]:
        return list(self._redis().scan_iter(match=prefix + "*", count=1000))

    def memory_per_key(self, prefix: str) -> tuple[int, int]:
        """(median MEMORY USAGE in bytes, number of keys) over the keys under prefix."""
        client = self._redis()
        sizes = [int(client.memory_usage(key, samples=0) or 0) for key in self.keys(prefix)]
        if not sizes:
            return 0, 0
        return int(statistics.median(sizes)), len(sizes)


def command_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        name: after.get(name, 0) - before.get(name, 0)
        for name in sorted(set(before) | set(after))
        if after.get(name, 0) - before.get(name, 0) > 0
    }
