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


@dataclass(frozen=True)
class Profile:
    samples: int
    own: list[tuple[str, int]]  # (frame, samples where it was the running frame)
    total: list[tuple[str, int]]  # (frame, samples where it was anywhere on the stack)
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
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [LINE_NUMBER.sub(")", frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    return Profile(samples, own.most_common(top), total.most_common(top * 2), raw)


def profile_lines(title: str, profile: Profile) -> list[str]:
    def share(count: int) -> str:
        return f"{100 * count / max(profile.samples, 1):.1f}%"

    lines = [
        f"#### {title}",
        "",
        f"{profile.samples} samples; raw stacks: `{profile.raw}`",
        "",
        "| own time | frame |",
        "|---:|---|",
    ]
    lines += [f"| {share(count)} | `{frame}` |" for frame, count in profile.own]
    lines += ["", "| on stack | frame |", "|---:|---|"]
    lines += [f"| {share(count)} | `{frame}` |" for frame, count in profile.total]
    return [*lines, ""]
