"""The benchmark harness runs end to end in --quick mode and counts what it should.

Not a timed assertion: numbers on a shared 2-core machine are noise. It checks that every
stack answers, the sessions really persist, and the Redis command counts add up (quart-session
and connect-redis have known costs per request, which validates the counting itself).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP_HINT = "run `bash scripts/setup --bench` (installs wrk and runs `npm ci` in bench/node)"
CONNECTION_SETUP = {"hello", "client|setinfo", "select", "auth", "command|docs"}
STACKS = ("quart-bare", "ours-redis", "quart-session-redis", "express-session-redis")


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
            "--stacks",
            ",".join(STACKS),
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
    return data


def test_every_stack_and_page_is_measured_without_errors(quick_run: dict[str, Any]) -> None:
    measured = {(m["stack"], m["page"]) for m in quick_run["measurements"]}
    assert measured == {(stack, page) for stack in STACKS for page in ("count", "read")}
    assert quick_run["failed"] == {}
    for measurement in quick_run["measurements"]:
        wrk = measurement["wrk"]
        assert wrk["requests"] > 50, measurement
        assert 0 < wrk["p50_ms"] <= wrk["p99_ms"], measurement
        # Notes hold errors, non-2xx answers and sessions that did not persist.
        assert measurement["notes"] == [], measurement


def test_the_bare_app_never_talks_to_redis(quick_run: dict[str, Any]) -> None:
    for measurement in quick_run["measurements"]:
        if measurement["stack"] == "quart-bare":
            assert measurement["commands"] == {}


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
    ours = {
        m["page"]: per_request(m) for m in quick_run["measurements"] if m["stack"] == "ours-redis"
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


def test_the_report_names_the_machine_the_targets_and_session_memory(
    quick_run: dict[str, Any],
) -> None:
    report = quick_run["report"]
    assert "cores" in report and "hypercorn" in report
    assert "## Targets" in report and "ours (Redis) / bare Quart, visit counter" in report
    for stack in ("ours-redis", "quart-session-redis", "express-session-redis"):
        assert quick_run["memory"][stack]["bytes"] > 0
        # One stored session per primed visitor: nothing minted a session per request.
        assert quick_run["memory"][stack]["keys"] == 2 * 16
