"""A child process of the benchmark: started with a CPU pin, stopped only by its own PID."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.net import wait_for_port
from deploy.processes import terminate


def pinned(command: Sequence[str], cpu: str | None) -> list[str]:
    """Prefix `command` with `taskset -c cpu` when a pin is asked for and taskset exists."""
    if cpu is None:
        return list(command)
    taskset = shutil.which("taskset")
    if taskset is None:
        raise RuntimeError("taskset (util-linux) is needed to pin processes to a core")
    return [taskset, "-c", cpu, *command]


class Child:
    """One listening process: `start()` waits for its port, `stop()` ends it by PID."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        port: int,
        *,
        cpu: str | None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
    ) -> None:
        self.name = name
        self.command = pinned(command, cpu)
        self.port = port
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    def start(self, timeout: float = 30.0) -> None:
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=output, stderr=subprocess.STDOUT
            )
        finally:
            if self.log:
                output.close()  # type: ignore[union-attr]
        try:
            wait_for_port(
                self.port,
                timeout,
                alive=lambda: self.process is not None and self.process.poll() is None,
            )
        except (RuntimeError, TimeoutError) as error:
            self.stop()
            tail = self.log_tail()
            raise RuntimeError(f"{self.name} did not start: {error}{tail}") from error

    def log_tail(self, lines: int = 20) -> str:
        if self.log is None or not self.log.exists():
            return ""
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n--- " + str(self.log) + " ---\n" + "\n".join(text)

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def __enter__(self) -> Child:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
