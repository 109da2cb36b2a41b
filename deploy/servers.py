"""How to start one ASGI server process on one loopback port, for each server we support."""

from __future__ import annotations

import importlib.util
import sys

#: The app every server runs: the demo app behind ProxyFixMiddleware (deploy/asgi.py).
ASGI_APP = "deploy.asgi:app"

#: Chosen by measurement (bench/servers/README.md); every entry supports workers, proxy headers
#: (through our ProxyFixMiddleware) and graceful shutdown on SIGTERM.
DEFAULT_SERVER = "granian"

SERVERS = ("hypercorn", "hypercorn-uvloop", "uvicorn", "granian")

#: The largest request head (request line and headers) granian reads before answering 431: what
#: nginx in front accepts (large_client_header_buffers 4 8k). granian's own default, 408 KiB,
#: let a 100 KiB header through to the app. hypercorn's h11 stops at 16 KiB (431) by itself.
MAX_REQUEST_HEAD = 32 * 1024

# The Python modules each server needs, and the pip requirement that provides them.
_NEEDS = {
    "hypercorn": ({"hypercorn"}, "hypercorn"),
    "hypercorn-uvloop": ({"hypercorn", "uvloop"}, "hypercorn[uvloop]"),
    "uvicorn": ({"uvicorn", "uvloop", "httptools"}, "uvicorn[standard]"),
    "granian": ({"granian", "uvloop"}, "granian[uvloop]"),
}


def check_installed(server: str) -> None:
    """Raise RuntimeError naming the pip requirement when server's modules are missing.

    Example: ``check_installed("granian")`` returns None once ``granian[uvloop]`` is installed.
    """
    if server not in _NEEDS:
        raise ValueError(f"unknown ASGI server {server!r}; choose one of {', '.join(SERVERS)}")
    modules, requirement = _NEEDS[server]
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    if missing:
        raise RuntimeError(
            f"{server} needs {', '.join(missing)}: run scripts/setup, or "
            f"{sys.executable} -m pip install '{requirement}'"
        )


def server_command(
    server: str, port: int, app: str = ASGI_APP, host: str = "127.0.0.1"
) -> list[str]:
    """The argv that serves app on host:port with one worker process.

    hypercorn (--workers 0) and uvicorn answer from the process started; granian from a child
    of it (its supervisor stays the parent), which deploy.cluster.Worker accounts for.

    Example: ``server_command("hypercorn", 8001)`` ->
    ``[python, "-m", "hypercorn", "--workers", "0", "--bind", "127.0.0.1:8001", ...]``
    """
    python = sys.executable
    if server in ("hypercorn", "hypercorn-uvloop"):
        worker_class = "uvloop" if server == "hypercorn-uvloop" else "asyncio"
        # --workers 0 serves in this very process instead of a spawned child, so the PID we
        # hold is the one answering (and the one a test can SIGKILL).
        return [python, "-m", "hypercorn", "--workers", "0", "--worker-class", worker_class,
                "--bind", f"{host}:{port}", "--graceful-timeout", "5", app]  # fmt: skip
    if server == "uvicorn":
        # Our ProxyFixMiddleware already applies the one-hop rule; uvicorn's own would be a
        # second, differently configured copy of it.
        return [python, "-m", "uvicorn", "--host", host, "--port", str(port),
                "--loop", "uvloop", "--http", "httptools", "--no-proxy-headers",
                "--no-access-log", "--timeout-graceful-shutdown", "5", app]  # fmt: skip
    if server == "granian":
        return [python, "-m", "granian", "--interface", "asgi", "--host", host,
                "--port", str(port), "--workers", "1", "--loop", "uvloop",
                "--workers-kill-timeout", "5", "--http1-buffer-size", str(MAX_REQUEST_HEAD),
                app]  # fmt: skip
    raise ValueError(f"unknown ASGI server {server!r}; choose one of {', '.join(SERVERS)}")
