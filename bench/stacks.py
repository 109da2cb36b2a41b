"""The benchmarked stacks and how each one's server is started."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.process import Child

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / "node"
SETUP_HINT = "run `bash scripts/setup --bench`"


@dataclass(frozen=True)
class Stack:
    name: str
    framework: str  # "quart" or "express": the ratio is taken to this framework's bare app
    description: str
    app: str  # "module:attr" for Python stacks, a script under bench/node/ for express
    sessions: bool = True  # serves a session cookie (primed before measuring)
    store: str | None = None  # "redis" or "postgres": talks to the run's private server
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_python(self) -> bool:
        return self.framework == "quart"

    @property
    def baseline(self) -> str:
        return "quart-bare" if self.is_python else "express-bare"


STACKS: dict[str, Stack] = {
    stack.name: stack
    for stack in (
        Stack("quart-bare", "quart", "Quart, no sessions", "bench.apps.bare:app", sessions=False),
        Stack(
            "floor",
            "quart",
            "floor probe: minimal SessionInterface, dict",
            "bench.apps.floor:app",
        ),
        Stack(
            "ours-memory",
            "quart",
            "ours, MemoryStore",
            "bench.apps.ours:app",
            env={"BENCH_STORE": "memory"},
        ),
        Stack(
            "ours-file",
            "quart",
            "ours, FileStore",
            "bench.apps.ours:app",
            env={"BENCH_STORE": "file"},
        ),
        Stack(
            "ours-redis",
            "quart",
            "ours, RedisStore",
            "bench.apps.ours:app",
            store="redis",
            env={"BENCH_STORE": "redis"},
        ),
        Stack(
            "ours-postgres",
            "quart",
            "ours, PostgresStore",
            "bench.apps.ours:app",
            store="postgres",
            env={"BENCH_STORE": "postgres"},
        ),
        Stack(
            "quart-session-redis",
            "quart",
            "quart-session 3.0.0, Redis",
            "bench.apps.peer_quart_session:app",
            store="redis",
        ),
        Stack("express-bare", "express", "express, no sessions", "bare.js", sessions=False),
        Stack(
            "express-session-redis",
            "express",
            "express-session + connect-redis",
            "session.js",
            store="redis",
        ),
    )
}

# Measured whenever a stack of their framework is: every ratio and goal is taken to them.
REFERENCES = {"quart": ("quart-bare", "floor"), "express": ("express-bare",)}

# The ASGI servers, in report order: granian (what deploy/ runs) is the headline.
SERVERS = ("granian", "uvicorn", "hypercorn")

# The project's own site (app.py create_app() with the auth blueprint), for the login scenario.
SITE = Stack(
    "site", "quart", "app.py create_app() (sessions + auth)", "bench.apps.site:app", store="redis"
)


@dataclass(frozen=True)
class PythonServer:
    """The ASGI server every Python stack runs on in one benchmark run."""

    name: str  # "hypercorn", "uvicorn" or "granian"

    @property
    def uvloop(self) -> bool:
        return importlib.util.find_spec("uvloop") is not None

    @property
    def httptools(self) -> bool:
        return importlib.util.find_spec("httptools") is not None

    def _loop(self) -> str:
        return "uvloop" if self.uvloop else "asyncio"

    def describe(self) -> str:
        if self.name == "hypercorn":
            return f"hypercorn, 1 worker in-process (-w 0), -k {self._loop()}"
        if self.name == "granian":
            return f"granian (ASGI), 1 worker (a child of its supervisor), --loop {self._loop()}"
        return (
            f"uvicorn, 1 worker, --loop {self._loop()}"
            f" --http {'httptools' if self.httptools else 'h11'}, --no-proxy-headers"
        )

    def command(self, app: str, port: int) -> list[str]:
        if self.name == "hypercorn":
            return [sys.executable, "-m", "hypercorn", "-w", "0", "-k", self._loop(),
                    "-b", f"127.0.0.1:{port}", "--log-level", "warning", app]  # fmt: skip
        if importlib.util.find_spec(self.name) is None:
            raise RuntimeError(f"{self.name} is not installed: {SETUP_HINT}")
        if self.name == "uvicorn":
            return [sys.executable, "-m", "uvicorn", "--loop", self._loop(), "--http",
                    "httptools" if self.httptools else "h11", "--no-proxy-headers",
                    "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1",
                    "--port", str(port), app]  # fmt: skip
        if self.name == "granian":
            return [sys.executable, "-m", "granian", "--interface", "asgi", "--host",
                    "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", self._loop(),
                    "--no-access-log", "--log-level", "warning", app]  # fmt: skip
        raise ValueError(f"unknown server {self.name!r}: hypercorn, uvicorn or granian")


def check_node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError(f"node is not installed: {SETUP_HINT}")
    if not (NODE_DIR / "node_modules" / "express-session").is_dir():
        raise RuntimeError(f"{NODE_DIR}/node_modules is missing: {SETUP_HINT}")
    return node


def server_for(
    stack: Stack,
    server: PythonServer,
    port: int,
    *,
    cpu: str | None,
    env: dict[str, str],
    log: Path,
) -> Child:
    """The (not yet started) server process of `stack` on 127.0.0.1:port."""
    full_env = {**stack.env, **env}
    if stack.is_python:
        command = server.command(stack.app, port)
    else:
        command = [check_node(), str(NODE_DIR / stack.app)]
        full_env |= {"PORT": str(port), "NODE_ENV": "production"}
    return Child(stack.name, command, port, cpu=cpu, env=full_env, cwd=ROOT, log=log)
