"""Entry point: `python -m bench.run` measures every stack side by side and writes RESULTS.md.

The servers take turns, granian first (what deploy/ runs: the headline), then uvicorn, then
hypercorn: on each, every Python stack runs as one worker pinned to --server-cpu while wrk (and
the private redis-server and PostgreSQL) run on --client-cpu. Within a server, rounds are interleaved (round 1
of every stack, then round 2, ...) so drift in the machine's load spreads over all stacks; the
tables show the median of the rounds. express runs on node alongside the first server's stacks.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path

from bench import client, logins, machine
from bench.cpu import TreeCpu
from bench.measure import MONITORED_REQUESTS, PAGES, Load, Measurement, measure
from bench.net import free_port
from bench.postgres_cost import MEANINGS, PostgresProbe
from bench.postgres_server import PrivatePostgres, database_name
from bench.process import Child
from bench.profile import finish_recording, profile_lines, start_recording
from bench.redis_cost import RedisProbe
from bench.redis_server import PrivateRedis
from bench.report import goals_table, results_table, summarise
from bench.stacks import (
    REFERENCES,
    ROOT,
    SERVERS,
    STACKS,
    PythonServer,
    check_node,
    server_for,
)
from bench.store_cost import StoreProbe
from bench.wrk import run_wrk, wrk_binary

OUT = ROOT / "bench" / "out"


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 s per measurement, 1 round, no warm-up, no logins",
    )
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 5)")
    parser.add_argument("--runs", type=int, help="rounds per stack and page (default 3)")
    parser.add_argument("--warmup", type=float, help="seconds of discarded load per stack (2)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--stacks",
        default=",".join(STACKS),
        help=f"comma-separated, from: {', '.join(STACKS)} (quart-bare and floor, or "
        "express-bare, are always added: every ratio is taken to them)",
    )
    parser.add_argument("--pages", default=",".join(PAGES))
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated ASGI servers, run in this order (default {','.join(SERVERS)})",
    )
    parser.add_argument(
        "--server", choices=SERVERS, help="one server only (the same as --servers NAME)"
    )
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument(
        "--logins",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="p99 of a page while 10 logins run, on the first server (default: on, off with "
        "--quick)",
    )
    parser.add_argument("--login-page", default="/", help="page measured in the login scenario")
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="STACK[:PAGE]",
        help="py-spy the server of STACK (a Python stack) under load on PAGE, on every server",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        metavar="LOAD",
        help="first wait (up to 10 min) until the 1-minute load average is below LOAD",
    )
    parser.add_argument(
        "--results", type=Path, help="markdown report (default bench/RESULTS.md; quick: bench/out/)"
    )
    parser.add_argument("--json", type=Path, help="raw measurements (default bench/out/...)")
    parser.add_argument("--note", help="a line put at the top of the report (why this run)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (1.0 if quick else 5.0)
    args.runs = args.runs or (1 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (0.0 if quick else 2.0)
    args.logins = args.logins if args.logins is not None else not quick
    args.results = args.results or (
        OUT / "RESULTS-quick.md" if quick else ROOT / "bench" / "RESULTS.md"
    )
    args.json = args.json or OUT / ("results-quick.json" if quick else "results.json")
    args.servers = [args.server] if args.server else _names(args.servers)
    unknown = [name for name in args.servers if name not in SERVERS]
    if unknown or not args.servers:
        parser.error(f"unknown servers {unknown}; known: {', '.join(SERVERS)}")
    chosen = _names(args.stacks)
    unknown = [name for name in chosen if name not in STACKS]
    if unknown:
        parser.error(f"unknown stacks {unknown}; known: {', '.join(STACKS)}")
    frameworks = {STACKS[name].framework for name in chosen}
    wanted = set(chosen) | {ref for fw in frameworks for ref in REFERENCES[fw]}
    added = sorted(wanted - set(chosen))
    if added:
        print(f"[bench] adding the reference stacks {', '.join(added)}", file=sys.stderr)
    args.stacks = [name for name in STACKS if name in wanted]  # the report's order
    args.pages = _names(args.pages)
    if any(page not in PAGES for page in args.pages):
        parser.error(f"pages are {PAGES}")
    if args.no_pin or (os.cpu_count() or 1) < 2:
        args.server_cpu = args.client_cpu = None
    return args


class Bench:
    """The private stores and the measurements of one run; the servers take turns (`run_server`)."""

    def __init__(self, args: argparse.Namespace, log_dir: Path) -> None:
        self.args = args
        self.log_dir = log_dir
        self.load = Load(args.duration, args.connections, args.client_cpu)
        self.redis: PrivateRedis | None = None
        self.postgres: PrivatePostgres | None = None
        self.postgres_version = ""
        self.server = PythonServer(args.servers[0])
        self.children: dict[str, Child] = {}  # the current server's stacks, by name
        self.failed: dict[str, str] = {}  # "server/stack" -> why
        self.measurements: list[Measurement] = []
        self.memory: dict[str, dict[str, int]] = {}  # "server/stack" -> bytes, keys
        self.postgres_storage: dict[str, dict[str, int]] = {}  # "server/stack" -> sizes
        self.postgres_pinning: dict[str, dict[str, int | list[str]]] = {}  # server -> CPU sets
        self.profiles: list[str] = []
        self.login_lines: list[str] = []
        self.login_server = args.servers[0]
        self._files = tempfile.TemporaryDirectory(prefix="bench-files-")

    def key(self, name: str) -> str:
        return f"{self.server.name}/{name}"

    def env_for(self, name: str) -> dict[str, str]:
        env = {"BENCH_PREFIX": f"bench:{self.server.name}:{name}:", "PYTHONUNBUFFERED": "1"}
        if self.redis is not None:
            env["BENCH_REDIS_URL"] = self.redis.url
        if name == "ours-file":
            env["BENCH_FILE_DIR"] = str(Path(self._files.name) / self.server.name / name)
        if STACKS[name].store == "postgres" and self.postgres is not None:
            database = database_name(self.server.name, name)
            env["BENCH_DATABASE_URL"] = self.postgres.server.database_url(database)
        return env

    def probe_for(self, name: str) -> StoreProbe | None:
        """The stack's view of the store it talks to, if any."""
        store = STACKS[name].store
        if store == "redis" and self.redis is not None:
            return RedisProbe(self.redis)
        if store == "postgres" and self.postgres is not None:
            return PostgresProbe(self.postgres, database_name(self.server.name, name))
        return None

    def start(self) -> None:
        wrk_binary()
        stacks = [STACKS[name] for name in self.args.stacks]
        if any(not stack.is_python for stack in stacks):
            check_node()
        if any(stack.store == "redis" for stack in stacks) or self.args.logins:
            self.redis = PrivateRedis(self.args.client_cpu, self.log_dir)
            self.redis.start()
        if any(stack.store == "postgres" for stack in stacks):
            self.postgres = PrivatePostgres(self.args.client_cpu, self.log_dir)
            self.postgres.start()
            self.postgres_version = self.postgres.version

    def stop(self) -> None:
        self.stop_stacks()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        self._files.cleanup()

    def run_server(self, server: str, *, with_node: bool) -> None:
        """Every stack on `server` (and express on node, `with_node`): warm-up, rounds, extras."""
        self.server = PythonServer(server)
        print(f"[bench] server {self.server.describe()}", flush=True)
        try:
            self.start_stacks(with_node=with_node)
            self.measure_all()
            self.measure_memory()
            self.run_profiles()
            if self.args.logins and server == self.login_server:
                self.login_lines = logins.scenario_lines(
                    self.server, self.redis, self.load, self.args, self.log_dir
                )
        finally:
            self.stop_stacks()

    def start_stacks(self, *, with_node: bool) -> None:
        for name in self.args.stacks:
            stack = STACKS[name]
            if not stack.is_python and not with_node:
                continue
            if stack.store == "postgres" and self.postgres is not None:
                self.postgres.create_database(database_name(self.server.name, name))
            child = server_for(
                stack,
                self.server,
                free_port(),
                cpu=self.args.server_cpu,
                env=self.env_for(name),
                log=self.log_dir / f"{self.server.name}-{name}.log",
            )
            try:
                child.start()
            except RuntimeError as error:
                self.failed[self.key(name)] = str(error)
                print(f"[bench] {self.key(name)}: could not start: {error}", file=sys.stderr)
                continue
            self.children[name] = child

    def stop_stacks(self) -> None:
        for child in self.children.values():
            child.stop()
        self.children.clear()

    def measure_all(self) -> None:
        if self.args.warmup > 0:
            for name, child in list(self.children.items()):
                self._guarded(name, partial(self._warm, name, child))
        for round_ in range(self.args.runs):
            for name, child in list(self.children.items()):
                for page in self.args.pages:
                    self._guarded(name, partial(self._one, name, child, page, round_))

    def _warm(self, name: str, child: Child) -> None:
        stack = STACKS[name]
        cookies = client.prime(child.port, self.load.connections) if stack.sessions else []
        for page in self.args.pages:
            run_wrk(
                f"http://127.0.0.1:{child.port}/{page}",
                cookies,
                duration=self.args.warmup,
                connections=self.load.connections,
                cpu=self.load.client_cpu,
            )

    def _one(self, name: str, child: Child, page: str, round_: int) -> None:
        measurement = measure(
            self.server.name, STACKS[name], child.pid, child.port, page, round_, self.load,
            self.probe_for(name),
        )  # fmt: skip
        self.measurements.append(measurement)
        wrk = measurement.wrk
        cpu = (
            f"{1e6 * measurement.server_cpu_s / wrk.requests:5.0f} µs/req"
            if measurement.server_cpu_s is not None and wrk.requests
            else ""
        )
        print(
            f"[bench] {self.server.name} round {round_ + 1}/{self.args.runs} {name:22} "
            f"/{page:5} {wrk.rps:8,.0f} req/s  p50 {wrk.p50_ms:6.2f} ms  "
            f"p99 {wrk.p99_ms:6.2f} ms  server {cpu}  {measurement.store or 'store'} "
            f"{measurement.commands_per_request:.2f}/req {'; '.join(measurement.notes)}",
            flush=True,
        )

    def _guarded(self, name: str, action: Callable[[], None]) -> None:
        """Run one step of a stack; a failure marks that stack failed and the run goes on."""
        key = self.key(name)
        if key in self.failed:
            return
        try:
            action()
        except (RuntimeError, OSError, ValueError) as error:
            tail = self.children[name].log_tail() if name in self.children else ""
            self.failed[key] = f"{error}{tail}"
            print(f"[bench] {key}: failed: {error}{tail}", file=sys.stderr, flush=True)

    def measure_memory(self) -> None:
        for name in self.children:
            if self.key(name) in self.failed:
                continue
            store = STACKS[name].store
            if store == "redis" and self.redis is not None:
                median, keys = self.redis.memory_per_key(f"bench:{self.server.name}:{name}:")
                self.memory[self.key(name)] = {"bytes": median, "keys": keys}
            if store == "postgres" and self.postgres is not None:
                database = database_name(self.server.name, name)
                self.postgres_storage[self.key(name)] = self.postgres.storage(database)
                # While the stack's backends still run: were they born pinned?
                self.postgres_pinning[self.server.name] = self.postgres.pinning()

    def run_profiles(self) -> None:
        for spec in self.args.profile:
            name, _, page = spec.partition(":")
            page = page or "count"
            child = self.children.get(name)
            where = f"{self.server.name}/{spec}"
            if child is None or not STACKS[name].is_python:
                self.profiles.append(f"- profile {where}: no running Python stack {name!r}")
                continue
            output = self.log_dir / f"profile-{self.server.name}-{name}-{page}.txt"
            stack = STACKS[name]
            cookies = client.prime(child.port, self.load.connections) if stack.sessions else []
            tree = TreeCpu.of(child.pid)
            recorder = start_recording(child.pid, self.args.duration, output, self.args.client_cpu)
            cpu_before = tree.seconds()
            result = run_wrk(
                f"http://127.0.0.1:{child.port}/{page}",
                cookies,
                duration=self.args.duration,
                connections=self.load.connections,
                cpu=self.load.client_cpu,
            )
            cpu = tree.seconds() - cpu_before
            try:
                profile = finish_recording(recorder, output)
            except RuntimeError as error:
                self.profiles.append(f"- profile {where}: {error}")
                continue
            title = (
                f"{self.server.name}: `{name}` /{page} under py-spy ({result.rps:,.0f} req/s "
                "while sampled, --nonblocking)"
            )
            per_request = 1e6 * cpu / result.requests if result.requests else None
            self.profiles += profile_lines(title, profile, per_request)


