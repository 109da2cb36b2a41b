"""deploy/redis_server.py: the one launcher of a private redis-server, stopped by its own PID."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from deploy.processes import is_running, port_is_open
from deploy.redis_server import RedisServer


def client(server: RedisServer, **options: Any) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2, **options)


def test_a_durable_server_keeps_every_write_through_a_crash(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        with client(server) as before:
            before.set("kept", "yes")
        server.kill()  # SIGKILL: only what was fsynced survives
        server.start()
        with client(server) as after:
            assert after.get("kept") == b"yes"
    finally:
        server.stop()


def test_a_server_without_persistence_writes_nothing_to_disk(tmp_path: Path) -> None:
    with RedisServer(tmp_path, durable=False) as server, client(server) as connection:
        connection.set("gone", "soon")
        assert connection.config_get("appendonly") == {"appendonly": "no"}
        assert connection.config_get("save") == {"save": ""}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["redis.log"]


def test_stop_leaves_no_process_and_frees_the_port(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, durable=False)
    server.start()
    pid = server.pid
    assert pid is not None and is_running(pid)
    server.stop()
    assert not is_running(pid)
    assert not port_is_open(server.port)
    assert server.pid is None


def test_options_reach_the_server(tmp_path: Path) -> None:
    with RedisServer(tmp_path, durable=False, options=("--requirepass", "s3cr:t")) as server:
        with client(server) as anonymous, pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        with client(server, password="s3cr:t") as known:
            assert known.ping()


def test_it_listens_on_loopback_only(tmp_path: Path) -> None:
    with RedisServer(tmp_path, durable=False) as server, client(server) as connection:
        assert connection.config_get("bind") == {"bind": "127.0.0.1"}
        assert server.url == f"redis://127.0.0.1:{server.port}/0"


def test_a_server_that_cannot_start_says_why_and_leaves_nothing_running(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, durable=False, options=("--maxmemory-policy", "whenever"))
    with pytest.raises(RuntimeError, match="did not start") as failure:
        server.start()
    assert "maxmemory-policy" in str(failure.value), "the log's reason is in the error"
    assert server.pid is None
    assert not port_is_open(server.port)


def test_a_sentinel_gets_a_config_file_of_its_own(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "master", durable=False) as master:
        monitor = f"sentinel monitor watched 127.0.0.1 {master.port} 1"
        with RedisServer(tmp_path / "sentinel", sentinel=[monitor]) as sentinel:
            with client(sentinel, decode_responses=True) as connection:
                address = connection.sentinel_get_master_addr_by_name("watched")
            assert tuple(address) == ("127.0.0.1", master.port)
            assert (
                (tmp_path / "sentinel" / "sentinel.conf")
                .read_text()
                .startswith(f"port {sentinel.port}\n")
            )
