"""ASGI server comparison on the visit counter with the Redis store, measured with wrk.

Run from the repository root (after ``scripts/setup --bench``)::

    .venv/bin/python -m bench.servers.run              # 3 runs x 10 s per server, medians
    .venv/bin/python -m bench.servers.run --runs 1 --duration 5 --servers hypercorn granian

Each server runs as ONE process on a loopback port against a private redis-server (never the
shared one); wrk sends GET / with one session cookie, so every request loads and saves a
session in Redis. Results go to stdout as a Markdown table and to bench/out/servers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.wrk import WrkResult, run_wrk
from deploy.cluster import ROOT, Worker, fetch
from deploy.processes import free_port
from deploy.redis_server import RedisServer
from deploy.servers import ASGI_APP, SERVERS, check_installed, server_command

# wrk's own default: a request without an answer for 2 s counts as a timeout.
WRK_TIMEOUT_S = 2.0


@dataclass
class Run:
    """One wrk run against one server."""

    server: str
    requests_per_second: float
    mean_latency_ms: float
    non_2xx: int
    socket_errors: int

    @classmethod
    def of(cls, server: str, result: WrkResult) -> Run:
        """The figures this comparison reports, from one wrk result."""
        return cls(
            server=server,
            requests_per_second=result.rps,
            mean_latency_ms=result.mean_ms,
            non_2xx=result.status_errors,
            socket_errors=result.socket_errors + result.timeouts,
        )


def session_cookie(base_url: str) -> str:
    """Visit once and return the Cookie header value that carries the new session."""
    status, headers, _ = fetch(base_url)
    cookie = headers.get("set-cookie")
    if status != 200 or not cookie:
        raise RuntimeError(f"GET {base_url} gave {status} without a session cookie")
    return cookie.split(";", 1)[0]


def bench_server(
    server: str, redis_url: str, work_dir: Path, app: str, runs: int, duration: int, conns: int
) -> list[Run]:
    """Start one server process, warm it up, and run wrk `runs` times against GET /."""
    port = free_port()
    env = dict(os.environ, REDIS_URL=redis_url, SECRET_KEY=secrets.token_urlsafe(32))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    worker = Worker(0, port, server_command(server, port, app), env, work_dir / f"{server}.log")
    worker.start()
    try:
        worker.wait_healthy()
        url = f"http://127.0.0.1:{port}/"
        cookies = [session_cookie(url)]

        def wrk(seconds: int) -> WrkResult:
            return run_wrk(url, cookies, duration=seconds, connections=conns, cpu=None,
                           timeout_s=WRK_TIMEOUT_S)  # fmt: skip

        wrk(2)  # warm-up
        results = []
        for _ in range(runs):
            results.append(Run.of(server, wrk(duration)))
            print(f"  {server}: {results[-1].requests_per_second:.0f} req/s", file=sys.stderr)
        return results
    finally:
        worker.stop()


def main(argv: list[str] | None = None) -> int:
    """Run every server, print medians as a Markdown table, save raw runs as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.servers.run")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--app", default=ASGI_APP)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: sudo apt-get install wrk (scripts/setup --bench)",
            file=sys.stderr,
        )
        return 2
    try:
        for server in args.servers:
            check_installed(server)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-servers-") as tmp:
        redis = RedisServer(Path(tmp) / "redis")
        redis.start()
        try:
            runs: list[Run] = []
            # Interleave servers run by run, so a burst of load elsewhere on the machine
            # does not land on a single server's numbers.
            for _ in range(args.runs):
                for server in args.servers:
                    runs += bench_server(server, redis.url, Path(tmp), args.app, 1,
                                         args.duration, args.connections)  # fmt: skip
        finally:
            redis.stop()

    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "servers.json").write_text(json.dumps([asdict(run) for run in runs], indent=2))
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s, GET / (visit counter, Redis store),"
          f" one process per server, median of {args.runs} runs, {os.cpu_count()} CPUs\n")  # fmt: skip
    print("| server | req/s (median) | runs | mean latency ms | non-2xx | socket errors |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for server in args.servers:
        mine = [run for run in runs if run.server == server]
        all_rps = ", ".join(f"{run.requests_per_second:.0f}" for run in mine)
        print(
            f"| {server} | {statistics.median(r.requests_per_second for r in mine):.0f} "
            f"| {all_rps} | {statistics.median(r.mean_latency_ms for r in mine):.1f} "
            f"| {sum(r.non_2xx for r in mine)} | {sum(r.socket_errors for r in mine)} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
