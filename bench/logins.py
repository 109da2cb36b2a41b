"""Scenario: p99 of a page for a signed-in visitor, alone and while 10 logins run concurrently.

Needs the project's site (app.py `create_app()` with the auth blueprint: `/login` GET form with
a `csrf_token` field, POST with `username`, `password`, `csrf_token`); bench/apps/site.py adapts it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

from bench.login_load import CSRF, login_once
from bench.measure import Load
from bench.net import free_port
from bench.process import pinned
from bench.redis_server import PrivateRedis
from bench.stacks import ROOT, SITE, PythonServer, server_for
from bench.wrk import WrkResult, run_wrk

CONCURRENT_LOGINS = 10
USERS = [
    (f"bench-user-{index:02d}", f"bench password {index:02d} long enough")
    for index in range(CONCURRENT_LOGINS + 1)
]  # the last one is the reading visitor


def site_problem() -> str | None:
    """Why the site cannot be benchmarked yet, or None when it can."""
    app_py = ROOT / "app.py"
    if not app_py.exists():
        return "app.py does not exist yet (it must define create_app() with the auth blueprint)"
    if "def create_app" not in app_py.read_text():
        return "app.py has no create_app()"
    if not (ROOT / "auth" / "__init__.py").exists():
        return "the auth blueprint (auth/__init__.py) does not exist yet"
    return None


def signed_in_cookie(port: int) -> str:
    """Log the reading visitor in once and return its session cookie."""
    name, password = USERS[-1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/login")
        form = connection.getresponse()
        body = form.read().decode(errors="replace")
        match = CSRF.search(body)
        cookie = (form.getheader("Set-Cookie") or "").split(";", 1)[0]
        if form.status != 200 or match is None or not cookie:
            raise RuntimeError(
                f"GET /login gave {form.status}, csrf_token found: {bool(match)}, "
                f"cookie: {cookie!r}"
            )
        fields = urllib.parse.urlencode(
            {"username": name, "password": password, "csrf_token": match.group(1) or match.group(2)}
        )
        connection.request(
            "POST",
            "/login",
            body=fields,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        )
        answer = connection.getresponse()
        answer.read()
        new_cookie = (answer.getheader("Set-Cookie") or "").split(";", 1)[0]
        if answer.status not in (302, 303) or not new_cookie:
            raise RuntimeError(
                f"POST /login as {name} gave {answer.status} (cookie "
                f"{new_cookie!r}); expected a 302/303 redirect with a new cookie"
            )
        return new_cookie
    finally:
        connection.close()


def scenario_lines(
    server: PythonServer,
    redis: PrivateRedis | None,
    load: Load,
    args: argparse.Namespace,
    log_dir: Path,
) -> list[str]:
    """Run the scenario and return its section of RESULTS.md (or why it could not run)."""
    problem = site_problem()
    if problem is not None:
        message = f"**Not run**: {problem}."
        print(f"[bench] login scenario not run: {problem}", file=sys.stderr, flush=True)
        return [message]
    if redis is None:
        return ["**Not run**: no private redis-server."]
    port = free_port()
    instance = tempfile.TemporaryDirectory(prefix="bench-site-")
    child = server_for(
        SITE,
        server,
        port,
        cpu=args.server_cpu,
        env={
            "BENCH_REDIS_URL": redis.url,
            "BENCH_PREFIX": "bench:site:",
            "BENCH_USERS": json.dumps(USERS),
            "BENCH_FILE_DIR": instance.name,
            "PYTHONUNBUFFERED": "1",
        },
        log=log_dir / "site.log",
    )
    try:
        child.start()
        status, _ = login_once(port, *USERS[0])
        if status not in (302, 303):
            raise RuntimeError(f"a login as {USERS[0][0]} answered {status}, not a redirect")
        cookie = signed_in_cookie(port)
        url = f"http://127.0.0.1:{port}{args.login_page}"
        alone: list[WrkResult] = []
        loaded: list[WrkResult] = []
        logins: list[dict[str, object]] = []
        for round_ in range(args.runs):
            alone.append(
                run_wrk(
                    url,
                    [cookie],
                    duration=load.duration,
                    connections=load.connections,
                    cpu=load.client_cpu,
                )
            )
            generator = subprocess.Popen(
                pinned(
                    [
                        sys.executable,
                        "-m",
                        "bench.login_load",
                        "--port",
                        str(port),
                        "--users",
                        json.dumps(USERS[:-1]),
                        "--concurrency",
                        str(CONCURRENT_LOGINS),
                        "--duration",
                        f"{load.duration + 1:g}",
                    ],
                    load.client_cpu,
                ),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                loaded.append(
                    run_wrk(
                        url,
                        [cookie],
                        duration=load.duration,
                        connections=load.connections,
                        cpu=load.client_cpu,
                    )
                )
                output, errors = generator.communicate(timeout=load.duration + 120)
            finally:
                if generator.poll() is None:
                    generator.kill()
                    generator.wait()
            if generator.returncode != 0:
                raise RuntimeError(f"the login generator failed: {errors.strip()[-500:]}")
            logins.append(json.loads(output.strip().splitlines()[-1]))
            print(
                f"[bench] logins round {round_ + 1}: p99 alone {alone[-1].p99_ms:.2f} ms, "
                f"with logins {loaded[-1].p99_ms:.2f} ms; logins {logins[-1]}",
                flush=True,
            )
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        print(f"[bench] login scenario failed: {error}{child.log_tail()}", file=sys.stderr)
        return [f"**Failed**: {error}"]
    finally:
        child.stop()
        instance.cleanup()
    return _lines(args.login_page, load, alone, loaded, logins)


def _lines(
    page: str,
    load: Load,
    alone: list[WrkResult],
    loaded: list[WrkResult],
    logins: list[dict[str, object]],
) -> list[str]:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    attempts = sum(int(run["attempts"]) for run in logins)  # type: ignore[call-overload]
    logged_in = sum(int(run["logged_in"]) for run in logins)  # type: ignore[call-overload]
    statuses: dict[str, int] = {}
    for run in logins:
        for status, count in run["statuses"].items():  # type: ignore[attr-defined]
            statuses[status] = statuses.get(status, 0) + count
    login_p99 = [float(run["p99_ms"]) for run in logins if run["p99_ms"] is not None]  # type: ignore[arg-type]
    p99_alone = median([run.p99_ms for run in alone])
    p99_loaded = median([run.p99_ms for run in loaded])
    return [
        f"`GET {page}` as a signed-in visitor, {load.connections} connections; then the same "
        f"while {CONCURRENT_LOGINS} clients log in back to back (fresh visitor each: GET /login, "
        "POST /login). Medians of the rounds.",
        "",
        "| | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        f"| page alone | {median([r.rps for r in alone]):,.0f} | "
        f"{median([r.p50_ms for r in alone]):.2f} | {p99_alone:.2f} |",
        f"| page during {CONCURRENT_LOGINS} concurrent logins | "
        f"{median([r.rps for r in loaded]):,.0f} | {median([r.p50_ms for r in loaded]):.2f} | "
        f"{p99_loaded:.2f} |",
        "",
        f"p99 grows {p99_loaded / p99_alone if p99_alone else float('nan'):.1f}× under logins. "
        f"Logins: {logged_in} of {attempts} POSTs redirected (statuses {statuses}), "
        f"{logged_in / (load.duration * len(logins)):.1f} logins/s, login POST p99 "
        f"{median(login_p99) if login_p99 else float('nan'):.0f} ms.",
    ]
