"""Accounts in PostgreSQL: tables of their own, one winner per name and every failure counted at
N = 50, users on AUTH_DATABASE_URL, and a database that stops or refuses writes is a 503."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from auth import (
    AuthUnavailable,
    PostgresCounters,
    PostgresUserStore,
    Throttle,
    UsernameTaken,
    UserStore,
)
from auth.postgres import connect, table_name
from deploy.postgres_server import PostgresServer, psql
from sessions import PostgresStore, RedisStore

from .support import Site, read_only, site_settings, start_site

N = 50


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as running:
        yield running


def tables(url: str) -> set[str]:
    """The tables of the public schema of the database at ``url``."""
    found = psql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return set(found.split())


def count_rows(url: str, sql: str) -> int:
    return int(psql(url, sql))


async def test_fifty_parallel_registrations_of_one_name_on_two_pools_make_exactly_one_user(
    postgres_database: str,
) -> None:
    """Two workers' pools, 25 registrations each, all at once: one user, 49 UsernameTaken."""
    pools = [connect(postgres_database, pool_size=10) for _ in range(2)]
    stores = [PostgresUserStore(pool) for pool in pools]
    results = await asyncio.gather(
        *(stores[n % 2].create("Race" if n % 3 else "rACE", f"hash{n}") for n in range(N)),
        return_exceptions=True,
    )
    for pool in pools:
        await pool.close()

    created = [r for r in results if not isinstance(r, BaseException)]
    assert len(created) == 1, results
    assert all(isinstance(r, UsernameTaken) for r in results if r is not created[0]), results
    assert count_rows(postgres_database, "SELECT count(*) FROM auth_users") == 1
    winner = created[0]
    stored = psql(postgres_database, "SELECT id, username_key, password_hash FROM auth_users")
    assert stored == f"{winner.id}|race|{winner.password_hash}"