def _pin(cpu: str | None) -> str:
    return f"pinned to CPU {cpu}" if cpu is not None else "not pinned"


def postgres_lines(bench: Bench) -> list[str]:
    """How the PostgreSQL stacks were measured, and what their statements are."""
    if not bench.postgres_version:
        return []
    seen = sorted(
        {
            name
            for m in bench.measurements
            if m.store == "postgres"
            for name in [*m.commands, *(m.round_trips or {})]
        }
    )
    meanings = [f"`{name}` = {MEANINGS[name]}" for name in seen if name in MEANINGS]
    return [
        f"- PostgreSQL: a private PostgreSQL {bench.postgres_version} (initdb in a temporary "
        f"directory, a free port), {_pin(bench.args.client_cpu)} (the postmaster and every "
        "backend it forks); settings at their defaults, so fsync and synchronous_commit are on: "
        "a commit waits for its WAL flush to disk, where the Redis above keeps nothing on disk; "
        "pg_stat_statements preloaded (track = all). `ours-postgres`: `PostgresStore.from_url` "
        "(an asyncpg pool of up to 10 connections), connect-pg-simple's table in a database of "
        "its own per server. Store CPU = the postmaster's process tree (backends, WAL writer, "
        "checkpointer, autovacuum; a backend that exits is counted through the postmaster's "
        "cutime), less the backend answering the harness. Store calls/req = pg_stat_statements "
        "calls delta over the timed runs / requests completed, and `× µs` its mean execution "
        "time per call (time inside the executor, waits included; not CPU). Round trips/req = "
        f"top-level statements over {MONITORED_REQUESTS} sequential untimed requests after "
        "round 1: each is one round trip once asyncpg has prepared it on the connection (its "
        "statement cache). Statements, by PostgresStore's names: "
        + ("; ".join(meanings) or "none seen")
        + ".",
    ]


