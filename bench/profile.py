"""py-spy on a server's PID while wrk loads it: the functions that eat the server's core."""

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
# Frames every sample passes through (process start-up, the event loop): they say nothing.
PLUMBING = (
    "<frozen runpy>",
    "click/",
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
    own: list[tuple[str, int]]  # (frame, samples where it was the running frame)
    total: list[tuple[str, int]]  # (frame, samples where it was anywhere on the stack)
    files: list[tuple[str, int]]  # (source file, samples spent in its own code)
    packages: list[tuple[str, int]]  # (top-level package, samples with any of its frames)
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
            "200",
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


def finish_recording(process: subprocess.Popen[str], output: Path, top: int = 15) -> Profile:
    log, _ = process.communicate(timeout=120)
    if process.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed ({process.returncode}): {log.strip()[-1000:]}")
    return summarise(output, top)


def summarise(raw: Path, top: int = 15) -> Profile:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    files: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # --subprocesses puts a "process PID:..." frame at the root of every stack.
        frames = [
            LINE_NUMBER.sub(")", frame)
            for frame in stack.split(";")
            if not frame.startswith("process ")
        ] or ["(native code: no Python frame)"]
        samples += count
        own[frames[-1]] += count
        match = FILE.search(frames[-1])
        files[match.group(1) if match else frames[-1]] += count
        for frame in set(frames):
            if not any(part in frame for part in PLUMBING):
                total[frame] += count
        for package in {_package(frame) for frame in frames}:
            packages[package] += count
    return Profile(
        samples,
        own.most_common(top),
        total.most_common(top * 2),
        files.most_common(top),
        packages.most_common(top),
        raw,
    )


def _package(frame: str) -> str:
    match = FILE.search(frame)
    path = match.group(1) if match else frame
    return path.split("/", 1)[0] if "/" in path else path


def profile_lines(title: str, profile: Profile) -> list[str]:
    def share(count: int) -> str:
        return f"{100 * count / max(profile.samples, 1):.1f}%"

    lines = [
        f"#### {title}",
        "",
        f"{profile.samples} samples of the server's busy time (idle waits are not sampled); "
        f"raw stacks: `{profile.raw}`",
        "",
        "| own time | frame |",
        "|---:|---|",
    ]
    lines += [f"| {share(count)} | `{frame}` |" for frame, count in profile.own]
    lines += ["", "| on stack | frame |", "|---:|---|"]
    lines += [f"| {share(count)} | `{frame}` |" for frame, count in profile.total]
    lines += ["", "| on stack | package (any of its frames) |", "|---:|---|"]
    lines += [f"| {share(count)} | `{name}` |" for name, count in profile.packages]
    lines += ["", "| own time | source file |", "|---:|---|"]
    lines += [f"| {share(count)} | `{name}` |" for name, count in profile.files]
    return [*lines, ""]
