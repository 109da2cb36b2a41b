"""N app processes behind the system nginx, sharing one store: ``python -m deploy.cluster``.

Usage: ``python -m deploy.cluster --workers 3 --port 8080 [--redis-url URL]
[--database-url URL | --postgres] [--server NAME]``

Two private redis-servers unless told otherwise: sessions on one with a memory bound that
evicts only keys with a TTL (every session has one), users and throttle counters on another
that never evicts. A flood of anonymous sessions can then push out idle sessions, but never an
account (issue 14: with allkeys-lru on one shared Redis it evicted user records).

With ``--database-url postgresql://…`` (or ``--postgres``, a private PostgreSQL cluster) the
workers keep sessions, users and throttle counters in PostgreSQL and no Redis runs; with
``--redis-url`` as well, sessions go to that Redis and accounts to PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from urllib.parse import urlsplit, urlunsplit

from deploy.nginx import LOOPBACK_NAMES, Nginx
from deploy.postgres_server import PostgresServer, create_database, find_bin_dir
from deploy.processes import (
    MissingBinary,
    find_binary,
    free_port,
    port_is_open,
    terminate,
    wait_gone,
)
from deploy.redis_server import RedisServer
from deploy.servers import ASGI_APP, DEFAULT_SERVER, SERVERS, check_installed, server_command

ROOT = Path(__file__).resolve().parent.parent

#: Evict only keys that have a TTL, least recently used first. Every session key has a TTL, so
#: at maxmemory an idle session goes; a key without a TTL (a user record, had it landed here)
#: never does: writes then fail (OOM, a 503) instead.
SESSION_EVICTION = "volatile-lru"
#: The default bound of the private session Redis: about 300,000 sessions of the demo's size.
SESSION_MEMORY = "128mb"
#: The database the workers use on a private PostgreSQL (--postgres).
DEMO_DATABASE = "demo"
#: What tells the app where sessions and accounts live; the cluster sets these itself.
STORE_VARIABLES = ("REDIS_URL", "AUTH_REDIS_URL", "DATABASE_URL", "AUTH_DATABASE_URL")


def fetch(url: str, timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    """GET url without raising on HTTP errors: (status, lower-case headers, body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            headers = {name.lower(): value for name, value in response.headers.items()}
            return response.status, headers, response.read()
    except urllib.error.HTTPError as error:
        headers = {name.lower(): value for name, value in error.headers.items()}
        return error.code, headers, error.read()


def healthy(url: str) -> bool:
    """True when GET url answers 200 (a /healthz URL)."""
    try:
        status, _, _ = fetch(url)
    except (OSError, ValueError):
        return False
    return status == 200


class Worker:
    """One ASGI server on its own loopback port, in a process group of its own.

    Some servers answer from the very process we start (hypercorn --workers 0, uvicorn);
    others (granian) from a child of it. `pid` is the process that answers, as the app reports
    it in X-Served-By; stopping and killing act on the whole group we started.
    """

    def __init__(self, index: int, port: int, command: list[str], env: Mapping[str, str],
                 log_path: Path) -> None:  # fmt: skip
        self.index = index
        self.port = port
        self.command = command
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.serving_pid: int | None = None

    @property
    def running(self) -> bool:
        """True while the process we started is alive."""
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        """The PID that answers requests (X-Served-By), while the worker runs."""
        if not self.running:
            return None
        return self.serving_pid

    def start(self) -> None:
        """Start the server process; its output goes to log_path."""
        self.serving_pid = None
        with self.log_path.open("ab") as log:
            # A session (and process group) of its own: Ctrl-C in the terminal reaches only the
            # cluster command, which stops everything in order, and the group holds exactly
            # the processes this worker consists of.
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until this worker answers 200 on /healthz directly (not through nginx)."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"worker {self.index} exited early:\n{self.log_tail()}")
            try:
                status, headers, _ = fetch(url)
            except (OSError, ValueError):
                status, headers = 0, {}
            if status == 200:
                served_by = headers.get("x-served-by", "")
                pid = served_by.rpartition(":")[2]
                self.serving_pid = int(pid) if pid.isdigit() else self.process_pid
                return
            time.sleep(0.1)
        raise TimeoutError(f"worker {self.index} not healthy in {timeout}s:\n{self.log_tail()}")

    @property
    def process_pid(self) -> int | None:
        """The PID of the process we started (the server's supervisor, for granian)."""
        return self.process.pid if self.process is not None else None

    def stop(self) -> None:
        """Graceful stop: SIGTERM by PID, SIGKILL only if it hangs; then nothing of it is left."""
        self.resume()  # a stopped process would hold its SIGTERM until the 10 s kill
        terminate(self.process)
        self._kill_group()

    def pause(self) -> None:
        """SIGSTOP the serving process: a hung worker that still accepts connections (the kernel
        queues them) but never answers."""
        if self.pid is None:
            raise RuntimeError(f"worker {self.index} is not running")
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT every process of this worker (a no-op for one that runs)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        if self.serving_pid is not None:
            try:
                os.kill(self.serving_pid, signal.SIGCONT)  # granian's worker: same group, but
            except ProcessLookupError:  # be sure even if it ever moves to a group of its own
                pass

    def kill(self) -> None:
        """SIGKILL every process of this worker at once: the crash a test simulates."""
        self._kill_group()

    def _kill_group(self) -> None:
        # The group id is the PID of the process we started (start_new_session=True).
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group is already empty
        if self.process.poll() is None:
            self.process.wait()
        if self.serving_pid is not None:
            wait_gone(self.serving_pid)  # a server's child, reaped by init rather than by us

    def log_tail(self, lines: int = 30) -> str:
        """The end of this worker's output."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Cluster:
    """Workers + nginx + two private Redis servers (unless a store is given), by PID.

    `redis` holds the sessions (bounded by `session_memory`, evicting only keys with a TTL),
    `auth_redis` the users and throttle counters (never evicts); the workers get them as
    REDIS_URL and AUTH_REDIS_URL. With `redis_url` and no `auth_redis_url`, everything lives
    on that one Redis, as the app does by default.

    With `database_url` (a PostgreSQL URL), or `postgres=True` (a private PostgreSQL cluster,
    `self.postgres`, with a database of its own), the workers get DATABASE_URL and keep
    sessions, users and throttle counters there; no Redis runs unless `redis_url` is also
    given, which then holds the sessions (the app's rule: accounts go to the database).

    `server_names` are the host names the site answers to besides localhost and 127.0.0.1
    (nginx's server_name and the app's TRUSTED_HOSTS); `unlimited_addresses` are exempt from
    nginx's per-address limits (an office NAT, a monitoring host, a load test).

    Example::

        with Cluster(workers=3, port=0) as cluster:   # port 0: any free port
            print(cluster.url)                         # http://127.0.0.1:<port>/
            cluster.kill_worker(0)
    """

    def __init__(
        self,
        workers: int = 3,
        port: int = 8080,
        redis_url: str | None = None,
        server: str = DEFAULT_SERVER,
        secret_key: str | None = None,
        app: str = ASGI_APP,
        env: Mapping[str, str] | None = None,
        *,
        auth_redis_url: str | None = None,
        database_url: str | None = None,
        postgres: bool = False,
        session_memory: str = SESSION_MEMORY,
        server_names: Iterable[str] = (),
        unlimited_addresses: Iterable[str] = (),
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if postgres and database_url:
            raise ValueError("--postgres starts a database, --database-url names one: not both")
        check_installed(server)
        # Fail before starting anything when a system program is missing.
        find_binary("nginx", "/usr/sbin/nginx")
        self.private_redis = redis_url is None and not (database_url or postgres)
        if self.private_redis:
            find_binary("redis-server")
        if postgres:
            find_bin_dir()
        self.worker_count = workers
        self.port = port or free_port()
        self.redis_url = redis_url
        self.auth_redis_url = auth_redis_url
        self.database_url = database_url
        self.private_postgres = postgres
        self.session_memory = session_memory
        self.server_names = tuple(dict.fromkeys([*LOOPBACK_NAMES, *server_names]))
        self.unlimited_addresses = tuple(unlimited_addresses)
        self.server = server
        self.app = app
        # Every worker must sign cookies with the same key, and keep it across restarts.
        self.secret_key = secret_key or os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32)
        self.extra_env = dict(env or {})
        self.run_dir = Path(tempfile.mkdtemp(prefix="deploy-cluster-"))
        self.redis: RedisServer | None = None
        self.auth_redis: RedisServer | None = None
        self.postgres: PostgresServer | None = None
        self.workers: list[Worker] = []
        self.nginx: Nginx | None = None

    # ----- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The site's address through nginx."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 60.0) -> None:
        """Start the private store, every worker, then nginx; return once all answer."""
        if port_is_open(self.port):
            raise RuntimeError(f"port {self.port} is already in use; pick another with --port")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.private_postgres:
                # Its own temporary directory: as root it runs as `postgres`, which cannot
                # enter our run_dir.
                self.postgres = PostgresServer()
                self.postgres.start()
                self.database_url = create_database(self.postgres.url, DEMO_DATABASE)
            if self.private_redis:
                # Sessions: bounded, and only keys with a TTL (every session) may be evicted.
                self.redis = RedisServer(
                    self.run_dir / "redis",
                    options=("--maxmemory", self.session_memory,
                             "--maxmemory-policy", SESSION_EVICTION),
                )  # fmt: skip
                if self.auth_redis_url is None:
                    # Users and throttle counters: never evicted.
                    self.auth_redis = RedisServer(
                        self.run_dir / "auth-redis",
                        options=("--maxmemory", "0", "--maxmemory-policy", "noeviction"),
                    )
                self._start_redis()
            for index in range(self.worker_count):
                port = free_port()
                command = server_command(self.server, port, self.app)
                log = self.run_dir / f"worker-{index}.log"
                self.workers.append(Worker(index, port, command, self._worker_env(), log))
            for worker in self.workers:
                worker.start()
            for worker in self.workers:
                worker.wait_healthy(timeout)
            self.nginx = Nginx(
                self.run_dir / "nginx", self.port, [w.port for w in self.workers],
                server_names=self.server_names, unlimited_addresses=self.unlimited_addresses,
            )  # fmt: skip
            self.nginx.start()
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop everything this cluster started, by PID: nginx, then workers, then the store."""
        if self.nginx is not None:
            self.nginx.stop()
        for worker in self.workers:
            worker.stop()
        for server in (self.redis, self.auth_redis):
            if server is not None:
                server.stop()
        if self.postgres is not None:
            self.postgres.close()  # stops it and removes its directory
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until /healthz answers 200 through nginx once per worker in a row."""
        deadline = time.monotonic() + timeout
        in_a_row = 0
        while time.monotonic() < deadline:
            in_a_row = in_a_row + 1 if healthy(self.url + "healthz") else 0
            if in_a_row >= len(self.workers):
                return
            time.sleep(0.05)
        raise TimeoutError(f"the cluster did not answer in {timeout}s:\n{self.diagnostics()}")

    # ----- faults and restarts, for tests and for watching the session follow you -----------

    @property
    def worker_pids(self) -> list[int | None]:
        """PID of each worker (None for one that is not running)."""
        return [worker.pid for worker in self.workers]

    def kill_worker(self, index: int) -> None:
        """SIGKILL one worker by PID, like a crash; nginx routes around it."""
        self.workers[index].kill()

    def pause_worker(self, index: int) -> None:
        """SIGSTOP one worker by PID: hung, not dead (its port still accepts connections)."""
        self.workers[index].pause()

    def resume_worker(self, index: int) -> None:
        """SIGCONT a paused worker by PID."""
        self.workers[index].resume()

    def start_worker(self, index: int, timeout: float = 30.0) -> None:
        """Start a stopped worker again on its own port; return once nginx routes to it.

        nginx sidelines a worker for fail_timeout after it refused a connection, so a rolling
        restart that moved on as soon as the worker answered could leave nginx with no worker.
        """
        worker = self.workers[index]
        worker.start()
        worker.wait_healthy(timeout)
        self.wait_in_rotation(index, timeout)

    def wait_in_rotation(self, index: int, timeout: float = 30.0) -> None:
        """Wait until a request through nginx is answered by worker `index`."""
        deadline = time.monotonic() + timeout
        pid = self.workers[index].pid
        while time.monotonic() < deadline:
            try:
                status, headers, _ = fetch(self.url + "healthz")
            except (OSError, ValueError):
                status, headers = 0, {}
            if status == 200 and headers.get("x-served-by", "").endswith(f":{pid}"):
                return
            time.sleep(0.05)
        raise TimeoutError(f"nginx did not route to worker {index} in {timeout}s")

    def restart_worker(self, index: int, timeout: float = 30.0) -> None:
        """Graceful stop then start of one worker."""
        self.workers[index].stop()
        self.start_worker(index, timeout)

    def stop_workers(self) -> None:
        """Gracefully stop every worker (nginx and Redis stay up)."""
        for worker in self.workers:
            worker.stop()

    def start_workers(self, timeout: float = 30.0) -> None:
        """Start every stopped worker and wait until nginx routes to each of them again."""
        for worker in self.workers:
            if not worker.running:
                worker.start()
        for worker in self.workers:
            worker.wait_healthy(timeout)
        for worker in self.workers:
            self.wait_in_rotation(worker.index, timeout)

    def restart_redis(self) -> None:
        """Stop and start the private Redis servers (same ports, same append-only files)."""
        if self.redis is None:
            raise RuntimeError("this cluster uses an external Redis (--redis-url)")
        for server in (self.redis, self.auth_redis):
            if server is not None:
                server.stop()
        self._start_redis()

    def restart_postgres(self) -> None:
        """Stop and start the private PostgreSQL (same port, same data)."""
        if self.postgres is None:
            raise RuntimeError("this cluster has no private PostgreSQL (--postgres)")
        self.postgres.stop()
        self.postgres.start()

    def _start_redis(self) -> None:
        """Start the private servers (each with its memory policy in its command line)."""
        assert self.redis is not None
        self.redis.start()
        if self.auth_redis is not None:
            self.auth_redis.start()

    # ----- internals ------------------------------------------------------------------------

    def _worker_env(self) -> dict[str, str]:
        """The environment of every worker: same store, same secret."""
        env = {k: v for k, v in os.environ.items() if k not in STORE_VARIABLES}
        env.update(self.extra_env)
        stores = {
            "REDIS_URL": self.redis.url if self.redis is not None else self.redis_url,
            "AUTH_REDIS_URL": (
                self.auth_redis.url if self.auth_redis is not None else self.auth_redis_url
            ),
            "DATABASE_URL": self.database_url,
        }
        env.update({name: url for name, url in stores.items() if url})
        # nginx reaches the workers from 127.0.0.1; nobody else's forwarded headers count.
        env["TRUSTED_PROXIES"] = "127.0.0.1"
        env["TRUSTED_HOSTS"] = " ".join(self.server_names)
        env["SECRET_KEY"] = self.secret_key
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (str(ROOT), env.get("PYTHONPATH", "")) if part
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def diagnostics(self) -> str:
        """Recent logs of every part, for error messages."""
        parts = [f"--- worker {w.index} (port {w.port}) ---\n{w.log_tail()}" for w in self.workers]
        if self.nginx is not None:
            parts.append(f"--- nginx error.log ---\n{self.nginx.error_log()[-3000:]}")
        return "\n".join(parts)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.cluster",
        description="Run the demo as several workers behind nginx, sharing sessions and "
        "accounts in Redis (the default) or PostgreSQL.",
    )
    parser.add_argument("--workers", type=int, default=3, help="app processes (default 3)")
    parser.add_argument("--port", type=int, default=8080, help="nginx port (default 8080)")
    parser.add_argument(
        "--redis-url", default=None,
        help="an existing Redis for sessions (and, without --auth-redis-url, users); default: "
             "a private redis-server with append-only persistence",
    )  # fmt: skip
    parser.add_argument(
        "--auth-redis-url", default=None,
        help="an existing Redis for users and throttle counters; default: a private one that "
             "never evicts (only with the private session Redis)",
    )  # fmt: skip
    database = parser.add_mutually_exclusive_group()
    database.add_argument(
        "--database-url", default=None, metavar="URL",
        help="an existing PostgreSQL (postgresql://…) for sessions, users and throttle counters "
             "(with --redis-url: users and throttle counters only); no Redis is started",
    )  # fmt: skip
    database.add_argument(
        "--postgres", action="store_true",
        help="the same on a private PostgreSQL cluster started for the run (deploy/postgres_server.py)",
    )  # fmt: skip
    parser.add_argument(
        "--session-memory", default=SESSION_MEMORY,
        help=f"maxmemory of the private session Redis (default {SESSION_MEMORY}; "
             f"{SESSION_EVICTION} beyond it)",
    )  # fmt: skip
    parser.add_argument(
        "--server-name", action="append", default=[], metavar="NAME",
        help="a host name the site answers to besides localhost and 127.0.0.1 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--server", choices=SERVERS, default=DEFAULT_SERVER,
                        help=f"ASGI server (default {DEFAULT_SERVER})")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the cluster, print its URL, and stop everything on Ctrl-C or SIGTERM."""
    args = _parse_args(argv)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Explicit for SIGINT too: a shell starts background jobs with SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        cluster = Cluster(
            args.workers, args.port, args.redis_url, args.server,
            auth_redis_url=args.auth_redis_url, database_url=args.database_url,
            postgres=args.postgres, session_memory=args.session_memory,
            server_names=args.server_name,
        )  # fmt: skip
    except (MissingBinary, RuntimeError, ValueError) as error:
        print(f"deploy.cluster: {error}", file=sys.stderr)
        return 2
    try:
        cluster.start()
        pids = ", ".join(str(pid) for pid in cluster.worker_pids)
        print(f"Workers: {args.workers} x {args.server}, PIDs {pids}")
        if cluster.nginx is not None:
            print(f"nginx: PID {cluster.nginx.pid}, config {cluster.nginx.config_path}")
        for line in _where_things_live(cluster, args.session_memory):
            print(line)
        print(f"Serving on {cluster.url} (Ctrl-C stops everything)", flush=True)
        reported: set[int] = set()
        while True:
            time.sleep(1)
            for worker in cluster.workers:
                if not worker.running and worker.index not in reported:
                    reported.add(worker.index)
                    print(f"worker {worker.index} exited; nginx now skips it", file=sys.stderr)
    except KeyboardInterrupt:
        print("Stopping…", file=sys.stderr)
        return 0
    except (RuntimeError, TimeoutError) as error:
        print(f"deploy.cluster: {error}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C or SIGTERM must not interrupt the orderly stop of our children.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.stop()


def _where_things_live(cluster: Cluster, session_memory: str) -> list[str]:
    """What the start-up lines say about the stores (PostgreSQL URLs without their password)."""
    lines = []
    if cluster.redis is not None:
        lines.append(f"Sessions: {cluster.redis.url} (private, append-only, maxmemory "
                     f"{session_memory} {SESSION_EVICTION}, PID {cluster.redis.pid})")  # fmt: skip
    elif cluster.redis_url:
        lines.append(f"Sessions: {cluster.redis_url}")
    if cluster.auth_redis is not None:
        lines.append(f"Users: {cluster.auth_redis.url} (private, append-only, noeviction, "
                     f"PID {cluster.auth_redis.pid})")  # fmt: skip
    elif cluster.auth_redis_url:
        lines.append(f"Users: {cluster.auth_redis_url}")
    if cluster.database_url:
        what = "Users" if cluster.redis_url else "Sessions, users and throttle counters"
        where = _without_password(cluster.database_url)
        if cluster.postgres is not None:
            where += f" (private, PID {cluster.postgres.pid})"
        lines.append(f"{what}: {where}")
    return lines


def _without_password(url: str) -> str:
    """``postgresql://app:secret@db/app`` as ``postgresql://app@db/app``."""
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    user = credentials.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}{at}{hosts}"))


if __name__ == "__main__":
    raise SystemExit(main())
