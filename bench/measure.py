"""One measurement: prime returning visitors, run wrk on a page, and count what it cost.

Besides wrk's throughput and latency: the server's CPU per request (its process tree, from
/proc), wrk's own CPU, and for stacks on a store (Redis, PostgreSQL) the commands or statements,
their µs inside the store and the store's CPU, all as deltas over the timed run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench import client
from bench.cpu import TreeCpu, children_cpu_seconds
from bench.stacks import Stack
from bench.store_cost import StoreCost, StoreProbe
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
    # Store calls during the wrk run: Redis commands (INFO commandstats) or PostgreSQL
    # statements (pg_stat_statements), by name.
    commands: dict[str, int]
    server_cpu_s: float | None = None  # utime + stime of the server's process tree
    client_cpu_s: float | None = None  # wrk's utime + stime
    store: str | None = None  # "redis" or "postgres"
    store_cpu_s: float | None = None  # the store's processes' utime + stime
    store_usec: dict[str, float] = field(default_factory=dict)  # µs executing, by name
    notes: list[str] = field(default_factory=list)
    # Per request, over untimed sequential requests after round 1: what the app sent (MONITOR,
    # pg_stat_statements' top-level calls), and what ran inside the store on its behalf.
    round_trips: dict[str, float] | None = None
    in_scripts: dict[str, float] | None = None

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
    probe: StoreProbe | None,
) -> Measurement:
    """Measure `stack` (already listening on port, its server process is `pid`) on /count or /read.

    `probe` is the stack's view of its store (None for stacks without one).
    """
    if page not in PAGES:
        raise ValueError(f"page must be one of {PAGES}")
    # Returning visitors: one primed session per connection, each sent round-robin.
    cookies = client.prime(port, load.connections) if stack.sessions else []
    tree = TreeCpu.of(pid)
    before = probe.snapshot() if probe is not None else None
    wrk_before, server_before = children_cpu_seconds(), tree.seconds()
    result = run_wrk(
        f"http://127.0.0.1:{port}/{page}",
        cookies,
        duration=load.duration,
        connections=load.connections,
        cpu=load.client_cpu,
    )
    server_cpu, wrk_cpu = tree.seconds() - server_before, children_cpu_seconds() - wrk_before
    cost = StoreCost()
    if probe is not None and before is not None:
        cost = StoreCost.between(before, probe.snapshot())
    measurement = Measurement(
        server,
        stack.name,
        page,
        round_,
        result,
        cost.calls,
        server_cpu_s=server_cpu,
        client_cpu_s=wrk_cpu,
        store=stack.store if probe is not None else None,
        store_cpu_s=cost.cpu_s,
        store_usec=cost.usec,
    )
    check(measurement, stack, port, cookies)
    if probe is not None and round_ == 0 and cookies:
        seen = probe.traffic(MONITORED_REQUESTS, lambda: client.get(port, f"/{page}", cookies[-1]))
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
