"""deploy/postgres_server.py: a private PostgreSQL cluster beside the machine's own, stopped by PID."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.postgres_server import PostgresServer, create_database, drop_database, psql
from deploy.processes import is_running, port_is_open


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    with PostgresServer() as running:
        yield running


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


def test_a_new_cluster_answers_on_loopback_only_and_not_as_root(server: PostgresServer) -> None:
    assert psql(server.url, "SELECT 1") == "1"
    assert psql(server.url, "SHOW listen_addresses") == "127.0.0.1"
    assert psql(server.url, "SHOW port") == str(server.port)
    assert server.port != 5432
    assert server.pid is not None
    assert uid_of(server.pid) != 0, "PostgreSQL refuses to run as root; the launcher must not try"


def test_it_refuses_a_connection_without_the_password(server: PostgresServer) -> None:
    without_password = f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
    with pytest.raises(RuntimeError, match="password"):
        psql(without_password, "SELECT 1")


def test_the_statistics_extension_loads_and_counts_statements() -> None:
    settings = {"shared_preload_libraries": "pg_stat_statements"}
    with PostgresServer(settings=settings) as server:
        psql(server.url, "CREATE EXTENSION pg_stat_statements")
        for _ in range(3):
            psql(server.url, "SELECT 40 + 2")
        calls = psql(
            server.url,
            "SELECT sum(calls) FROM pg_stat_statements WHERE query LIKE 'SELECT $1 + $2'",
        )
        assert calls == "3"


def test_a_logged_statement_can_be_counted_in_its_log() -> None:
    with PostgresServer(settings={"log_statement": "all"}) as server:
        for _ in range(2):
            psql(server.url, "SELECT 'count me'")
        log = server.log_path.read_text()
        assert log.count("statement: SELECT 'count me'") == 2


def test_a_stop_and_start_keeps_the_data_on_the_same_port(server: PostgresServer) -> None:
    psql(server.url, "CREATE TABLE kept (value text); INSERT INTO kept VALUES ('still here')")
    first_pid = server.pid
    server.stop()
    assert not port_is_open(server.port)
    with pytest.raises(RuntimeError):
        psql(server.url, "SELECT 1")
    server.start()
    assert server.pid != first_pid
    assert psql(server.url, "SELECT value FROM kept") == "still here"


def test_a_killed_cluster_recovers_every_committed_row_when_started_again(
    server: PostgresServer,
) -> None:
    psql(server.url, "CREATE TABLE crash (n int); INSERT INTO crash SELECT generate_series(1, 100)")
    processes = server.processes()
    assert len(processes) > 1, "the postmaster and its helper processes"
    server.kill()
    assert [pid for pid in processes if is_running(pid)] == []
    server.start()
    assert psql(server.url, "SELECT count(*) FROM crash") == "100"


def test_stop_leaves_no_process_and_close_removes_its_directory() -> None:
    server = PostgresServer()
    server.start()
    processes = server.processes()
    directory = server.directory
    assert directory.is_dir()
    server.close()
    assert [pid for pid in processes if is_running(pid)] == []
    assert not port_is_open(server.port)
    assert not directory.exists()


def test_two_clusters_run_side_by_side_with_their_own_data() -> None:
    with PostgresServer() as first, PostgresServer() as second:
        assert first.port != second.port
        psql(first.url, "CREATE TABLE only_here (n int)")
        assert psql(first.url, "SELECT to_regclass('only_here') IS NOT NULL") == "t"
        assert psql(second.url, "SELECT to_regclass('only_here') IS NOT NULL") == "f"


def test_a_bad_setting_is_an_error_that_quotes_the_server_log() -> None:
    server = PostgresServer(settings={"shared_buffers": "plenty"})
    try:
        with pytest.raises(RuntimeError, match='invalid value for parameter "shared_buffers"'):
            server.start()
        assert server.pid is None
    finally:
        server.close()


def test_a_database_made_for_a_test_is_its_own_and_goes_away(server: PostgresServer) -> None:
    url = create_database(server.url, "made_for_a_test")
    assert url.endswith("/made_for_a_test")
    assert psql(url, "SELECT current_database()") == "made_for_a_test"
    psql(url, "CREATE TABLE t (n int)")  # a connection may still be open: the drop forces it
    drop_database(server.url, "made_for_a_test")
    with pytest.raises(RuntimeError, match="does not exist"):
        psql(url, "SELECT 1")


def test_database_names_are_plain_identifiers(server: PostgresServer) -> None:
    with pytest.raises(ValueError, match="letters, digits and _"):
        create_database(server.url, 'x"; DROP DATABASE postgres; --')


def test_the_suite_fixtures_give_each_test_a_fresh_database(
    postgres_url: str, postgres_database: str
) -> None:
    assert (
        psql(postgres_database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
    )
    name = psql(postgres_database, "SELECT current_database()")
    assert name.startswith("test_")
    assert name in psql(postgres_url, "SELECT string_agg(datname, ',') FROM pg_database")
    if "TEST_POSTGRES_URL" not in os.environ:
        assert ":5432/" not in postgres_url, "the suite's own cluster, not the machine's"


@pytest.mark.parametrize("private_postgres", [{"max_connections": "7"}], indirect=True)
def test_a_private_cluster_takes_settings_and_logs_statements(
    private_postgres: PostgresServer,
) -> None:
    assert psql(private_postgres.url, "SHOW max_connections") == "7"
    psql(private_postgres.url, "SELECT 'logged'")
    assert "statement: SELECT 'logged'" in private_postgres.log_path.read_text()
