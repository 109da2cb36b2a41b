"""One measurement: prime returning visitors, run wrk on a page, count the Redis commands."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench import client
from bench.redis_server import PrivateRedis, command_delta
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
    stack: str
    page: str
    round: int
    wrk: WrkResult
    commands: dict[str, int]  # Redis calls during the wrk run (INFO commandstats), per command
    notes: list[str] = field(default_factory=list)
    round_trips: dict[str, float] | None = None  # per request, from MONITOR (first round only)
    in_scripts: dict[str, float] | None = None  # commands run inside Lua scripts, per request

    @property
    def commands_per_request(self) -> float:
        requests = max(self.wrk.requests, 1)
        return sum(self.commands.values()) / requests


def measure(
    stack: Stack, port: int, page: str, round_: int, load: Load, redis: PrivateRedis | None
) -> Measurement:
    """Measure `stack` (already listening on port) on /count or /read."""
    if page not in PAGES:
        raise ValueError(f"page must be one of {PAGES}")
    # Returning visitors: one primed session per connection, each sent round-robin.
    cookies = client.prime(port, load.connections) if stack.sessions else []
    before = redis.command_counts() if redis is not None and stack.redis else {}
    result = run_wrk(
        f"http://127.0.0.1:{port}/{page}",
        cookies,
        duration=load.duration,
        connections=load.connections,
        cpu=load.client_cpu,
    )
    after = redis.command_counts() if redis is not None and stack.redis else {}
    measurement = Measurement(stack.name, page, round_, result, command_delta(before, after))
    check(measurement, stack, port, cookies)
    if redis is not None and stack.redis and round_ == 0 and cookies:
        seen = redis.traffic(MONITORED_REQUESTS, lambda: client.get(port, f"/{page}", cookies[-1]))
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
