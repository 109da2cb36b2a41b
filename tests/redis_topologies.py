"""Private Redis topologies for tests: a 3-master Cluster and a master + replica + Sentinel.

Every process is a `deploy.redis_server.RedisServer` (persistence-free), bound to 127.0.0.1 on
free ports, working in a temporary directory, and stopped by its own PID (never by name).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from deploy.processes import MissingBinary as MissingRedisBinary
from deploy.processes import free_port
from deploy.redis_server import RedisServer

__all__ = [
    "SETUP_HINT",
    "MissingRedisBinary",
    "RedisCluster3",
    "SentinelSetup",
    "command",
    "free_port",
    "require_binary",
    "role",
]

SETUP_HINT = "run `bash scripts/setup --test` to install redis-server and redis-cli"


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingRedisBinary(f"{name} is not installed: {SETUP_HINT}")
    return path


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout}s")
        time.sleep(0.05)


def redis_cli(*args: str, timeout: float = 30.0) -> str:
    """Run redis-cli (for `--cluster create`); its output, or RuntimeError when it failed."""
    completed = subprocess.run(
        [require_binary("redis-cli"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = completed.stdout + completed.stderr
    # redis-cli exits 0 on error replies when not on a terminal: read the text as well.
    if completed.returncode != 0 or "[ERR]" in output or output.startswith("ERR"):
        raise RuntimeError(f"redis-cli {' '.join(args)} failed:\n{output}")
    return output


@contextmanager
def connect(port: int) -> Iterator[redis.Redis]:
    """A short-lived synchronous client of 127.0.0.1:port (str replies, 2 s timeouts)."""
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        decode_responses=True,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
    )
    try:
        yield client
    finally:
        client.close()


def command(port: int, *args: str | int) -> Any:
    """One command against 127.0.0.1:port; error replies raise redis exceptions."""
    with connect(port) as client:
        return client.execute_command(*args)


def role(port: int) -> str | None:
    """'master' or 'slave' as the server itself says; None when it does not answer."""
    try:
        with connect(port) as client:
            return str(client.info("replication")["role"])
    except (redis.RedisError, OSError):
        return None


def cluster_state(port: int) -> str | None:
    """`cluster_state` from CLUSTER INFO ('ok' or 'fail'); None when the node does not answer."""
    try:
        text = str(command(port, "CLUSTER", "INFO"))
    except (redis.RedisError, OSError):
        return None
    for line in text.splitlines():
        name, _, value = line.strip().partition(":")
        if name == "cluster_state":
            return value
    return None


def data_server(directory: Path, *options: str) -> RedisServer:
    """A persistence-free redis-server on a free port for a topology, working in `directory`."""
    # Full syncs start at once (the default waits 5 s for more replicas to join).
    return RedisServer(
        directory, durable=False, options=("--repl-diskless-sync-delay", "0", *options)
    )


@dataclass
class RedisCluster3:
    """Three masters, no replicas, all 16384 slots assigned by `redis-cli --cluster create`."""

    directory: Path
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self) -> None:
        require_binary("redis-cli")
        try:
            for number in range(3):
                directory = self.directory / f"node-{number}"
                node = data_server(
                    directory,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(directory / "nodes.conf"),
                    # An explicit bus port: port + 10000 may be taken, or beyond 65535.
                    "--cluster-port",
                    str(free_port()),
                    "--cluster-node-timeout",
                    "2000",
                )
                self.nodes.append(node)
                node.start()
            redis_cli(
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            )
            for port in self.ports:
                wait_until(
                    lambda port=port: cluster_state(port) == "ok",  # type: ignore[misc]
                    20.0,
                    f"cluster node 127.0.0.1:{port} did not report cluster_state:ok",
                )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def node_of(self, key: str) -> int:
        """The port of the master serving `key`'s hash slot (CLUSTER KEYSLOT + CLUSTER SLOTS)."""
        slot = int(command(self.ports[0], "CLUSTER", "KEYSLOT", key))
        for start, end, primary, *_ in command(self.ports[0], "CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return int(primary[1])
        raise LookupError(f"no node serves slot {slot}")

    def dbsizes(self) -> dict[int, int]:
        """How many keys each master holds: {port: DBSIZE}."""
        return {port: int(command(port, "DBSIZE")) for port in self.ports}


@dataclass
class SentinelSetup:
    """One master, one replica (--replicaof) and one sentinel that monitors them as `name`."""

    directory: Path
    name: str = "mymaster"
    master: RedisServer | None = None
    replica: RedisServer | None = None
    sentinel: RedisServer | None = None

    @property
    def sentinel_port(self) -> int:
        assert self.sentinel is not None, "the sentinel is not running"
        return self.sentinel.port

    def process_on(self, port: int) -> RedisServer:
        for process in (self.master, self.replica):
            if process is not None and process.port == port:
                return process
        raise LookupError(f"no data server of this setup listens on {port}")

    def start(self) -> None:
        try:
            self.master = data_server(self.directory / "master")
            self.master.start()
            master_port = self.master.port

            self.replica = data_server(
                self.directory / "replica", "--replicaof", "127.0.0.1", str(master_port)
            )
            self.replica.start()
            replica_port = self.replica.port
            wait_until(
                lambda: self._replication(replica_port).get("master_link_status") == "up",
                10.0,
                "the replica did not finish its first sync",
            )

            self.sentinel = RedisServer(
                self.directory / "sentinel",
                sentinel=[
                    f"sentinel monitor {self.name} 127.0.0.1 {master_port} 1",
                    f"sentinel down-after-milliseconds {self.name} 1000",
                    f"sentinel failover-timeout {self.name} 5000",
                    f"sentinel parallel-syncs {self.name} 1",
                ],
            )
            self.sentinel.start()
            wait_until(
                lambda: self._sentinel_knows_replica(replica_port),
                20.0,
                "the sentinel did not discover the replica",
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in (self.sentinel, self.replica, self.master):
            if process is not None:
                process.stop()

    @staticmethod
    def _replication(port: int) -> dict[str, Any]:
        try:
            with connect(port) as client:
                return dict(client.info("replication"))
        except (redis.RedisError, OSError):
            return {}

    def _sentinel_knows_replica(self, replica_port: int) -> bool:
        try:
            with connect(self.sentinel_port) as client:
                replicas = client.sentinel_slaves(self.name)
        except (redis.RedisError, OSError):
            return False
        return any(
            int(replica["port"]) == replica_port and "disconnected" not in replica["flags"]
            for replica in replicas
        )

    def master_port(self) -> int:
        """The master's port as the sentinel reports it now."""
        with connect(self.sentinel_port) as client:
            address = client.sentinel_get_master_addr_by_name(self.name)
        assert isinstance(address, tuple), f"the sentinel knows no master {self.name}"
        return int(address[1])

    def wait_for_replica_sync(self, timeout_ms: int = 5000) -> None:
        """WAIT until the replica acknowledged every write the master accepted so far."""
        acknowledged = int(command(self.master_port(), "WAIT", 1, timeout_ms))
        if acknowledged < 1:
            raise TimeoutError("the replica did not acknowledge the master's writes")

    def failover(self, timeout: float = 20.0) -> None:
        """`SENTINEL FAILOVER`, retried while the sentinel has no usable replica yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                command(self.sentinel_port, "SENTINEL", "FAILOVER", self.name)
                return
            except redis.ResponseError as error:
                if "NOGOODSLAVE" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def wait_for_new_master(self, old_port: int, timeout: float = 25.0) -> int:
        """Block until the failover away from `old_port` is over, as clients will see it.

        Over means: `SENTINEL MASTER` (what redis-py's Sentinel client reads, unlike
        GET-MASTER-ADDR-BY-NAME, which switches earlier) names another server, with no down or
        failover flag left; that server says it is a master; and every other running data server
        says it is a replica (an old master still up has been demoted: writes sent to it while it
        still believed itself master would be lost when it resyncs, whatever the client).
        """

        def settled() -> bool:
            try:
                with connect(self.sentinel_port) as client:
                    state = client.sentinel_master(self.name)
            except (redis.RedisError, OSError):
                return False
            assert isinstance(state, dict)
            port = int(state["port"])
            if port == old_port or state["flags"] != "master" or role(port) != "master":
                return False
            others = [
                process
                for process in (self.master, self.replica)
                if process is not None and process.port != port and process.pid is not None
            ]
            return all(role(process.port) == "slave" for process in others)

        wait_until(settled, timeout, f"the sentinel did not finish failing over {self.name}")
        return self.master_port()
