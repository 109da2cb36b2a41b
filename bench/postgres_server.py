"""The benchmark's own PostgreSQL (deploy.postgres_server), pinned, with pg_stat_statements.

Like the private redis-server, it runs on the client's core: the postmaster and every process it
has forked are pinned after start (`taskset -a -c -p`), and the backends it forks later for the
app's connections inherit the pin. Settings are PostgreSQL's defaults (fsync and
synchronous_commit on: every commit waits for its WAL flush), with pg_stat_statements preloaded
and tracking nested statements too, so that statements run inside a function would show apart
from the round trips that sent them.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from bench.cpu import cpu_seconds, cpu_seconds_with_reaped, process_tree
from deploy.postgres_server import PostgresServer

Query = LiteralString | sql.Composed | sql.SQL
# Everything else at PostgreSQL's defaults (max_connections 100 holds a pool of 10 per worker).
SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
}


def cluster_cpu_seconds(postmaster: int) -> float | None:
    """CPU of the postmaster, its live children, and the children it has reaped.

    Backends come and go with the app's pool; a backend that exits is reaped by the postmaster,
    whose cutime + cstime then hold its CPU, so a delta of this sum counts every backend that
    lived during the interval, however briefly.
    """
    own = cpu_seconds_with_reaped(postmaster)
    if own is None:
        return None
    descendants = process_tree(postmaster)[1:]
    return own + sum(cpu_seconds(pid) or 0.0 for pid in descendants)


def database_name(server: str, stack: str) -> str:
    """One database per server and stack: `bench_granian_ours_postgres`."""
    return "bench_" + f"{server}_{stack}".replace("-", "_")


class PrivatePostgres:
    """A private PostgreSQL pinned to `cpu`, a database per stack, stopped by PID."""

    def __init__(self, cpu: str | None, log_dir: Path) -> None:
        self.cpu = cpu
        self.log_dir = log_dir
        self.server = PostgresServer(settings=SETTINGS)
        # The harness connects to `postgres`; each stack has a database of its own, so the
        # harness's queries never count as a stack's.
        self.harness: psycopg.Connection[tuple[Any, ...]] | None = None
        self.version = ""
        self.harness_pid: int | None = None  # the backend serving the harness's own queries

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def start(self) -> None:
        self.server.start()
        try:
            self._pin()
            self.harness = psycopg.connect(self.server.url, autocommit=True)
            self.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.version = str(self.value("SHOW server_version")).split()[0]
            self.harness_pid = int(self.value("SELECT pg_backend_pid()"))
        except BaseException:
            self.stop()
            raise

    def _pin(self) -> None:
        """Pin the postmaster and its helpers; backends forked later inherit the pin."""
        if self.cpu is None:
            return
        taskset = shutil.which("taskset")
        if taskset is None:
            raise RuntimeError("taskset (util-linux) is needed to pin processes to a core")
        for pid in self.server.processes():
            subprocess.run(
                [taskset, "-a", "-c", "-p", self.cpu, str(pid)],
                check=True,
                capture_output=True,
            )

    def stop(self) -> None:
        if self.harness is not None:
            self.harness.close()
            self.harness = None
        log = self.server.log_tail(200_000)
        self.server.close()
        if log:
            (self.log_dir / "postgres.log").write_text(log)

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self.harness is None:
            raise RuntimeError("the private PostgreSQL is not running")
        return self.harness

    def execute(self, query: Query, *args: object) -> list[tuple[Any, ...]]:
        with self._connection().cursor() as cursor:
            cursor.execute(query, args or None)
            return cursor.fetchall() if cursor.description else []

    def value(self, query: Query, *args: object) -> Any:
        rows = self.execute(query, *args)
        return rows[0][0] if rows else None

    def create_database(self, name: str) -> str:
        """A fresh database `name` (dropped first if a previous run left it); its URL."""
        database = sql.Identifier(name)
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        self.execute(sql.SQL("CREATE DATABASE {}").format(database))
        return self.server.database_url(name)

    def pinning(self) -> dict[str, int | list[str]]:
        """How many processes the cluster runs now, and the CPU sets they may run on."""
        pid = self.server.pid
        pids = [] if pid is None else process_tree(pid)
        cpu_sets = set()
        for each in pids:
            try:
                cpu_sets.add(",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(each))))
            except OSError:  # exited meanwhile
                continue
        return {"processes": len(pids), "cpu_sets": sorted(cpu_sets)}

    def cpu_seconds(self) -> float | None:
        """The cluster's CPU so far, less the backend that answers the harness's queries."""
        pid = self.server.pid
        total = None if pid is None else cluster_cpu_seconds(pid)
        if total is None or self.harness_pid is None:
            return total
        return total - (cpu_seconds(self.harness_pid) or 0.0)

    def statements(self, database: str) -> dict[tuple[str, bool], tuple[int, float]]:
        """pg_stat_statements of one database: (query, top level) -> (calls, exec ms)."""
        rows = self.execute(
            "SELECT s.query, s.toplevel, sum(s.calls)::bigint, sum(s.total_exec_time)"
            " FROM pg_stat_statements AS s JOIN pg_database AS d ON d.oid = s.dbid"
            " WHERE d.datname = %s GROUP BY s.query, s.toplevel",
            database,
        )
        return {(str(query), bool(top)): (int(calls), float(ms)) for query, top, calls, ms in rows}

    def storage(self, database: str) -> dict[str, int]:
        """What the stored sessions take: `sess` (median), a live row, and the table per row.

        pgstattuple counts the heap's live and dead row versions exactly: every renewing read
        writes a new version of its row, which stays until (auto)vacuum reclaims it.
        """
        with psycopg.connect(self.server.database_url(database), autocommit=True) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            sizes = [
                int(size)
                for (size,) in connection.execute('SELECT pg_column_size(sess) FROM "session"')
            ]
            row = connection.execute(
                "SELECT pg_total_relation_size('session'), t.tuple_count, t.tuple_len,"
                " t.dead_tuple_count FROM pgstattuple('session') AS t"
            ).fetchone()
        total, live, live_bytes, dead = (int(value) for value in row) if row else (0, 0, 0, 0)
        return {
            "sess_bytes": int(statistics.median(sizes)) if sizes else 0,
            "row_bytes": live_bytes // live if live else 0,  # heap tuple: header, sid, sess, expire
            "rows": len(sizes),
            "table_bytes": total,
            "bytes_per_row": total // len(sizes) if sizes else 0,
            "dead_rows": dead,
        }
