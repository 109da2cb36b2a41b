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
        if process.poll() is None:  # the test failed midway: still stop what the command started
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert [pid for pid in pids if is_running(pid)] == []
    assert not port_is_open(port)


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
