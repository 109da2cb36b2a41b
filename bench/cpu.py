"""CPU time of processes we started, from /proc: what a request costs the server, not the wall clock.

A request's CPU is a steadier number than req/s on a shared machine: another tenant's load slows
the clock but barely changes the microseconds each request takes. granian serves from a child of
its supervisor, so a server is measured as its whole process tree (the supervisor idles).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process (all its threads), or None when it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After "pid (comm) ", field 3 (state) is index 0: utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def cpu_seconds_with_reaped(pid: int) -> float | None:
    """utime + stime of one process and cutime + cstime: the children it has waited for."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # cutime and cstime are fields 16 and 17, right after utime and stime.
    return sum(int(value) for value in fields[11:15]) / TICKS_PER_SECOND


def process_tree(pid: int) -> list[int]:
    """`pid` and every live descendant of it (granian's worker, a supervisor's children)."""
    parents: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending += parents.get(current, [])
    return tree


@dataclass
class TreeCpu:
    """The CPU seconds of a process tree, fixed at the moment it is created (`process_tree`)."""

    pids: list[int]

    @classmethod
    def of(cls, pid: int) -> TreeCpu:
        return cls(process_tree(pid))

    def seconds(self) -> float:
        return sum(cpu_seconds(pid) or 0.0 for pid in self.pids)


def children_cpu_seconds() -> float:
    """User + system CPU of the children this process has waited for (wrk, once it returned)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
