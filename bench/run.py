"""Entry point: `python -m bench.run` measures every stack side by side and writes RESULTS.md.

Each Python stack runs on the same ASGI server (one worker, pinned to --server-cpu); express runs
on node pinned to the same core; wrk (and the private redis-server) run on --client-cpu.
Rounds are interleaved (round 1 of every stack, then round 2, ...) so drift in the machine's
load spreads over all stacks; the table shows the median of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path

from bench import client, logins, machine
from bench.measure import MONITORED_REQUESTS, PAGES, Load, Measurement, measure
from bench.net import free_port
from bench.process import Child
from bench.profile import finish_recording, profile_lines, start_recording
from bench.redis_server import PrivateRedis
from bench.report import results_table, summarise, targets_table
from bench.stacks import ROOT, STACKS, PythonServer, check_node, server_for
from bench.wrk import run_wrk, wrk_binary

OUT = ROOT / "bench" / "out"


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
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 10)")
    parser.add_argument("--runs", type=int, help="rounds per stack and page (default 3)")
    parser.add_argument("--warmup", type=float, help="seconds of discarded load per stack (2)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--stacks", default=",".join(STACKS), help=f"comma-separated, from: {', '.join(STACKS)}"
    )
    parser.add_argument("--pages", default=",".join(PAGES))
    parser.add_argument(
        "--server", choices=("hypercorn", "uvicorn", "granian"), default="hypercorn"
    )
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument(
        "--logins",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="p99 of a page while 10 logins run (default: on, off with --quick)",
    )
    parser.add_argument("--login-page", default="/", help="page measured in the login scenario")
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="STACK[:PAGE]",
        help="py-spy the server of STACK (a Python stack) under load on PAGE",
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
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (1.0 if quick else 10.0)
    args.runs = args.runs or (1 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (0.0 if quick else 2.0)
    args.logins = args.logins if args.logins is not None else not quick
    args.results = args.results or (
        OUT / "RESULTS-quick.md" if quick else ROOT / "bench" / "RESULTS.md"
    )
    args.json = args.json or OUT / ("results-quick.json" if quick else "results.json")
    args.stacks = [name.strip() for name in args.stacks.split(",") if name.strip()]
    unknown = [name for name in args.stacks if name not in STACKS]
    if unknown:
        parser.error(f"unknown stacks {unknown}; known: {', '.join(STACKS)}")
    args.pages = [page.strip() for page in args.pages.split(",") if page.strip()]
    if any(page not in PAGES for page in args.pages):
        parser.error(f"pages are {PAGES}")
    if args.no_pin or (os.cpu_count() or 1) < 2:
        args.server_cpu = args.client_cpu = None
    return args


class Bench:
    """The servers, the private Redis and the measurements of one run."""

    def __init__(self, args: argparse.Namespace, log_dir: Path) -> None:
        self.args = args
        self.log_dir = log_dir
        self.server = PythonServer(args.server)
        self.load = Load(args.duration, args.connections, args.client_cpu)
        self.redis: PrivateRedis | None = None
        self.children: dict[str, Child] = {}
        self.failed: dict[str, str] = {}
        self.measurements: list[Measurement] = []
        self.memory: dict[str, dict[str, int]] = {}
        self.profiles: list[str] = []
        self.login_lines: list[str] = []
        self._files = tempfile.TemporaryDirectory(prefix="bench-files-")

    def env_for(self, name: str) -> dict[str, str]:
        env = {"BENCH_PREFIX": f"bench:{name}:", "PYTHONUNBUFFERED": "1"}
        if self.redis is not None:
            env["BENCH_REDIS_URL"] = self.redis.url
        if name == "ours-file":
            env["BENCH_FILE_DIR"] = str(Path(self._files.name) / name)
        return env

    def start(self) -> None:
        wrk_binary()
        stacks = [STACKS[name] for name in self.args.stacks]
        if any(not stack.is_python for stack in stacks):
            check_node()
        if any(stack.redis for stack in stacks) or self.args.logins:
            self.redis = PrivateRedis(self.args.client_cpu, self.log_dir)
            self.redis.start()
        for stack in stacks:
            child = server_for(
                stack,
                self.server,
                free_port(),
                cpu=self.args.server_cpu,
                env=self.env_for(stack.name),
                log=self.log_dir / f"{stack.name}.log",
            )
            try:
                child.start()
            except RuntimeError as error:
                self.failed[stack.name] = str(error)
                print(f"[bench] {stack.name}: could not start: {error}", file=sys.stderr)
                continue
            self.children[stack.name] = child

    def stop(self) -> None:
        for child in self.children.values():
            child.stop()
        self.children.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        self._files.cleanup()

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
        measurement = measure(STACKS[name], child.port, page, round_, self.load, self.redis)
        self.measurements.append(measurement)
        print(
            f"[bench] round {round_ + 1}/{self.args.runs} {name:22} /{page:5} "
            f"{measurement.wrk.rps:8,.0f} req/s  p50 {measurement.wrk.p50_ms:6.2f} ms  "
            f"p99 {measurement.wrk.p99_ms:6.2f} ms  redis {measurement.commands_per_request:.2f}"
            f"/req {'; '.join(measurement.notes)}",
            flush=True,
        )

    def _guarded(self, name: str, action: Callable[[], None]) -> None:
        """Run one step of a stack; a failure marks that stack failed and the run goes on."""
        if name in self.failed:
            return
        try:
            action()
        except (RuntimeError, OSError, ValueError) as error:
            tail = self.children[name].log_tail() if name in self.children else ""
            self.failed[name] = f"{error}{tail}"
            print(f"[bench] {name}: failed: {error}{tail}", file=sys.stderr, flush=True)

    def measure_memory(self) -> None:
        if self.redis is None:
            return
        for name in self.children:
            if STACKS[name].redis and name not in self.failed:
                median, keys = self.redis.memory_per_key(f"bench:{name}:")
                self.memory[name] = {"bytes": median, "keys": keys}

    def run_profiles(self) -> None:
        for spec in self.args.profile:
            name, _, page = spec.partition(":")
            page = page or "count"
            child = self.children.get(name)
            if child is None or not STACKS[name].is_python:
                self.profiles.append(f"- profile {spec}: no running Python stack {name!r}")
                continue
            output = self.log_dir / f"profile-{name}-{page}.txt"
            stack = STACKS[name]
            cookies = client.prime(child.port, self.load.connections) if stack.sessions else []
            recorder = start_recording(child.pid, self.args.duration, output, self.args.client_cpu)
            result = run_wrk(
                f"http://127.0.0.1:{child.port}/{page}",
                cookies,
                duration=self.args.duration,
                connections=self.load.connections,
                cpu=self.load.client_cpu,
            )
            try:
                profile = finish_recording(recorder, output)
            except RuntimeError as error:
                self.profiles.append(f"- profile {spec}: {error}")
                continue
            title = (
                f"`{name}` /{page} under py-spy ({result.rps:,.0f} req/s while sampled, "
                f"--nonblocking, 200 Hz)"
            )
            self.profiles += profile_lines(title, profile)


def _pin(cpu: str | None) -> str:
    return f"pinned to CPU {cpu}" if cpu is not None else "not pinned"


def report(bench: Bench, info: dict[str, object], started: float) -> str:
    args = bench.args
    summaries = summarise(bench.measurements)
    python, node = info["python"], info["node"]
    assert isinstance(python, dict) and isinstance(node, dict)
    lines = [
        "# Session benchmark results",
        "",
        f"Written by `python -m bench.run {' '.join(sys.argv[1:])}`".rstrip()
        + f" on {info['date']}"
        f" (git {info['git']}), in {time.monotonic() - started:.0f} s.",
        "",
        f"- Machine: {info['cpu']}, {info['nproc']} cores, Linux {info['kernel']}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in info['loadavg_start'])}, "  # type: ignore[attr-defined]
        f"at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        f"- Python stacks: {bench.server.describe()}, {_pin(args.server_cpu)}; express "
        f"on node {node['node']}, {_pin(args.server_cpu)} (NODE_ENV=production).",
        f"- Load: wrk {info['wrk']}, 1 thread, {args.connections} connections, "
        f"{_pin(args.client_cpu)}; {args.duration:g} s per run, median of {args.runs} interleaved "
        f"run(s), {args.warmup:g} s warm-up per stack.",
        f"- Returning visitors: {args.connections} sessions primed with one GET /count each "
        "before every run; wrk sends their cookies round-robin.",
        f"- Redis: a private redis-server {info['redis-server']} (no persistence) on a free "
        f"port, {_pin(args.client_cpu)}. Redis cmds/req = INFO commandstats delta over "
        "the timed runs / requests completed; it counts commands run inside Lua scripts too. "
        f"Round trips/req = commands the app sent, seen by MONITOR over {MONITORED_REQUESTS} "
        "sequential untimed requests after round 1 (script-inner commands shown in brackets).",
        "- Session settings: ours and express-session: resave false, rolling false, "
        "saveUninitialized false, browser-session cookie, signed ids. quart-session: its defaults"
        " (SESSION_PERMANENT, unsigned ids, SETEX on every modified request).",
        "- Python: " + ", ".join(f"{key} {value}" for key, value in python.items()),
        "- Node: " + ", ".join(f"{key} {value}" for key, value in node.items()),
        "",
        "## Throughput and latency",
        "",
        *results_table(summaries, args.stacks),
        "## Targets (from the issue; measured, not asserted)",
        "",
        *targets_table(summaries),
    ]
    if bench.memory:
        lines += [
            "## Redis memory per stored session",
            "",
            "`MEMORY USAGE key SAMPLES 0`, median over the stack's session keys "
            "(each holds a visit count).",
            "",
            "| stack | bytes per session | session keys |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| `{name}` | {row['bytes']} | {row['keys']} |" for name, row in bench.memory.items()
        ]
        lines.append("")
    if args.logins or bench.login_lines:
        lines += ["## p99 while 10 logins run concurrently", "", *bench.login_lines, ""]
    if bench.profiles:
        lines += ["## Profiles", "", *bench.profiles, ""]
    if bench.failed:
        lines += ["## Stacks that failed", ""]
        lines += [f"- `{name}`: {error.splitlines()[0]}" for name, error in bench.failed.items()]
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
        bench.measure_all()
        bench.measure_memory()
        bench.run_profiles()
        if args.logins:
            bench.login_lines = logins.scenario_lines(
                bench.server, bench.redis, bench.load, args, OUT
            )
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
