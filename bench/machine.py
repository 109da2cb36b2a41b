"""What the numbers were measured on: the machine, the load on it, and every version."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.stacks import NODE_DIR, ROOT

PYTHON_PACKAGES = (
    "quart",
    "hypercorn",
    "granian",
    "uvicorn",
    "uvloop",
    "httptools",
    "redis",
    "hiredis",
    "quart-session",
    "werkzeug",
    "quart-express-sessions",
    "py-spy",
)
NODE_PACKAGES = ("express", "express-session", "connect-redis", "redis")


def _output(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    completed = subprocess.run(command, capture_output=True, text=True, timeout=10, cwd=ROOT)
    text = (completed.stdout or completed.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _version(text: str) -> str:
    """The first dotted version number in a tool's banner ("wrk debian/4.1.0-3" -> "4.1.0")."""
    match = re.search(r"\d+\.\d+(?:\.\d+)?", text)
    return match.group(0) if match else text


def cpu_model() -> str:
    for line in _output_lines(["lscpu"]):
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return None


def machine_name() -> str:
    """The host, how it is virtualised and its memory: which machine the numbers belong to."""
    virtualised = _output(["systemd-detect-virt"])
    memory = memory_gib()
    parts = [platform.node() or "unknown host"]
    if virtualised not in ("not installed", "?", "none"):
        parts.append(f"virtualised: {virtualised}")
    if memory is not None:
        parts.append(f"{memory:.0f} GiB RAM")
    return ", ".join(parts)


def _output_lines(command: list[str]) -> list[str]:
    if shutil.which(command[0]) is None:
        return []
    return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.splitlines()


def python_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PYTHON_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def node_versions() -> dict[str, str]:
    versions = {"node": _output(["node", "--version"])}
    for name in NODE_PACKAGES:
        manifest = NODE_DIR / "node_modules" / name / "package.json"
        versions[name] = (
            json.loads(manifest.read_text())["version"] if manifest.exists() else "not installed"
        )
    return versions


def describe() -> dict[str, object]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_name(),
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg(),
        "git": _output(["git", "rev-parse", "--short", "HEAD"]),
        "python_executable": sys.executable,
        "python": python_versions(),
        "node": node_versions(),
        "wrk": _version(_output(["wrk", "-v"])),
        "redis-server": _version(_output(["redis-server", "--version"])),
    }