async def test_fifty_parallel_registrations_of_one_name_through_the_site_sign_up_one_visitor(
    postgres_database: str, tmp_path: Path, stack: AsyncExitStack
) -> None:
    settings = site_settings(
        "postgres",
        tmp_path / "instance",
        "demo:",
        database_url=postgres_database,
        AUTH_REGISTER_LIMIT=10 * N,
    )
    workers = [await start_site(stack, "postgres", settings) for _ in range(2)]
    visitors = [workers[n % 2].browser(f"198.51.100.{n + 1}") for n in range(N)]
    tokens = await asyncio.gather(*(visitor.csrf_token() for visitor in visitors))
    responses = await asyncio.gather(
        *(
            visitor.register("carol", csrf_token=token)
            for visitor, token in zip(visitors, tokens, strict=True)
        )
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [302] + [400] * (N - 1), statuses
    for response in responses:
        if response.status_code == 400:
            assert "That username is taken." in await response.get_data(as_text=True)
    [winner] = [v for v, r in zip(visitors, responses, strict=True) if r.status_code == 302]
    assert await winner.signed_in_as() == "carol"
    assert count_rows(postgres_database, "SELECT count(*) FROM demo_auth_users") == 1


async def fifty_parallel_failed_logins(
    database_url: str, instance: Path, stack: AsyncExitStack, **limits: int
) -> tuple[list[Site], list[int]]:
    """Two workers on one database; 50 wrong passwords at once for one registered name, from
    one address, half on each worker. The workers, and the status of each attempt."""
    settings = site_settings("postgres", instance, "demo:", database_url=database_url, **limits)
    workers = [await start_site(stack, "postgres", settings) for _ in range(2)]
    await workers[0].browser("203.0.113.1").register("alice")
    attackers = [workers[n % 2].browser("198.51.100.7") for n in range(N)]
    tokens = await asyncio.gather(*(attacker.csrf_token() for attacker in attackers))
    responses = await asyncio.gather(
        *(
            attacker.login("alice", "wrong guess", csrf_token=token)
            for attacker, token in zip(attackers, tokens, strict=True)
        )
    )
    return workers, [response.status_code for response in responses]


async def test_fifty_parallel_failed_logins_are_every_one_counted(
    postgres_database: str, tmp_path: Path, stack: AsyncExitStack
) -> None:
    """Both counters say 50, and the right password is then refused."""
    workers, statuses = await fifty_parallel_failed_logins(
        postgres_database, tmp_path / "instance", stack, AUTH_LOGIN_LIMIT=N, AUTH_ADDRESS_LIMIT=N
    )
    assert statuses == [401] * N
    counts = psql(postgres_database, "SELECT key, count FROM demo_auth_throttle ORDER BY key")
    by_key = dict(line.rsplit("|", 1) for line in counts.splitlines())
    assert by_key["login:addr:198.51.100.7"] == str(N)
    [user_count] = [n for key, n in by_key.items() if key.startswith("login:user:")]
    assert user_count == str(N)
    assert (await workers[1].browser("198.51.100.7").login("alice")).status_code == 429


async def test_fifty_parallel_failed_logins_let_exactly_the_limit_through(
    postgres_database: str, tmp_path: Path, stack: AsyncExitStack
) -> None:
    _, statuses = await fifty_parallel_failed_logins(
        postgres_database, tmp_path / "instance", stack, AUTH_LOGIN_LIMIT=20
    )
    assert (statuses.count(401), statuses.count(429)) == (20, N - 20), statuses
    # A refused attempt counts on no key: the address has 20 failures, not 50.
    addresses = "SELECT count FROM demo_auth_throttle WHERE key LIKE 'login:addr:%'"
    assert psql(postgres_database, addresses) == "20"


async def test_tables_are_named_after_the_key_prefix_and_made_once(
    postgres_database: str, tmp_path: Path, stack: AsyncExitStack
) -> None:
    assert table_name("auth:", "users") == "auth_users"
    assert table_name("Shop:Auth:", "throttle") == "shop_auth_throttle"
    assert table_name("", "users") == "users"
    with pytest.raises(ValueError, match="longer than 63 bytes"):
        table_name("x" * 60, "throttle")

    settings = site_settings("postgres", tmp_path / "a", "shop:", database_url=postgres_database)
    # Three workers starting together on a database without the tables.
    sites = await asyncio.gather(*(start_site(stack, "postgres", settings) for _ in range(3)))
    await asyncio.gather(*(site.browser().register(f"user{n}") for n, site in enumerate(sites)))
    assert {"shop_auth_users", "shop_auth_throttle", "session"} <= tables(postgres_database)
    assert count_rows(postgres_database, "SELECT count(*) FROM shop_auth_users") == 3
    # Another site on the same database, another prefix: accounts of its own.
    other = await start_site(
        stack,
        "postgres",
        site_settings("postgres", tmp_path / "b", "blog:", database_url=postgres_database),
    )
    assert (await other.browser().register("user0")).status_code == 302
    assert count_rows(postgres_database, "SELECT count(*) FROM blog_auth_users") == 1


async def test_a_database_user_without_create_rights_works_on_tables_made_beforehand(
    postgres_database: str,
) -> None:
    owner = connect(postgres_database)
    await PostgresUserStore(owner).ping()  # creates auth_users
    await PostgresCounters(owner).acquire([("k", 1)], 60)  # creates auth_throttle
    await owner.close()
    role, password = f"test_app_{secrets.token_hex(4)}", secrets.token_hex(16)
    psql(postgres_database, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        psql(
            postgres_database,
            f"REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
            f" GRANT SELECT, INSERT, UPDATE, DELETE ON auth_users, auth_throttle TO {role}",
        )
        parts = urlsplit(postgres_database)
        limited_url = urlunsplit(
            parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}")
        )
        limited = connect(limited_url)
        users, counters = PostgresUserStore(limited), PostgresCounters(limited)
        user = await users.create("dora", "h")
        assert await users.by_username("DORA") == user
        assert await counters.acquire([("k", 1)], 60) > 0  # the owner's count, seen
        assert await users.ping()
        await limited.close()
    finally:
        psql(postgres_database, f"DROP OWNED BY {role}; DROP ROLE {role}")


async def test_names_no_registration_accepts_are_nobodys_not_an_error(
    postgres_database: str,
) -> None:
    database = connect(postgres_database)
    users = PostgresUserStore(database)
    await users.create("erin", "h")
    for name in ("erin\x00", "\x00", "er\udc80in", "erin\ud800"):
        assert await users.by_username(name) is None
        assert await users.get(name) is None
    assert (await users.by_username("ERIN")) is not None
    await database.close()


async def test_rows_whose_window_ended_are_pruned_in_batches(postgres_database: str) -> None:
    database = connect(postgres_database)
    counters = PostgresCounters(database, prune_interval=0, prune_batch=7)
    for n in range(30):
        await counters.acquire([(f"short{n}", 5)], 0.5)
    ended = time.monotonic() + 0.5
    await counters.acquire([("released", 5)], 60)
    await counters.release("released")  # back to 0: as good as absent
    await counters.acquire([("kept", 5)], 60)
    assert "released" not in psql(postgres_database, "SELECT key FROM auth_throttle").split()
    await asyncio.sleep(max(0.0, ended - time.monotonic()) + 0.1)
    await counters.acquire([("kept", 5)], 60)
    # 30 ended windows, deleted 7 at a time by that one acquire.
    assert psql(postgres_database, "SELECT key, count FROM auth_throttle") == "kept|2"
    await database.close()


async def test_an_unreachable_database_is_a_503_and_a_failed_ping() -> None:
    database = connect("postgresql://nobody@127.0.0.1:1/nothing", timeout=0.5)
    users: UserStore = PostgresUserStore(database)
    with pytest.raises(AuthUnavailable):
        await users.by_username("alice")
    assert not await users.ping()
    with pytest.raises(AuthUnavailable) as caught:
        await Throttle(PostgresCounters(database)).begin_login("ann", "203.0.113.9")
    assert caught.value.code == 503


async def test_users_and_counters_live_on_the_auth_database_url(
    postgres_database: str,
    private_postgres: PostgresServer,
    tmp_path: Path,
    stack: AsyncExitStack,
) -> None:
    accounts_database = private_postgres.url
    settings = site_settings(
        "postgres",
        tmp_path / "instance",
        "demo:",
        database_url=postgres_database,
        AUTH_DATABASE_URL=accounts_database,
    )
    site = await start_site(stack, "postgres", settings)
    browser = await site.user("alice")
    assert (await site.browser().login("alice", "a wrong password")).status_code == 401
    assert await browser.signed_in_as() == "alice"

    assert tables(accounts_database) == {"demo_auth_users", "demo_auth_throttle"}
    assert not tables(postgres_database) & {"demo_auth_users", "demo_auth_throttle"}
    assert count_rows(postgres_database, "SELECT count(*) FROM session") >= 1


async def test_with_redis_and_a_database_sessions_go_to_redis_and_accounts_to_the_database(
    postgres_database: str,
    redis_url: str,
    key_prefix: str,
    redis_client: Any,
    tmp_path: Path,
    stack: AsyncExitStack,
) -> None:
    prefix = key_prefix.removesuffix("sess:")
    settings = site_settings(
        "redis", tmp_path / "instance", prefix, redis_url, DATABASE_URL=postgres_database
    )
    site = await start_site(stack, "redis", settings)
    assert isinstance(site.store, RedisStore)
    browser = await site.user("alice")
    assert await browser.signed_in_as() == "alice"

    on_redis = [key.decode() async for key in redis_client.scan_iter(match=f"{prefix}*")]
    assert on_redis and all(key.startswith(f"{prefix}sess") for key in on_redis), on_redis
    users_table = table_name(f"{prefix}auth:", "users")
    assert psql(postgres_database, f"SELECT username FROM {users_table}") == "alice"
    assert "session" not in tables(postgres_database)


async def test_sessions_and_accounts_share_the_sessions_pool(
    postgres_database: str, tmp_path: Path, stack: AsyncExitStack
) -> None:
    settings = site_settings("postgres", tmp_path / "i", "demo:", database_url=postgres_database)
    site = await start_site(stack, "postgres", settings)
    store = site.store
    assert isinstance(store, PostgresStore)
    assert isinstance(site.auth.users, PostgresUserStore)
    assert site.auth.users.table.database is store.connections
    counters = site.auth.throttle.counters
    assert isinstance(counters, PostgresCounters) and counters.table.database is store.connections
    await site.user("alice")
    connections = psql(
        postgres_database,
        "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid()",
    )
    assert connections.split("\n") == ["sessions.PostgresStore"]


@pytest.fixture
async def accounts_site(
    private_postgres: PostgresServer,
    postgres_database: str,
    tmp_path: Path,
    stack: AsyncExitStack,
) -> Site:
    """Sessions on the suite's PostgreSQL; users and counters on a private one a test breaks."""
    settings = site_settings(
        "postgres",
        tmp_path / "instance",
        "demo:",
        database_url=postgres_database,
        AUTH_DATABASE_URL=private_postgres.url,
    )
    return await start_site(stack, "postgres", settings)


async def test_healthz_reports_an_accounts_database_that_refuses_writes(
    accounts_site: Site, private_postgres: PostgresServer
) -> None:
    browser = accounts_site.browser()
    healthy = await browser.get("/healthz")
    assert await healthy.get_json() == {"status": "ok", "store": True, "accounts": True}

    read_only(private_postgres, True)
    try:
        degraded = await browser.get("/healthz")
        assert degraded.status_code == 503
        assert await degraded.get_json() == {"status": "degraded", "store": True, "accounts": False}
        register = await browser.register("alice")
        assert register.status_code == 503
        assert "Back in a moment" in await register.get_data(as_text=True)
    finally:
        read_only(private_postgres, False)
    assert (await browser.get("/healthz")).status_code == 200
    assert (await browser.register("alice")).status_code == 302


async def test_a_stopped_accounts_database_is_a_503_until_it_returns(
    accounts_site: Site, private_postgres: PostgresServer
) -> None:
    browser = await accounts_site.user("alice")
    other = accounts_site.browser()
    token = await other.csrf_token()
    private_postgres.stop()

    health = await browser.get("/healthz")
    assert await health.get_json() == {"status": "degraded", "store": True, "accounts": False}
    login = await other.login("alice", csrf_token=token)
    assert login.status_code == 503 and int(login.headers["Retry-After"]) > 0
    assert "Traceback" not in await login.get_data(as_text=True)
    assert (await browser.get("/")).status_code == 200  # a page that needs no account

    private_postgres.start()
    assert (await browser.get("/healthz")).status_code == 200
    assert await browser.signed_in_as() == "alice"
    assert (await other.login("alice", csrf_token=token)).status_code == 302
