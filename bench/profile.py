"""py-spy on a server under wrk: where its CPU goes, by package and frame, in µs per request.

py-spy samples the server's threads (`--subprocesses` follows granian's worker, a child of its
supervisor) without pausing them (`--nonblocking`); idle threads are not sampled. A share of the
samples times the server's CPU per request, measured from /proc over the same run, gives µs per
request. "own" time is the frame running when sampled (shares add up to 100 %); "on stack" counts
a sample for every frame (or package) anywhere on its stack.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.process import pinned

LINE_NUMBER = re.compile(r":\d+\)$")
FILE = re.compile(r"\((.*)\)$")
RATE_HZ = 250
# A thread that runs with no Python frame at all: granian's Rust threads (HTTP, sockets), or C
# code not called from Python.
NATIVE = "(native: no Python frame)"
# Frames every sample of a worker passes through (process start-up, granian's fork of its worker,
# the event loop): on the stack of everything, they say nothing.
PLUMBING = (
    "<frozen runpy>",
    "click/",
    "multiprocessing/",
    "granian/__main__.py",
    "granian/cli.py",
    "granian/server/",
    "uvicorn/main.py",
    "uvicorn/__main__.py",
    "uvicorn/server.py",
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
    "hypercorn/__main__.py",
    "hypercorn/run.py",
    "hypercorn/asyncio/run.py",
    "uvloop/",
)


@dataclass(frozen=True)
class Profile:
    samples: int
    own: Counter[str]  # frame -> samples where it was the running frame
    total: Counter[str]  # frame -> samples where it was anywhere on the stack (plumbing left out)
    package_own: Counter[str]  # package -> samples whose running frame is in it
    package_total: Counter[str]  # package -> samples with any of its (non-plumbing) frames
    raw: Path


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed: pip install py-spy (bench extra)")
    return found


def start_recording(
    pid: int, seconds: float, output: Path, cpu: str | None
) -> subprocess.Popen[str]:
    """py-spy record in raw (collapsed-stack) format, not pausing the server (--nonblocking)."""
    command = pinned(
        [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(round(seconds), 1)),
            "--rate",
            str(RATE_HZ),
            "--nonblocking",
            "--subprocesses",  # granian serves from a child of the process we started
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        cpu,
    )
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)  # let py-spy attach before the load starts
    return process


def finish_recording(process: subprocess.Popen[str], output: Path) -> Profile:
    log, _ = process.communicate(timeout=120)
    if process.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed ({process.returncode}): {log.strip()[-1000:]}")
    return summarise(output)


def package(frame: str) -> str:
    """The top-level package of a frame's file: `quart`, `sessions`, `json`, `<frozen abc>`."""
    if frame == NATIVE:
        return NATIVE
    match = FILE.search(frame)
    path = match.group(1) if match else frame
    return path.split("/", 1)[0] if "/" in path else path


def _is_plumbing(frame: str) -> bool:
    return any(part in frame for part in PLUMBING)


def summarise(raw: Path, within: str | None = None) -> Profile:
    """Count the raw stacks; with `within`, only those with a frame containing that text."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    package_own: Counter[str] = Counter()
    package_total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if within is not None and within not in stack:
            continue
        # --subprocesses puts a "process PID:..." frame at the root of every stack.
        frames = [
            LINE_NUMBER.sub(")", frame)
            for frame in stack.split(";")
            if not frame.startswith("process ")
        ] or [NATIVE]
        samples += count
        own[frames[-1]] += count
        package_own[package(frames[-1])] += count
        useful = {frame for frame in frames if not _is_plumbing(frame)} | {frames[-1]}
        for frame in useful:
            total[frame] += count
        for name in {package(frame) for frame in useful}:
            package_total[name] += count
    return Profile(samples, own, total, package_own, package_total, raw)


def _shown(path: Path) -> str:
    """A path as the report shows it: relative to the repository when inside it."""
    root = Path(__file__).resolve().parent.parent
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def profile_lines(
    title: str, profile: Profile, us_per_request: float | None, top: int = 15
) -> list[str]:
    """The profile as Markdown: packages, the top frames of each, and the heaviest stacks."""

    def share(count: int) -> float:
        return count / max(profile.samples, 1)

    def cells(count: int) -> str:
        us = "–" if us_per_request is None else f"{share(count) * us_per_request:,.1f}"
        return f"{100 * share(count):.1f}% | {us}"

    cpu = "not measured" if us_per_request is None else f"{us_per_request:,.0f} µs"
    lines = [
        f"#### {title}",
        "",
        f"{profile.samples} samples of the server's busy threads; its CPU per request over the "
        f"sampled run: {cpu} (/proc), shared out below by samples. Raw stacks: `{_shown(profile.raw)}`",
        "",
        "| package | own | own µs/req | on stack | on stack µs/req |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, count in profile.package_own.most_common():
        lines.append(f"| `{name}` | {cells(count)} | {cells(profile.package_total[name])} |")
    lines += ["", "Top frames of each package (own time):", ""]
    lines += ["| package | frame | own | own µs/req |", "|---|---|---:|---:|"]
    for name, _ in profile.package_own.most_common(8):
        frames = [(frame, count) for frame, count in profile.own.items() if package(frame) == name]
        for frame, count in sorted(frames, key=lambda item: -item[1])[:5]:
            lines.append(f"| `{name}` | `{frame}` | {cells(count)} |")
    lines += ["", "| on stack | µs/req | frame (anywhere on the stack) |", "|---:|---:|---|"]
    lines += [f"| {cells(count)} | `{frame}` |" for frame, count in profile.total.most_common(top)]
    return [*lines, ""]
