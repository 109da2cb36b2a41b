"""One measurement: prime returning visitors, run wrk on a page, and count what it cost.

Besides wrk's throughput and latency: the server's CPU per request (its process tree, from
/proc), wrk's own CPU, and for Redis stacks the commands, their µs inside Redis and the
redis-server process's CPU, all as deltas over the timed run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench import client
from bench.cpu import TreeCpu, children_cpu_seconds
from bench.redis_cost import RedisCost, snapshot
from bench.redis_server import PrivateRedis
from bench.stacks import Stack
from bench.wrk import WrkResult, run_wrk

PAGES = ("count", "read")
MONITORED_REQUESTS = 20


@dataclass(frozen=True)
class Load:
    duration: float
    connections: int
    client_cpu: str | None


@dataclass
class Measurement:
    server: str  # the ASGI server of the run's group (express stacks ran alongside it, on node)
    stack: str
    page: str
    round: int
    wrk: WrkResult
    commands: dict[str, int]  # Redis calls during the wrk run (INFO commandstats), per command
    server_cpu_s: float | None = None  # utime + stime of the server's process tree
    client_cpu_s: float | None = None  # wrk's utime + stime
    redis_cpu_s: float | None = None  # the redis-server process's utime + stime
    redis_usec: dict[str, int] = field(default_factory=dict)  # commandstats µs, per command
    notes: list[str] = field(default_factory=list)
    round_trips: dict[str, float] | None = None  # per request, from MONITOR (first round only)
    in_scripts: dict[str, float] | None = None  # commands run inside Lua scripts, per request

    @property
    def commands_per_request(self) -> float:
        requests = max(self.wrk.requests, 1)
        return sum(self.commands.values()) / requests


def measure(
    server: str,
    stack: Stack,
    pid: int,
    port: int,
    page: str,
    round_: int,
    load: Load,
    redis: PrivateRedis | None,
) -> Measurement:
    """Measure `stack` (already listening on port, its server process is `pid`) on /count or /read."""
    if page not in PAGES:
        raise ValueError(f"page must be one of {PAGES}")
    # Returning visitors: one primed session per connection, each sent round-robin.
    cookies = client.prime(port, load.connections) if stack.sessions else []
    used = redis if stack.redis else None  # the private Redis, when this stack talks to it
    tree = TreeCpu.of(pid)
    before = snapshot(used) if used is not None else None
    wrk_before, server_before = children_cpu_seconds(), tree.seconds()
    result = run_wrk(
        f"http://127.0.0.1:{port}/{page}",
        cookies,
        duration=load.duration,
        connections=load.connections,
        cpu=load.client_cpu,
    )
    server_cpu, wrk_cpu = tree.seconds() - server_before, children_cpu_seconds() - wrk_before
    cost = RedisCost()
    if used is not None and before is not None:
        cost = RedisCost.between(before, snapshot(used))
    measurement = Measurement(
        server,
        stack.name,
        page,
        round_,
        result,
        cost.calls,
        server_cpu_s=server_cpu,
        client_cpu_s=wrk_cpu,
        redis_cpu_s=cost.cpu_s,
        redis_usec=cost.usec,
    )
    check(measurement, stack, port, cookies)
    if used is not None and round_ == 0 and cookies:
        seen = used.traffic(MONITORED_REQUESTS, lambda: client.get(port, f"/{page}", cookies[-1]))
        measurement.round_trips, measurement.in_scripts = seen.round_trips, seen.in_scripts
    return measurement


def check(measurement: Measurement, stack: Stack, port: int, cookies: list[str]) -> None:
    """Sanity of one run: no errors, and the session really persisted (or was left alone)."""
    result = measurement.wrk
    if result.requests == 0:
        raise RuntimeError(f"{stack.name} /{measurement.page}: wrk completed no request")
    if result.status_errors:
        measurement.notes.append(f"{result.status_errors} non-2xx/3xx responses")
    if result.socket_errors or result.timeouts:
        measurement.notes.append(
            f"{result.socket_errors} socket errors, {result.timeouts} timeouts"
        )
    if not cookies:
        return
    seen = client.views(client.get(port, "/read", cookies[0]))
    if measurement.page == "count" and seen <= 1:
        measurement.notes.append(f"visit counter did not persist (views={seen} after the run)")
    if measurement.page == "read" and seen != 1:
        measurement.notes.append(f"read-only page changed the session (views={seen})")
