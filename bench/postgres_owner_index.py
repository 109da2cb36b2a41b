"""The PostgreSQL store's owner index: an expression index on `sess->>'_owner'` against a
companion table, both beside connect-pg-simple's unchanged table.

    python -m bench.postgres_owner_index [--url postgresql://postgres@127.0.0.1:5432/postgres]

Fills 100,000 sessions (a third signed in, 5 per user) in a database of its own, then measures
per statement the server's CPU (the backend's /proc/<pid>/schedstat) and the latency seen by
asyncpg, median of several rounds, for three layouts: no owner index at all (the floor), the
expression index, and a companion table `session_owner (owner, sid)` that the store would fill
with an extra statement at sign-in and empty at sign-out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from bench.postgres_drivers import DAY_MS, now_ms, record, server_cpu_ns
from sessions.stores import postgres_sql as sql

ROWS = 100_000
PER_USER = 5

COMPANION = (
    "CREATE TABLE session_owner (owner text NOT NULL, sid varchar NOT NULL,"
    " PRIMARY KEY (owner, sid))"
)
COMPANION_ADD = "INSERT INTO session_owner (owner, sid) VALUES ($1, $2) ON CONFLICT DO NOTHING"
COMPANION_REMOVE = "DELETE FROM session_owner WHERE owner = $1 AND sid = ANY ($2::varchar[])"
COMPANION_MEMBERS = "SELECT sid FROM session_owner WHERE owner = $1"


async def fill(connection: asyncpg.Connection, table: sql.Statements, layout: str) -> list[str]:
    for statement in table.create_table:
        await connection.execute(statement)
    now = now_ms()
    sids = [secrets.token_urlsafe(24) for _ in range(ROWS)]
    rows = []
    for n, sid in enumerate(sids):
        text = record(now, n)
        if n % 3:  # two in three sessions are anonymous
            text = text.replace(f'"_owner":"user:{n % 97}",', "")
        else:
            text = text.replace(f'"user:{n % 97}"', f'"user:{n // (3 * PER_USER)}"')
        rows.append((sid, text, now + DAY_MS))
    await connection.executemany(table.write, rows)
    if layout == "expression index":
        await connection.execute(table.create_owner_index)
    elif layout == "companion table":
        await connection.execute(COMPANION)
        await connection.executemany(
            COMPANION_ADD,
            [(f"user:{n // (3 * PER_USER)}", sid) for n, sid in enumerate(sids) if n % 3 == 0],
        )
    await connection.execute("VACUUM ANALYZE")
    return sids


async def measure(
    connection: asyncpg.Connection,
    pid: int,
    statement: str,
    arguments: Callable[[], tuple[Any, ...]],
    total: int,
) -> tuple[float, float]:
    prepared = [arguments() for _ in range(total)]
    before = server_cpu_ns([pid])
    started = time.perf_counter()
    for args in prepared:
        await connection.fetchval(statement, *args)
    wall = time.perf_counter() - started
    return (server_cpu_ns([pid]) - before) / total / 1000, wall / total * 1e6


async def run(url: str, rounds: int, total: int) -> None:
    admin = await asyncpg.connect(url)
    layouts = ("no owner index", "expression index", "companion table")
    databases = {layout: f"bench_owner_{secrets.token_hex(4)}" for layout in layouts}
    connections: dict[str, asyncpg.Connection] = {}
    try:
        sids: dict[str, list[str]] = {}
        table = sql.Statements("session", None)
        for layout, database in databases.items():
            await admin.execute(f'CREATE DATABASE "{database}"')
            connection = await asyncpg.connect(url.rsplit("/", 1)[0] + "/" + database)
            connections[layout] = connection
            sids[layout] = await fill(connection, table, layout)
        users = ROWS // (3 * PER_USER)
        cookie = '{"originalMaxAge":86400000,"expires":"2030-01-01T00:00:00.000Z","httpOnly":true,"path":"/"}'

        def work(layout: str) -> dict[str, tuple[str, Callable[[], tuple[Any, ...]]]]:
            pool = sids[layout]

            def renew() -> tuple[Any, ...]:
                now = now_ms()
                return random.choice(pool), now, sql.json_now(now), DAY_MS, DAY_MS

            def sign_in() -> tuple[Any, ...]:
                now = now_ms()
                owner = f'"user:{random.randrange(users)}"'
                return (random.choice(pool), cookie, ["_owner", "views"], [owner, "1"], [],
                        now + DAY_MS, now, sql.json_now(now))  # fmt: skip

            cells = {
                "read+renew": (table.renew, renew),
                "merge (sign-in)": (table.apply, sign_in),
            }
            if layout == "expression index":
                cells["members"] = (table.owned, lambda: (f"user:{random.randrange(users)}",))
            if layout == "companion table":
                cells["index add"] = (
                    COMPANION_ADD,
                    lambda: (f"user:{random.randrange(users)}", secrets.token_urlsafe(24)),
                )
                cells["members"] = (COMPANION_MEMBERS, lambda: (f"user:{random.randrange(users)}",))
            return cells

        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        pids = {
            layout: await c.fetchval("SELECT pg_backend_pid()") for layout, c in connections.items()
        }
        for layout, connection in connections.items():  # warm up
            for statement, arguments in work(layout).values():
                await measure(connection, pids[layout], statement, arguments, 50)
        for round_number in range(rounds):
            order = list(layouts) if round_number % 2 == 0 else list(reversed(layouts))
            for layout in order:
                for name, (statement, arguments) in work(layout).items():
                    results.setdefault((layout, name), []).append(
                        await measure(
                            connections[layout], pids[layout], statement, arguments, total
                        )
                    )
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"{ROWS} sessions, median of {rounds} rounds of {total}; load average {load}")
        print(f"{'layout':<18} {'statement':<16} {'server CPU µs':>13} {'latency µs':>10}")
        for (layout, name), samples in results.items():
            server = statistics.median(s for s, _ in samples)
            wall = statistics.median(w for _, w in samples)
            print(f"{layout:<18} {name:<16} {server:>13.1f} {wall:>10.1f}")
        sizes = await connections["expression index"].fetchval(
            "SELECT pg_relation_size('\"IDX_session_owner\"')"
        )
        companion = await connections["companion table"].fetchval(
            "SELECT pg_total_relation_size('session_owner')"
        )
        print(
            f"expression index: {sizes / 1024:.0f} KiB; companion table + its index: {companion / 1024:.0f} KiB"
        )
    finally:
        for connection in connections.values():
            await connection.close()
        for database in databases.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--statements", type=int, default=1000)
    return parser.parse_args()


if __name__ == "__main__":
    options = parse()
    asyncio.run(run(options.url, options.rounds, options.statements))
