"""A private PostgreSQL cluster: initdb, then the postmaster as our own child, stopped by its PID.

Debian keeps initdb and postgres off PATH in /usr/lib/postgresql/<version>/bin, and PostgreSQL
refuses to run as root, so as root the server runs as the `postgres` system user. The
postmaster is not daemonized (pg_ctl would orphan it): this process reaps it, so a restart
right after a kill never meets its stale PID. The cluster
listens on 127.0.0.1 only (and on a unix socket inside its directory), on a free port, with a
random password: it never touches the machine's own PostgreSQL.
"""

from __future__ import annotations

import atexit
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from deploy.processes import MissingBinary, free_port, is_running, port_is_open, wait_gone

__all__ = ["PostgresServer", "create_database", "drop_database", "find_bin_dir", "psql"]

INSTALL_HINT = "bash scripts/setup --test (as root it apt-installs postgresql)"
DEBIAN_BIN_DIRS = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"  # PostgreSQL refuses to run as root; Debian's package creates this user
SUPERUSER = "postgres"
OUR_SETTINGS = "private.conf"

# Every cluster still running, so that even an interrupted run leaves none behind.
_running: dict[int, PostgresServer] = {}


def find_bin_dir() -> Path:
    """The folder with initdb, postgres and psql: Debian's newest version, else from PATH."""
    versions = sorted(
        (path for path in DEBIAN_BIN_DIRS.glob("*/bin") if (path / "initdb").is_file()),
        key=lambda path: [int(part) for part in path.parent.name.split(".") if part.isdigit()],
    )
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    raise MissingBinary(f"PostgreSQL (initdb, postgres) is not installed; run: {INSTALL_HINT}")


