"""The benchmark harness runs end to end in --quick mode and counts what it should.

Not a timed assertion: numbers on a shared 2-core machine are noise. It checks that the servers
take turns (granian first), every stack answers on each, the sessions really persist, the CPU
of granian's worker (a child of its supervisor) is counted, the Redis command counts add up
(quart-session and connect-redis have known costs per request, which validates the counting),
and the PostgreSQL stack's statements are the ones PostgresStore promises (one to read, two to
change), counted on the bench's own pinned PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP_HINT = "run `bash scripts/setup --bench` (installs wrk and runs `npm ci` in bench/node)"
CONNECTION_SETUP = {"hello", "client|setinfo", "select", "auth", "command|docs"}
SERVERS = ("granian", "hypercorn")
# quart-bare and express-bare are left out on purpose: the harness adds the references itself.
ASKED = (
    "ours-memory",
    "ours-redis",
    "ours-postgres",
    "quart-session-redis",
    "express-session-redis",
)
PYTHON_STACKS = (
    "quart-bare",
    "floor",
    "ours-memory",
    "ours-redis",
    "ours-postgres",
    "quart-session-redis",
)
STORE_STACKS = ("ours-redis", "ours-postgres", "quart-session-redis", "express-session-redis")
NODE_STACKS = ("express-bare", "express-session-redis")
PAGES = ("count", "read")


def per_request(measurement: dict[str, Any]) -> dict[str, float]:
    requests = measurement["wrk"]["requests"]
    return {name: calls / requests for name, calls in measurement["commands"].items()}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        pytest.fail(f"wrk is not installed: {SETUP_HINT}")
    if not (ROOT / "bench" / "node" / "node_modules" / "express-session").is_dir():
        pytest.fail(f"bench/node/node_modules is missing: {SETUP_HINT}")
    out = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--servers",
            ",".join(SERVERS),
            "--stacks",
            ",".join(ASKED),
            "--results",
            str(out / "RESULTS.md"),
            "--json",
            str(out / "results.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    data["report"] = (out / "RESULTS.md").read_text()
    data["log"] = completed.stdout
    return data


def test_each_server_runs_every_stack_and_page_without_errors(quick_run: dict[str, Any]) -> None:
    measured = {(m["server"], m["stack"], m["page"]) for m in quick_run["measurements"]}
    wanted = {
        (server, stack, page) for server in SERVERS for stack in PYTHON_STACKS for page in PAGES
    }
    # express runs on node once, alongside the first server's stacks.
    wanted |= {(SERVERS[0], stack, page) for stack in NODE_STACKS for page in PAGES}
    assert measured == wanted
    assert quick_run["failed"] == {}
    for measurement in quick_run["measurements"]:
        wrk = measurement["wrk"]
        assert wrk["requests"] > 50, measurement
        assert 0 < wrk["p50_ms"] <= wrk["p99_ms"], measurement
        # Notes hold errors, non-2xx answers and sessions that did not persist (the floor
        # probe's counter included) or a read-only page that changed them.
        assert measurement["notes"] == [], measurement


def test_the_servers_take_turns_granian_first(quick_run: dict[str, Any]) -> None:
    order = [m["server"] for m in quick_run["measurements"]]
    assert order[0] == "granian"
    assert order.index("hypercorn") > max(i for i, s in enumerate(order) if s == "granian")
    report = quick_run["report"]
    assert report.index("## granian") < report.index("## hypercorn")


def test_the_server_cpu_counted_is_the_worker_s(quick_run: dict[str, Any]) -> None:
    for measurement in quick_run["measurements"]:
        requests, seconds = measurement["wrk"]["requests"], measurement["wrk"]["seconds"]
        cpu = measurement["server_cpu_s"]
        # granian's supervisor idles while its forked worker serves: counting the supervisor
        # alone would give almost nothing. Any request costs a Python server tens of µs.
        assert cpu is not None and 1e6 * cpu / requests > 10, measurement
        # One worker pinned to one core cannot use more than that core (plus clock-tick slack).
        assert cpu <= seconds * 1.1 + 0.05, measurement
        assert measurement["client_cpu_s"] > 0, measurement


def test_store_stacks_report_the_store_s_cpu_and_microseconds_per_call(
    quick_run: dict[str, Any],
) -> None:
    for measurement in quick_run["measurements"]:
        if measurement["stack"] in STORE_STACKS:
            assert measurement["store_cpu_s"] > 0, measurement
            assert measurement["commands"], measurement
            assert set(measurement["store_usec"]) == set(measurement["commands"]), measurement
            assert all(usec > 0 for usec in measurement["store_usec"].values()), measurement
        else:
            assert measurement["store_cpu_s"] is None and measurement["commands"] == {}


def test_known_peers_cost_the_redis_commands_their_code_sends(quick_run: dict[str, Any]) -> None:
    expected = {
        ("quart-session-redis", "count"): {"get": 1.0, "setex": 1.0},
        ("quart-session-redis", "read"): {"get": 1.0},
        ("express-session-redis", "count"): {"get": 1.0, "set": 1.0},
        ("express-session-redis", "read"): {"get": 1.0, "expire": 1.0},  # resave false: touch
    }
    for measurement in quick_run["measurements"]:
        wanted = expected.get((measurement["stack"], measurement["page"]))
        if wanted is None:
            continue
        counted = {
            name: round(value, 1)
            for name, value in per_request(measurement).items()
            if name not in CONNECTION_SETUP  # once per pooled connection, not per request
        }
        assert counted == wanted, measurement
        # MONITOR sees the same commands arriving one round trip each, none inside scripts
        # (it leaves out connection set-up itself).
        assert measurement["round_trips"] == wanted, measurement
        assert measurement["in_scripts"] == {}, measurement


def test_ours_rewrites_the_record_only_on_the_page_that_modifies_it(
    quick_run: dict[str, Any],
) -> None:
    for server in SERVERS:
        ours = {
            m["page"]: per_request(m)
            for m in quick_run["measurements"]
            if m["stack"] == "ours-redis" and m["server"] == server
        }
        # resave false: only the visit counter writes the record; the read-only page at most
        # touches it (EXPIRE or a script), never rewrites it with SET.
        assert sum(ours["count"].values()) > sum(ours["read"].values()), ours
        assert sum(ours["read"].get(name, 0.0) for name in ("set", "setex")) < 0.05, ours
        for page, commands in ours.items():
            assert 1.0 <= sum(commands.values()) < 10.0, (page, commands)
    for measurement in quick_run["measurements"]:
        if measurement["stack"] == "ours-redis":
            assert 1.0 <= sum(measurement["round_trips"].values()) < 5.0, measurement


def test_ours_on_postgres_sends_one_statement_to_read_and_a_second_to_change(
    quick_run: dict[str, Any],
) -> None:
    expected = {"read": {"renew": 1.0}, "count": {"renew": 1.0, "apply": 1.0}}
    seen = 0
    for measurement in quick_run["measurements"]:
        if measurement["stack"] != "ours-postgres":
            continue
        seen += 1
        wanted = expected[measurement["page"]]
        # Sequential requests on a warm pool: each top-level statement is one round trip, and
        # nothing runs nested inside the database on the request's behalf.
        assert measurement["round_trips"] == wanted, measurement
        assert measurement["in_scripts"] == {}, measurement
        # Under load the same statements and no others (such as the store's Python fallback).
        # Requests still in flight when wrk stops ran their statements uncounted by wrk.
        counted = per_request(measurement)
        assert set(counted) == set(wanted), measurement
        for name, calls in counted.items():
            assert wanted[name] - 0.01 <= calls <= wanted[name] + 0.1, (name, measurement)
    assert seen == 2 * len(SERVERS)


def test_the_bench_postgres_runs_pinned_to_the_client_core_with_the_app_s_backends(
    quick_run: dict[str, Any],
) -> None:
    if (os.cpu_count() or 1) < 2:
        pytest.fail("the benchmark pins only on a machine with at least 2 cores")
    for server in SERVERS:
        pinning = quick_run["postgres_pinning"][server]
        # The postmaster, its 5 helpers (checkpointer, background writer, WAL writer,
        # autovacuum and logical replication launchers), the harness's backend and at least
        # one backend of the app's pool, born after the pin: all on --client-cpu (1).
        assert pinning["processes"] >= 8, pinning
        assert pinning["cpu_sets"] == ["1"], pinning


def test_the_report_names_the_machine_and_every_goal_per_server(
    quick_run: dict[str, Any],
) -> None:
    report = quick_run["report"]
    assert "cores" in report and "GiB RAM" in report and "granian 2." in report
    goals = report[report.index("## Goals") :].split("\n## ", 1)[0]
    assert "| goal | wanted | granian | hypercorn |" in goals
    for goal in (
        "Memory, read-only page: ours / floor probe",
        "Redis, read-only page: ours / bare Quart",
        "Redis, visit counter: ours / bare Quart",
        "visit counter: ours (Redis) / quart-session (Redis)",
    ):
        row = next(line for line in goals.splitlines() if line.startswith(f"| {goal}"))
        # a measured ratio and a verdict on both servers
        assert row.count("× met") + row.count("× MISSED") == len(SERVERS), row
    postgres = next(line for line in goals.splitlines() if line.startswith("| PostgreSQL"))
    # No target: a ratio on each page and server, without a verdict.
    assert "ratio to bare" in postgres and "met" not in postgres and "MISSED" not in postgres
    assert postgres.count("× (CPU") == 2 * len(SERVERS), postgres
    for column in (
        "server CPU µs/req",
        "store CPU µs/req",
        "store round trips/req",
        "store calls/req",
        "× own bare",
    ):
        assert column in report
    assert "synchronous_commit are on" in report and "PostgreSQL 1" in report


def test_every_stored_session_is_a_primed_visitor(quick_run: dict[str, Any]) -> None:
    for server in SERVERS:
        for stack in ("ours-redis", "quart-session-redis"):
            memory = quick_run["memory"][f"{server}/{stack}"]
            assert memory["bytes"] > 0
            # One stored session per primed visitor: nothing minted a session per request.
            assert memory["keys"] == 2 * 16
    assert quick_run["memory"][f"{SERVERS[0]}/express-session-redis"]["keys"] == 2 * 16
    for server in SERVERS:
        storage = quick_run["postgres_storage"][f"{server}/ours-postgres"]
        assert storage["rows"] == 2 * 16
        # {"cookie":{...},"views":N} as json text, inside a row with its header, sid and expire.
        assert 60 < storage["sess_bytes"] < storage["row_bytes"] < storage["bytes_per_row"]
