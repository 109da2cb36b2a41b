"""A private redis-server for a local cluster: own port, own directory, append-only persistence."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deploy.processes import find_binary, free_port, terminate, wait_for_port


class RedisServer:
    """redis-server on a free loopback port, data in directory, every write fsynced.

    Example: ``RedisServer(Path("/tmp/r")).start()`` then use ``.url``; ``.restart()`` keeps data.
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.binary = find_binary("redis-server")
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of this server (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or start again, on the same port and data) and wait until it accepts."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # appendfsync always: a session written before a restart is on disk, not in a buffer.
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--logfile", str(self.directory / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        """SIGTERM by PID: redis flushes the append-only file and exits."""
        terminate(self.process)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same data directory."""
        self.stop()
        self.start()

    @property
    def pid(self) -> int | None:
        """The server's PID while running."""
        return self.process.pid if self.process is not None else None
