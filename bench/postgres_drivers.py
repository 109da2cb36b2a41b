"""asyncpg against psycopg 3 (+ psycopg_pool) on the PostgreSQL store's own statements.

    python -m bench.postgres_drivers [--url postgresql://postgres@127.0.0.1:5432/postgres]

Creates a database of its own on that server (dropped at the end), fills connect-pg-simple's
table, then runs each statement the store sends per request (the read that renews and returns
`sess`, the merge of a change, an insert, a delete) through each driver with 1 and with 16
concurrent tasks. Rounds alternate between the drivers so that load from other processes on the
machine falls on both alike; the table shows the median over the rounds of:

- client CPU µs per statement (this process's CPU time / statements: driver + event loop),
- server CPU µs per statement (the backends' on-CPU time from /proc/<pid>/schedstat),
- latency µs (median and p90 of each statement's await),
- statements per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from psycopg_pool import AsyncConnectionPool

from sessions.expiry import iso_from_ms
from sessions.stores import postgres_sql as sql
from sessions.stores.postgres_pool import no_reset

STATEMENTS = ("read+renew", "merge", "insert", "delete")
ROWS = 10_000
DAY_MS = 86_400_000


def record(now_ms: int, views: int) -> str:
    """A record as express writes it for a one-day cookie, with a little data."""
    expires = iso_from_ms(now_ms + DAY_MS)
    cookie = f'{{"originalMaxAge":{DAY_MS},"expires":"{expires}","httpOnly":true,"path":"/"}}'
    return f'{{"cookie":{cookie},"_owner":"user:{views % 97}","views":{views},"cart":[1,2,3]}}'


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def numbered_to_named(statement: str) -> str:
    """`$1` → `%(p1)s`: psycopg's placeholders (a parameter may be used twice); `%` → `%%`."""
    return re.sub(r"\$(\d+)", r"%(p\1)s", statement.replace("%", "%%"))


class Driver:
    """One way of sending a statement and getting its first column back."""

    name: str

    async def open(self, url: str, size: int) -> None: ...
    async def close(self) -> None: ...
    async def value(self, statement: str, *args: Any) -> Any: ...
    async def backend_pids(self) -> list[int]: ...


class Asyncpg(Driver):
    """asyncpg's pool; statements are prepared once per connection (its statement cache)."""

    def __init__(self, reset_on_release: bool = False) -> None:
        self.reset_on_release = reset_on_release
        self.name = "asyncpg (default reset)" if reset_on_release else "asyncpg"
        self.pool: asyncpg.Pool | None = None

    async def open(self, url: str, size: int) -> None:
        self.pool = await asyncpg.create_pool(
            url,
            min_size=size,
            max_size=size,
            reset=None if self.reset_on_release else no_reset,
            server_settings={"application_name": "bench " + self.name},
        )

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def value(self, statement: str, *args: Any) -> Any:
        assert self.pool is not None
        async with self.pool.acquire() as connection:
            return await connection.fetchval(statement, *args)

    async def backend_pids(self) -> list[int]:
        assert self.pool is not None
        return await _pids("bench " + self.name, self.value)


class Psycopg(Driver):
    """psycopg 3 with psycopg_pool, autocommit (no COMMIT round trip), prepared after 5 uses."""

    name = "psycopg 3"

    def __init__(self) -> None:
        self.pool: AsyncConnectionPool | None = None
        self.named: dict[str, str] = {}

    async def open(self, url: str, size: int) -> None:
        self.pool = AsyncConnectionPool(
            url,
            min_size=size,
            max_size=size,
            kwargs={"autocommit": True, "application_name": "bench psycopg"},
            open=False,
        )
        await self.pool.open(wait=True)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def value(self, statement: str, *args: Any) -> Any:
        assert self.pool is not None
        named = self.named.get(statement)
        if named is None:
            named = self.named[statement] = numbered_to_named(statement)
        params = {f"p{n}": arg for n, arg in enumerate(args, 1)}
        async with self.pool.connection() as connection:
            cursor = await connection.execute(named, params)  # type: ignore[arg-type]
            row = await cursor.fetchone() if cursor.description else None
            return None if row is None else row[0]

    async def backend_pids(self) -> list[int]:
        return await _pids("bench psycopg", self.value)


async def _pids(application: str, value: Callable[..., Awaitable[Any]]) -> list[int]:
    found = await value(
        "SELECT array_agg(pid) FROM pg_stat_activity WHERE application_name = $1::text",
        application,
    )
    return list(found or [])


def server_cpu_ns(pids: Sequence[int]) -> int:
    """On-CPU nanoseconds of these backends so far (they run on this machine)."""
    total = 0
    for pid in pids:
        with suppress(OSError), open(f"/proc/{pid}/schedstat") as handle:
            total += int(handle.read().split()[0])
    return total


@dataclass
class Cell:
    """The rounds of one (driver, concurrency, statement)."""

    client_us: list[float] = field(default_factory=list)
    server_us: list[float] = field(default_factory=list)
    p50_us: list[float] = field(default_factory=list)
    p90_us: list[float] = field(default_factory=list)
    per_s: list[float] = field(default_factory=list)


