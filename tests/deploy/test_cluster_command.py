"""`python -m deploy.cluster` brings the site up in one command and takes it all down again."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from site_http import Browser

from deploy.cluster import ROOT
from deploy.processes import MissingBinary, find_binary, free_port, is_running, port_is_open


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """Lines of the process's stdout up to and including the one containing marker."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str] = queue.Queue()

    # A reader thread: select() on a buffered pipe misses lines Python has already read ahead.
    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        if marker in seen[-1]:
            return seen
    raise AssertionError(f"no {marker!r} within {timeout}s; output so far: {seen}")


def stop_if_running(process: subprocess.Popen[str]) -> None:
    """A test that failed midway still stops what the command started (SIGTERM, then SIGKILL)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_one_command_serves_three_workers_and_a_signal_stops_everything(
    stop_signal: signal.Signals,
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "deploy.cluster", "--workers", "3", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = read_until(process, "Serving on", timeout=90)
        assert f"http://127.0.0.1:{port}/" in lines[-1]
        pids = [int(pid) for pid in re.findall(r"PIDs? (\d+(?:, \d+)*)", "".join(lines))
                for pid in pid.split(", ")]  # fmt: skip
        assert len(pids) == 6, f"3 workers, nginx, the session and the users' Redis: {lines}"

        browser = Browser(f"http://127.0.0.1:{port}")
        workers = {browser.get("/").served_by for _ in range(6)}
        assert browser.get("/").visits == 7
        assert len(workers) == 3

        process.send_signal(stop_signal)
        assert process.wait(timeout=60) == 0
    finally:
        stop_if_running(process)
    assert [pid for pid in pids if is_running(pid)] == []
    assert not port_is_open(port)


def test_with_postgres_one_command_runs_the_workers_on_a_private_postgresql_and_stops_it() -> None:
    port = free_port()
    command = [sys.executable, "-m", "deploy.cluster", "--workers", "3", "--port", str(port),
               "--postgres"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = read_until(process, "Serving on", timeout=120)
        output = "".join(lines)
        pids = [int(pid) for pid in re.findall(r"PIDs? (\d+(?:, \d+)*)", output)
                for pid in pid.split(", ")]  # fmt: skip
        assert len(pids) == 5, f"3 workers, nginx and PostgreSQL, no Redis: {lines}"
        stores = re.search(r"Sessions, users and throttle counters: postgresql://postgres@"
                           r"127\.0\.0\.1:(\d+)/demo \(private, PID (\d+)\)", output)  # fmt: skip
        assert stores, f"the start-up lines do not say where the data lives: {lines}"
        assert "redis" not in output.lower()
        postmaster = int(stores.group(2))
        backends = [int(child) for child in
                    Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()]  # fmt: skip
        assert backends, "the postmaster has no processes of its own"

        browser = Browser(f"http://127.0.0.1:{port}")
        workers = {browser.get("/").served_by for _ in range(6)}
        assert len(workers) == 3
        reply = browser.get("/")
        assert reply.visits == 7 and "PostgresStore" in reply.body

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        stop_if_running(process)
    assert [pid for pid in [*pids, *backends] if is_running(pid)] == []
    assert not port_is_open(port) and not port_is_open(int(stores.group(1)))


def test_the_command_takes_one_database_not_two() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cluster", "--postgres",
         "--database-url", "postgresql://app@127.0.0.1/app"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr and "Traceback" not in done.stderr


def test_the_command_refuses_clearly_when_redis_server_is_missing(tmp_path: Path) -> None:
    # A PATH with nothing on it: redis-server cannot be found (nginx would be, in /usr/sbin).
    env = dict(os.environ, PATH=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cluster", "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "redis-server is not installed" in done.stderr
    assert "sudo apt-get install nginx redis-server" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_program_is_named_with_the_command_that_installs_it() -> None:
    with pytest.raises(MissingBinary, match="sudo apt-get install nginx redis-server"):
        find_binary("nginx-that-is-not-installed", "/nonexistent/nginx")
    assert find_binary("nginx", "/usr/sbin/nginx").endswith("nginx")
