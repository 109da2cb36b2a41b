"""The PostgreSQL store's owner index: a companion table against an expression index on the record.

    python -m bench.postgres_owner_index [--url postgresql://postgres@127.0.0.1:5432/postgres]

Fills 100,000 sessions (a third signed in, 5 per user) in a database of its own per layout
(dropped at the end), then measures per statement the server's CPU (the backend's
/proc/<pid>/schedstat) and the latency seen by asyncpg, median of several rounds, for:

- no owner index (the floor: what connect-pg-simple's table costs alone);
- the companion table `session_owner (owner, sid)` that PostgresStore uses: a sign-in is the
  merge plus an INSERT into it, a listing reads it, a delete removes the entry in the same
  statement;
- an expression index on ``sess ->> '_owner'``: nothing extra at sign-in, but every statement
  that rewrites `sess` (each renewal, each merge) also maintains that index.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
LAYOUTS = ("no owner index", "companion table", "expression index")
OWNER = "(CASE WHEN strpos(sess::text, '\\u0000') = 0 THEN sess ->> '_owner' END)"
EXPRESSION_INDEX = (
    f'CREATE INDEX "IDX_session_owner" ON session ({OWNER}) WHERE {OWNER} IS NOT NULL'
)
EXPRESSION_MEMBERS = f"SELECT sid FROM session WHERE {OWNER} = $1::text"


async def fill(connection: asyncpg.Connection, table: sql.Statements, layout: str) -> list[str]:
    for statement in (*table.create_table, *table.create_owners):
        await connection.execute(statement)
    now = now_ms()
    sids = [secrets.token_urlsafe(24) for _ in range(ROWS)]
    rows, owners = [], []
    for n, sid in enumerate(sids):
        text = record(now, n)
        if n % 3:  # two in three sessions are anonymous
            text = text.replace(f'"_owner":"user:{n % 97}",', "")
        else:
            owner = f"user:{n // (3 * PER_USER)}"
            text = text.replace(f'"user:{n % 97}"', json.dumps(owner))
            owners.append((owner, sid))
        rows.append((sid, text, now + DAY_MS))
    await connection.executemany(table.write, rows)
    if layout == "companion table":
        await connection.executemany(table.index_add, owners)
    elif layout == "expression index":
        await connection.execute(EXPRESSION_INDEX)
    await connection.execute("VACUUM ANALYZE")
    return sids


async def measure(
    connection: asyncpg.Connection,
    pid: int,
    cell: list[tuple[str, Callable[[], tuple[Any, ...]]]],
    total: int,
) -> tuple[float, float]:
    """Server CPU µs and latency µs per unit of work (a unit may be several statements)."""
    prepared = [[(statement, arguments()) for statement, arguments in cell] for _ in range(total)]
    before = server_cpu_ns([pid])
    started = time.perf_counter()
    for unit in prepared:
        for statement, args in unit:
            await connection.fetchval(statement, *args)
    wall = time.perf_counter() - started
    return (server_cpu_ns([pid]) - before) / total / 1000, wall / total * 1e6


def workload(
    table: sql.Statements, layout: str, sids: list[str]
) -> dict[str, list[tuple[str, Callable[[], tuple[Any, ...]]]]]:
    users = ROWS // (3 * PER_USER)
    cookie = json.dumps(
        {"originalMaxAge": DAY_MS, "expires": "2030-01-01T00:00:00.000Z", "httpOnly": True},
        separators=(",", ":"),
    )
    signed_in: list[tuple[str, str]] = []  # (owner, sid) of the last sign-in

    def renew() -> tuple[Any, ...]:
        return random.choice(sids), now_ms(), DAY_MS, DAY_MS

    def sign_in() -> tuple[Any, ...]:
        sid, owner = random.choice(sids), f"user:{random.randrange(users)}"
        signed_in[:] = [(owner, sid)]
        now = now_ms()
        return sid, cookie, ["_owner"], ['"_owner"'], [json.dumps(owner)], [], now + DAY_MS, now

    def index_add() -> tuple[Any, ...]:
        return signed_in[0]

    def user() -> tuple[Any, ...]:
        return (f"user:{random.randrange(users)}",)

    cells: dict[str, list[tuple[str, Callable[[], tuple[Any, ...]]]]] = {
        "read+renew": [(table.renew, renew)],
        "sign-in": [(table.apply, sign_in)],
    }
    if layout == "companion table":
        cells["sign-in"].append((table.index_add, index_add))
        cells["list a user's"] = [(table.index_members, user)]
    if layout == "expression index":
        cells["list a user's"] = [(EXPRESSION_MEMBERS, user)]
    return cells


async def run(url: str, rounds: int, total: int) -> None:
    admin = await asyncpg.connect(url)
    databases = {layout: f"bench_owner_{secrets.token_hex(4)}" for layout in LAYOUTS}
    connections: dict[str, asyncpg.Connection] = {}
    try:
        table = sql.Statements("session", None)
        cells = {}
        for layout, database in databases.items():
            await admin.execute(f'CREATE DATABASE "{database}"')
            connection = await asyncpg.connect(url.rsplit("/", 1)[0] + "/" + database)
            connections[layout] = connection
            cells[layout] = workload(table, layout, await fill(connection, table, layout))
        pids = {
            layout: await c.fetchval("SELECT pg_backend_pid()") for layout, c in connections.items()
        }
        for layout, connection in connections.items():  # warm up: prepared statements, caches
            for cell in cells[layout].values():
                await measure(connection, pids[layout], cell, 200)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for round_number in range(rounds):
            order = LAYOUTS if round_number % 2 == 0 else LAYOUTS[::-1]
            for layout in order:
                for name, cell in cells[layout].items():
                    sample = await measure(connections[layout], pids[layout], cell, total)
                    results.setdefault((layout, name), []).append(sample)
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"{ROWS} sessions, median of {rounds} rounds of {total}; load average {load}")
        print(f"{'layout':<18} {'work':<15} {'server CPU µs':>13} {'latency µs':>10}")
        for (layout, name), samples in sorted(results.items(), key=lambda r: r[0][1]):
            server = statistics.median(s for s, _ in samples)
            wall = statistics.median(w for _, w in samples)
            print(f"{layout:<18} {name:<15} {server:>13.1f} {wall:>10.1f}")
        index_size = await connections["expression index"].fetchval(
            "SELECT pg_relation_size('\"IDX_session_owner\"')"
        )
        companion = await connections["companion table"].fetchval(
            "SELECT pg_total_relation_size('session_owner')"
        )
        print(
            f"expression index: {index_size / 1024:.0f} KiB;"
            f" companion table and its indexes: {companion / 1024:.0f} KiB"
        )
    finally:
        for connection in connections.values():
            await connection.close()
        for database in databases.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
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