class Workload:
    """The store's statements with realistic arguments."""

    def __init__(self, table: sql.Statements, sids: list[str]) -> None:
        self.sql = table
        self.sids = sids
        self.inserted: list[str] = []
        self.counter = 0

    def arguments(self, statement: str) -> tuple[str, tuple[Any, ...]]:
        now = now_ms()
        self.counter += 1
        if statement == "read+renew":
            return self.sql.renew, (random.choice(self.sids), now, DAY_MS, DAY_MS)
        if statement == "merge":
            cookie = json.loads(record(now, 0))["cookie"]
            cookie_text = json.dumps(cookie, separators=(",", ":"))
            return self.sql.apply, (
                random.choice(self.sids),
                cookie_text,
                ["views"],
                ['"views"'],
                [str(self.counter)],
                [],
                now + DAY_MS,
                now,
            )
        if statement == "insert":
            sid = secrets.token_urlsafe(24)
            self.inserted.append(sid)
            return self.sql.write, (sid, record(now, self.counter), now + DAY_MS)
        sid = self.inserted.pop() if self.inserted else secrets.token_urlsafe(24)
        return self.sql.delete, ([sid],)


async def run_cell(driver: Driver, work: Workload, statement: str, total: int, tasks: int) -> Cell:
    latencies: list[float] = []
    prepared = [work.arguments(statement) for _ in range(total)]
    if statement == "delete":
        random.shuffle(prepared)
    queue = iter(prepared)

    async def worker() -> None:
        for text, args in queue:
            started = time.perf_counter()
            await driver.value(text, *args)
            latencies.append(time.perf_counter() - started)

    pids = await driver.backend_pids()
    server_before = server_cpu_ns(pids)
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    server = (server_cpu_ns(pids) - server_before) / 1e9
    latencies.sort()
    cell = Cell()
    cell.client_us.append(cpu / total * 1e6)
    cell.server_us.append(server / total * 1e6)
    cell.p50_us.append(latencies[len(latencies) // 2] * 1e6)
    cell.p90_us.append(latencies[int(len(latencies) * 0.9)] * 1e6)
    cell.per_s.append(total / wall)
    return cell


async def main(url: str, rounds: int, total: int, concurrency: Sequence[int]) -> None:
    database = f"bench_pg_drivers_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    db_url = url.rsplit("/", 1)[0] + "/" + database
    try:
        await measure(db_url, rounds, total, concurrency)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def measure(url: str, rounds: int, total: int, concurrency: Sequence[int]) -> None:
    table = sql.Statements("session", None)
    setup = await asyncpg.connect(url)
    for statement in (*table.create_table, *table.create_owners):
        await setup.execute(statement)
    sids = [secrets.token_urlsafe(24) for _ in range(ROWS)]
    now = now_ms()
    await setup.executemany(
        table.write, [(sid, record(now, n), now + DAY_MS) for n, sid in enumerate(sids)]
    )
    await setup.execute("VACUUM ANALYZE session")
    await setup.close()

    drivers: list[Driver] = [Asyncpg(), Psycopg(), Asyncpg(reset_on_release=True)]
    results: dict[tuple[str, int, str], Cell] = {}
    for tasks in concurrency:
        for driver in drivers:
            await driver.open(url, tasks)
        work = {driver.name: Workload(table, sids) for driver in drivers}
        for driver in drivers:  # warm up: prepared statements, pool connections
            for statement in STATEMENTS:
                await run_cell(driver, work[driver.name], statement, 200, tasks)
        for round_number in range(rounds):
            order = drivers if round_number % 2 == 0 else drivers[::-1]
            for driver in order:
                for statement in STATEMENTS:
                    cell = await run_cell(driver, work[driver.name], statement, total, tasks)
                    into = results.setdefault((driver.name, tasks, statement), Cell())
                    for name in ("client_us", "server_us", "p50_us", "p90_us", "per_s"):
                        getattr(into, name).extend(getattr(cell, name))
        for driver in drivers:
            await driver.close()
    report(results, drivers, concurrency, rounds, total)


def report(
    results: dict[tuple[str, int, str], Cell],
    drivers: Sequence[Driver],
    concurrency: Sequence[int],
    rounds: int,
    total: int,
) -> None:
    med = statistics.median
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"median of {rounds} rounds of {total} statements; µs per statement; load average {load}")
    print(
        f"{'statement':<11} {'tasks':>5} {'driver':<24} {'client CPU':>10} {'server CPU':>10}"
        f" {'p50 lat':>8} {'p90 lat':>8} {'stmt/s':>8}"
    )
    for tasks in concurrency:
        for statement in STATEMENTS:
            for driver in drivers:
                cell = results[(driver.name, tasks, statement)]
                print(
                    f"{statement:<11} {tasks:>5} {driver.name:<24} {med(cell.client_us):>10.1f}"
                    f" {med(cell.server_us):>10.1f} {med(cell.p50_us):>8.0f}"
                    f" {med(cell.p90_us):>8.0f} {med(cell.per_s):>8.0f}"
                )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a server where this benchmark may create and drop a database",
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--statements", type=int, default=2000, help="per round and cell")
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    return parser.parse_args()


if __name__ == "__main__":
    options = parse()
    run = main(options.url, options.rounds, options.statements, options.tasks)
    if options.loop == "uvloop":
        import uvloop

        uvloop.run(run)
    else:
        asyncio.run(run)
