"""Loopback helpers: a free port, and waiting until something answers on it."""

from __future__ import annotations

import time

from deploy.processes import free_port, port_is_open

__all__ = ["HOST", "free_port", "wait_for_port"]

HOST = "127.0.0.1"


def wait_for_port(port: int, timeout: float = 15.0, alive: object = None) -> None:
    """Return once 127.0.0.1:port accepts a connection; `alive()` False aborts early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(alive) and not alive():
            raise RuntimeError(f"the process meant to listen on {HOST}:{port} exited")
        if port_is_open(port, HOST):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing answered on {HOST}:{port} within {timeout}s")
