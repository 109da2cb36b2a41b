"""The load generator: wrk (a C client, pinned to its own core) with bench/cookies.lua."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.process import pinned

SCRIPT = Path(__file__).resolve().parent / "cookies.lua"
MARKER = "BENCH_JSON "


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    socket_errors: int
    status_errors: int  # non-2xx/3xx responses
    timeouts: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError(
            "wrk is not installed: run `bash scripts/setup --bench` (Debian package wrk)"
        )
    return binary


def parse(output: str) -> WrkResult:
    for line in output.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise RuntimeError(f"wrk printed no result line:\n{output[-2000:]}")
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        socket_errors=data["connect_errors"] + data["read_errors"] + data["write_errors"],
        status_errors=data["status_errors"],
        timeouts=data["timeouts"],
    )


def run_wrk(
    url: str,
    cookies: Sequence[str],
    *,
    duration: float,
    connections: int,
    cpu: str | None,
    timeout_s: float = 5.0,
) -> WrkResult:
    """One bounded wrk run of `duration` seconds against a loopback `url`."""
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError(f"the benchmark only targets loopback, not {url}")
    with tempfile.NamedTemporaryFile("w", prefix="bench-cookies-", suffix=".txt") as file:
        file.write("".join(cookie + "\n" for cookie in cookies))
        file.flush()
        command = pinned(
            [
                wrk_binary(),
                "-t",
                "1",
                "-c",
                str(connections),
                "-d",
                f"{max(round(duration), 1)}s",
                "--timeout",
                f"{timeout_s:g}s",
                "--latency",
                "-s",
                str(SCRIPT),
                url,
                "--",
                file.name,
            ],
            cpu,
        )
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + timeout_s + 30
        )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return parse(completed.stdout)
