"""A private redis-server: own loopback port, own directory, stopped only by its own PID.

The one launcher for the local cluster (`deploy.cluster`), the test suite and the benchmarks.
"""

from __future__ import annotations

import atexit
import subprocess
from collections.abc import Sequence
from pathlib import Path

from deploy.processes import find_binary, free_port, kill, terminate, wait_for_port

__all__ = ["RedisServer"]

# Every server still running, so that even an interrupted run leaves none behind.
_running: dict[int, subprocess.Popen[bytes]] = {}


class RedisServer:
    """redis-server on 127.0.0.1:`port` (a free one by default), working in `directory`.

    `durable` keeps every write in an append-only file fsynced at once, so a stop, a kill or a
    restart loses nothing; otherwise the server keeps nothing on disk. `options` are further
    command-line options (``("--requirepass", "s3cr:t")``). `sentinel` turns it into a Sentinel
    with these directives (``["sentinel monitor mymaster 127.0.0.1 7000 1", ...]``) in a config
    file of its own that it may rewrite. `wrapper` runs the server under another command
    (``["taskset", "-c", "1"]``, which execs it, so the PID stays the server's).

    Example: ``with RedisServer(Path("/tmp/r"), durable=False) as redis: use(redis.url)``.
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        durable: bool = True,
        options: Sequence[str] = (),
        sentinel: Sequence[str] | None = None,
        wrapper: Sequence[str] = (),
        log: Path | None = None,
    ) -> None:
        self.binary = find_binary("redis-server")
        self.directory = directory
        self.port = port or free_port()
        self.durable = durable
        self.options = tuple(options)
        self.sentinel = None if sentinel is None else tuple(sentinel)
        self.wrapper = tuple(wrapper)
        self.log = log or directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of this server (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's PID while running."""
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        """The command line that starts this server."""
        if self.sentinel is not None:
            return [*self.wrapper, self.binary, str(self._sentinel_config()), "--sentinel"]
        # appendfsync always: a session written before a restart is on disk, not in a buffer.
        persistence = ["yes", "--appendfsync", "always"] if self.durable else ["no"]
        return [
            *self.wrapper,
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--logfile",
            str(self.log),
            "--appendonly",
            *persistence,
            *self.options,
        ]

    def _sentinel_config(self) -> Path:
        """The Sentinel's config file, written once: the Sentinel rewrites it as it learns."""
        config = self.directory / "sentinel.conf"
        if not config.exists():
            lines = [
                f"port {self.port}",
                "bind 127.0.0.1",
                f'dir "{self.directory}"',
                f'logfile "{self.log}"',
                *(self.sentinel or ()),
            ]
            config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 15.0) -> None:
        """Start (or start again, on the same port and data) and wait until it accepts."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"redis-server {self.process.pid} is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        # What it prints before its log file opens (a bad option, say) goes to that file too.
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                self.command(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.process = process
        _running[process.pid] = process
        try:
            wait_for_port(self.port, process, timeout)
        except (RuntimeError, TimeoutError) as error:
            self.kill()
            raise RuntimeError(
                f"redis-server did not start on 127.0.0.1:{self.port}: {error}\n{self.log_tail()}"
            ) from error

    def stop(self) -> None:
        """SIGTERM by PID (redis flushes the append-only file and exits); SIGKILL if it lingers."""
        process, self.process = self.process, None
        terminate(process)
        if process is not None:
            _running.pop(process.pid, None)

    def kill(self) -> None:
        """SIGKILL by PID: a crash, as far as clients, replicas and sentinels can tell."""
        process, self.process = self.process, None
        kill(process)
        if process is not None:
            _running.pop(process.pid, None)

    def restart(self) -> None:
        """Stop and start again on the same port with the same data directory."""
        self.stop()
        self.start()

    def log_tail(self, characters: int = 3000) -> str:
        """The end of the server's log, for error messages."""
        if not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-characters:]

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_every_server_left() -> None:
    for process in list(_running.values()):
        terminate(process, timeout=5.0)


atexit.register(_stop_every_server_left)