def _clean_environment() -> dict[str, str]:
    """This process's environment without PG* variables, which would redirect the tools."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PG")}


def psql(url: str, sql: str, *, timeout: float = 60.0) -> str:
    """Run `sql` with psql against `url`; its unaligned, tuples-only output, or RuntimeError."""
    done = subprocess.run(
        [str(find_bin_dir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
         "-d", url, "-c", sql],
        env=_clean_environment(), capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"psql failed ({done.returncode}) on {sql!r}: {done.stderr.strip()}")
    return done.stdout.strip()


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))


def create_database(url: str, name: str) -> str:
    """Create database `name` on the server at `url`; the URL that names the new database."""
    psql(url, f'CREATE DATABASE "{_identifier(name)}"')
    return _with_database(url, name)


def drop_database(url: str, name: str) -> None:
    """Drop database `name` on the server at `url`, closing its connections first."""
    psql(url, f'DROP DATABASE IF EXISTS "{_identifier(name)}" WITH (FORCE)')


def _identifier(name: str) -> str:
    if not name or not all(char.isalnum() or char == "_" for char in name):
        raise ValueError(f"a database name of letters, digits and _ only, not {name!r}")
    return name


class PostgresServer:
    """A PostgreSQL cluster of our own on 127.0.0.1:`port` (a free one by default).

    `directory` holds the data directory, the unix socket and the server log; by default a new
    temporary directory that `close()` removes. `settings` are server settings
    (``{"shared_preload_libraries": "pg_stat_statements", "log_statement": "all"}``); the log,
    with any statements logged, is `log_path`. `stop()` then `start()` keeps the data.

    Example: ``with PostgresServer() as server: psql(server.url, "SELECT 1")``.
    """

    def __init__(
        self,
        directory: Path | None = None,
        port: int | None = None,
        *,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.bin_dir = find_bin_dir()
        self._owns_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="postgres-"))
        self.port = port or free_port()
        self.settings = dict(settings or {})
        self.password = secrets.token_hex(16)
        self._user = self._server_user()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while running."""
        return self.process.pid if self.process is not None else None

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "socket"

    @property
    def log_path(self) -> Path:
        """The server's log (stderr of the postmaster): errors, and statements if logged."""
        return self.directory / "postgres.log"

    @property
    def url(self) -> str:
        """A libpq URL of the `postgres` database, as the superuser, over TCP."""
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        """The URL of another database on this server."""
        return (
            f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/"
            f"{quote(database, safe='')}"
        )

    @staticmethod
    def _server_user() -> pwd.struct_passwd | None:
        """The user the server runs as: `postgres` when we are root, else ourselves (None)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise MissingBinary(
                f"running as root, PostgreSQL needs the '{SERVER_USER}' user; run: {INSTALL_HINT}"
            ) from None

    def _as_server_user(self) -> dict[str, Any]:
        """subprocess arguments that run a program as the server user (no root groups kept)."""
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _run(self, *command: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run one PostgreSQL program as the server user; RuntimeError with its output if it fails."""
        done = subprocess.run(
            command, cwd=self.directory, env=_clean_environment(), capture_output=True,
            text=True, timeout=timeout, check=False, **self._as_server_user(),
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"{Path(command[0]).name} failed ({done.returncode}): "
                f"{(done.stdout + done.stderr).strip()}\n{self.log_tail()}"
            )
        return done

    def _check_reachable(self) -> None:
        """As root the server runs as `postgres`: every folder above ours must let it through."""
        if self._user is None:
            return
        for folder in self.directory.resolve().parents:
            mode = folder.stat()
            if not (
                mode.st_mode & 0o001
                or (mode.st_uid == self._user.pw_uid and mode.st_mode & 0o100)
                or (mode.st_gid == self._user.pw_gid and mode.st_mode & 0o010)
            ):
                raise ValueError(
                    f"the '{SERVER_USER}' user cannot enter {folder}, above {self.directory}: "
                    "leave `directory` out for a temporary one it can reach"
                )

    def _give_to_server_user(self, *paths: Path) -> None:
        if self._user is not None:
            for path in paths:
                os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _initdb(self) -> None:
        """A new cluster: trust nobody, the superuser's password from a file only it can read."""
        password_file = self.directory / "password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        self._give_to_server_user(password_file)
        try:
            self._run(
                str(self.bin_dir / "initdb"), "--pgdata", str(self.data_dir),
                "--username", SUPERUSER, "--pwfile", str(password_file),
                "--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C", "--no-sync",
            )  # fmt: skip
        finally:
            password_file.unlink()
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\ninclude_if_exists = '{OUR_SETTINGS}'\n")

    def _write_settings(self) -> None:
        """Port, addresses and the caller's settings, rewritten at every start."""
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            **self.settings,
        }
        quoted = {name: value.replace("'", "''") for name, value in settings.items()}
        lines = [f"{name} = '{value}'" for name, value in quoted.items()]
        path = self.data_dir / OUR_SETTINGS
        path.write_text("\n".join(lines) + "\n")
        self._give_to_server_user(path)

    def start(self, timeout: float = 60.0) -> None:
        """Create the cluster on first start, then start it and wait until it accepts."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"PostgreSQL {self.process.pid} is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._check_reachable()
        self.socket_dir.mkdir(exist_ok=True)
        self._give_to_server_user(self.directory, self.socket_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._write_settings()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)],
                cwd=self.directory, env=_clean_environment(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, **self._as_server_user(),
            )  # fmt: skip
        _running[self.process.pid] = self
        try:
            self._wait_ready(self.process, timeout)
        except (RuntimeError, TimeoutError):
            self.kill()
            raise

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        """Until postmaster.pid says "ready" (recovery done) and the TCP port accepts."""
        deadline = time.monotonic() + timeout
        lock_file = self.data_dir / "postmaster.pid"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with {process.returncode}:\n{self.log_tail()}"
                )
            try:
                lines = lock_file.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            # Line 1 is the postmaster's PID, line 8 its status (the one pg_ctl --wait reads).
            if (
                len(lines) >= 8
                and lines[0] == str(process.pid)
                and lines[7].strip() == "ready"
                and port_is_open(self.port)
            ):
                return
            time.sleep(0.05)
        raise TimeoutError(f"PostgreSQL was not ready within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown by PID (SIGINT: roll back, checkpoint, exit); SIGKILL if it lingers."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self.process = None
        _running.pop(process.pid, None)

    def kill(self) -> None:
        """SIGKILL to the postmaster and its backends, by PID: a crash, as clients see it."""
        process, self.process = self.process, None
        if process is None:
            return
        _running.pop(process.pid, None)
        if process.poll() is not None:
            return
        children = _children(process.pid)
        process.kill()
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        for child in children:
            wait_gone(child)

    def processes(self) -> list[int]:
        """The PIDs of the postmaster and its backends while running."""
        if self.process is None or not is_running(self.process.pid):
            return []
        return [self.process.pid, *_children(self.process.pid)]

    def close(self) -> None:
        """Stop the cluster and remove its directory if this object made it."""
        self.stop()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, characters: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-characters:]

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _children(pid: int) -> list[int]:
    """Direct children of pid (the postmaster's backends and helpers), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in task.read_text().split()]
        except FileNotFoundError:
            continue
    return found


def _stop_every_cluster_left() -> None:
    for server in list(_running.values()):
        server.stop(timeout=10)


atexit.register(_stop_every_cluster_left)