def report(bench: Bench, info: dict[str, object], started: float) -> str:
    args = bench.args
    summaries = summarise(bench.measurements)
    python, node = info["python"], info["node"]
    assert isinstance(python, dict) and isinstance(node, dict)
    servers = "; ".join(PythonServer(name).describe() for name in args.servers)
    node_stacks = [name for name in args.stacks if not STACKS[name].is_python]
    lines = [
        "# Session benchmark results",
        "",
        f"Written by `{shlex.join(['python', '-m', 'bench.run', *sys.argv[1:]])}`"
        + f" on {info['date']}"
        f" (git {info['git']}), in {time.monotonic() - started:.0f} s.",
        "",
        *([f"> {args.note}", ""] if args.note else []),
        f"- Machine: {info['machine']}: {info['cpu']}, {info['nproc']} cores, "
        f"Linux {info['kernel']}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in info['loadavg_start'])}, "  # type: ignore[attr-defined]
        f"at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        f"- Servers, in turn, each running every Python stack as one worker "
        f"{_pin(args.server_cpu)}: {servers}."
        + (
            f" express on node {node['node']}, {_pin(args.server_cpu)} (NODE_ENV=production), "
            f"measured alongside {args.servers[0]}."
            if node_stacks
            else ""
        ),
        f"- Load: wrk {info['wrk']}, 1 thread, {args.connections} connections, "
        f"{_pin(args.client_cpu)}; {args.duration:g} s per run, median of {args.runs} interleaved "
        f"run(s), {args.warmup:g} s warm-up per stack.",
        f"- Returning visitors: {args.connections} sessions primed with one GET /count each "
        "before every run; wrk sends their cookies round-robin.",
        "- CPU per request: utime + stime from /proc/<pid>/stat over the timed runs / requests "
        "completed; the server's whole process tree (granian: its supervisor and the worker it "
        "forks), wrk's from getrusage, the store's from its processes (below). 'vs bare' is the "
        "server CPU per request more than bare Quart's (or bare express's) on the same server.",
        f"- Redis: a private redis-server {info['redis-server']} (no persistence) on a free "
        f"port, {_pin(args.client_cpu)}. Store CPU = the redis-server process. Store calls/req ="
        " INFO commandstats delta over the timed runs / requests completed; it counts commands "
        "run inside Lua scripts too, and `× µs` is commandstats' µs per call inside Redis (a "
        "script's includes its inner commands). Round trips/req = commands the app sent, seen "
        f"by MONITOR over {MONITORED_REQUESTS} sequential untimed requests after round 1.",
        *postgres_lines(bench),
        "- Session settings: ours and express-session: resave false, rolling false, "
        "saveUninitialized false, browser-session cookie, signed ids. quart-session: its defaults"
        " (SESSION_PERMANENT, unsigned ids, SETEX on every modified request). The floor probe "
        "(`bench/apps/floor.py`): a minimal SessionInterface that checks the same signed cookie, "
        "looks the id up in a dict, json.loads the record and json.dumps it at the end to see "
        "whether anything changed.",
        "- Python: " + ", ".join(f"{key} {value}" for key, value in python.items()),
        "- Node: " + ", ".join(f"{key} {value}" for key, value in node.items()),
        "",
        "## Goals (issue 11; measured, not asserted)",
        "",
        "Ratios of req/s measured side by side on the same server in this run; the verdict is "
        "on req/s. In brackets, the ratio the server's CPU per request predicts (the other "
        "stack's µs/req over this one's): what req/s would show with the server's core the only "
        "limit, and steadier on a shared machine.",
        "",
        *goals_table(summaries, args.servers),
    ]
    for server in args.servers:
        headline = " (the headline: deploy/ runs granian)" if server == "granian" else ""
        lines += [f"## {server}{headline}", ""]
        lines += results_table(summaries, server, args.stacks) or [
            "No measurement completed on this server.",
            "",
        ]
    if bench.memory:
        lines += [
            "## Redis memory per stored session",
            "",
            "`MEMORY USAGE key SAMPLES 0`, median over the stack's session keys "
            "(each holds a visit count).",
            "",
            "| server | stack | bytes per session | session keys |",
            "|---|---|---:|---:|",
        ]
        for key, row in bench.memory.items():
            server, _, name = key.partition("/")
            lines.append(f"| {server} | `{name}` | {row['bytes']} | {row['keys']} |")
        lines.append("")
    if bench.postgres_storage:
        lines += [
            "## PostgreSQL storage per stored session",
            "",
            "`pg_column_size(sess)`: the record as stored (json text, each holding a visit "
            "count), median over the stack's rows; a live row: its heap tuple (header, sid, "
            "sess, expire; pgstattuple's tuple_len / tuple_count, index entries not included); "
            "then connect-pg-simple's table with its indexes and TOAST "
            "(`pg_total_relation_size`) per row at the end of the server's runs, and the dead "
            "row versions still taking space in it (pgstattuple): every renewing read and every "
            "change writes a new version of its row, and one that moves `expire` (indexed) new "
            "index entries too (not a HOT update); page pruning and autovacuum reclaim them "
            "later. With this few rows, empty page space and dead versions dominate the table's "
            "bytes per row.",
            "",
            "| server | stack | sess bytes | live row bytes | table + indexes bytes per row "
            "| rows | dead row versions |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for key, row in bench.postgres_storage.items():
            server, _, name = key.partition("/")
            lines.append(
                f"| {server} | `{name}` | {row['sess_bytes']} | {row['row_bytes']} "
                f"| {row['bytes_per_row']:,} | {row['rows']} | {row['dead_rows']:,} |"
            )
        lines.append("")
    if args.logins or bench.login_lines:
        lines += [
            f"## p99 while 10 logins run concurrently ({bench.login_server})",
            "",
            *bench.login_lines,
            "",
        ]
    if bench.profiles:
        lines += ["## Profiles", "", *bench.profiles, ""]
    if bench.failed:
        lines += ["## Stacks that failed", ""]
        lines += [f"- `{key}`: {error.splitlines()[0]}" for key, error in bench.failed.items()]
        lines.append("")
    return "\n".join(lines)


def wait_quiet(threshold: float, limit_s: float = 600.0) -> None:
    """Other work on a 2-core machine skews every number: wait for it to calm down."""
    deadline = time.monotonic() + limit_s
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        time.sleep(5)
    print(f"[bench] load average {os.getloadavg()[0]:.2f} (wanted < {threshold:g})", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.wait_quiet is not None:
        wait_quiet(args.wait_quiet)
    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    info = machine.describe()
    bench = Bench(args, OUT)
    try:
        bench.start()
        for index, server in enumerate(args.servers):
            bench.run_server(server, with_node=index == 0)
    finally:
        bench.stop()
    text = report(bench, info, started)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "machine": info,
                "failed": bench.failed,
                "memory": bench.memory,
                "postgres_storage": bench.postgres_storage,
                "postgres_pinning": bench.postgres_pinning,
                "servers": args.servers,
                "measurements": [{**asdict(m), "rps": m.wrk.rps} for m in bench.measurements],
            },
            indent=1,
            default=str,
        )
    )
    print("\n" + text)
    print(f"\n[bench] wrote {args.results} and {args.json}")
    return 1 if bench.failed else 0


if __name__ == "__main__":
    sys.exit(main())
