"""Small process helpers shared by the cluster pieces: free ports, readiness, stopping by PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

INSTALL_HINT = "sudo apt-get install nginx redis-server"


class MissingBinary(RuntimeError):
    """A system program the cluster needs (nginx, redis-server) is not installed."""


def find_binary(name: str, *candidates: str) -> str:
    """Return the path of a system program, or raise MissingBinary saying how to install it.

    Example: ``find_binary("nginx", "/usr/sbin/nginx")`` -> ``"/usr/sbin/nginx"``
    """
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if Path(candidate).is_file():
            return candidate
    raise MissingBinary(f"{name} is not installed; install it with: {INSTALL_HINT}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 15.0
) -> None:
    """Wait until host:port accepts connections; fail early if the process died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.pid} exited with {process.returncode}")
        if port_is_open(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing answered on 127.0.0.1:{port} within {timeout}s")


def terminate(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Stop one child we started: SIGTERM (graceful), then SIGKILL after timeout."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL one child we started and reap it."""
    if process is None or process.poll() is not None:
        return
    process.kill()
    process.wait()


def is_running(pid: int) -> bool:
    """True while pid exists and is not a zombie (a zombie runs no code and holds no socket)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state follows the parenthesised command name, which may itself contain spaces.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 5.0) -> None:
    """Wait until pid no longer runs (SIGKILL is delivered asynchronously)."""
    deadline = time.monotonic() + timeout
    while is_running(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} still runs {timeout}s after SIGKILL")
        time.sleep(0.01)
