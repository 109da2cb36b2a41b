"""Throttling failed sign-ins: per username and address, per address, in the sessions' backend."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from auth import (
    AuthUnavailable,
    Counters,
    FileCounters,
    MemoryCounters,
    PostgresCounters,
    RedisCounters,
    Throttle,
    Throttled,
)
from auth.postgres import connect, table_name
from deploy.postgres_server import psql

from .support import PASSWORD, Site, SiteFactory, site_settings, start_site


@pytest.fixture(params=["memory", "file", "redis", "postgres"])
async def counters(
    request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str, redis_client: aioredis.Redis
) -> AsyncIterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters()
    elif request.param == "file":
        yield FileCounters(tmp_path / "throttle.json")
    elif request.param == "redis":
        yield RedisCounters(redis_client, prefix=key_prefix.removesuffix("sess:") + "throttle:")
    else:
        database = connect(request.getfixturevalue("postgres_database"))
        yield PostgresCounters(database)
        await database.close()


async def test_counters_allow_up_to_the_limit_then_say_how_long_to_wait(counters: Counters) -> None:
    for _ in range(3):
        assert await counters.acquire([("k", 3)], 60) == 0
    wait = await counters.acquire([("k", 3)], 60)
    assert 55 < wait <= 60


async def test_a_blocked_attempt_counts_on_no_key(counters: Counters) -> None:
    await counters.acquire([("full", 1)], 60)
    assert await counters.acquire([("full", 1), ("other", 1)], 60) > 0
    assert await counters.acquire([("other", 1)], 60) == 0


async def test_release_and_reset(counters: Counters) -> None:
    await counters.acquire([("k", 2)], 60)
    await counters.acquire([("k", 2)], 60)
    await counters.release("k")
    assert await counters.acquire([("k", 2)], 60) == 0
    await counters.reset("k")
    assert await counters.acquire([("k", 2)], 60) == 0
    assert await counters.acquire([("k", 2)], 60) == 0
    assert await counters.acquire([("k", 2)], 60) > 0


async def test_counts_expire_with_the_window(counters: Counters) -> None:
    await counters.acquire([("k", 1)], 0.3)
    assert await counters.acquire([("k", 1)], 0.3) > 0
    await asyncio.sleep(0.4)
    assert await counters.acquire([("k", 1)], 0.3) == 0


async def test_concurrent_attempts_cannot_pass_the_limit(counters: Counters) -> None:
    results = await asyncio.gather(*(counters.acquire([("k", 5)], 60) for _ in range(20)))
    assert sum(1 for wait in results if wait == 0) == 5


async def test_throttle_rejects_bad_limits(counters: Counters) -> None:
    with pytest.raises(ValueError):
        Throttle(counters, per_user=0)


async def test_throttle_raises_throttled_with_retry_after(counters: Counters) -> None:
    throttle = Throttle(counters, per_user=1, window=30)
    await throttle.begin_login("ann", "203.0.113.9")
    with pytest.raises(Throttled) as caught:
        await throttle.begin_login("ANN", "203.0.113.9")
    assert caught.value.code == 429
    assert caught.value.retry_after == 30


def count_verifies(site: Site) -> list[str]:
    """Record every password verification the site performs."""
    calls: list[str] = []
    passwords = site.auth.passwords
    original = passwords.verify

    async def verify(stored_hash: str | None, password: str) -> bool:
        calls.append(password)
        return await original(stored_hash, password)

    passwords.verify = verify  # type: ignore[method-assign]
    return calls


async def test_sixth_failure_for_a_username_gets_429_before_the_password_is_checked(
    site: Site,
) -> None:
    await site.browser().register("alice")
    browser = site.browser()
    for _ in range(5):
        assert (await browser.login("alice", "wrong guess")).status_code == 401
    verified = count_verifies(site)

    response = await browser.login("alice", PASSWORD)

    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60
    assert "Too many failed sign-in attempts" in await response.get_data(as_text=True)
    assert verified == []
    assert await browser.signed_in_as() is None


async def test_the_429_page_says_how_long_to_wait_from_the_retry_after_figure(site: Site) -> None:
    await site.browser().register("alice")
    browser = site.browser()
    for _ in range(5):
        await browser.login("alice", "wrong guess")
    response = await browser.login("alice", PASSWORD)
    assert response.status_code == 429
    minutes = math.ceil(int(response.headers["Retry-After"]) / 60)
    assert minutes == 15
    page = await response.get_data(as_text=True)
    assert f"Too many failed sign-in attempts. Try again in {minutes} minutes." in page


def test_the_wait_is_said_in_the_largest_unit_never_shorter_than_retry_after() -> None:
    assert Throttled(1).description == "Too many failed sign-in attempts. Try again in 1 second."
    assert Throttled(59).description.endswith("Try again in 59 seconds.")
    assert Throttled(60).description.endswith("Try again in 1 minute.")
    assert Throttled(61).description.endswith("Try again in 2 minutes.")
    assert Throttled(3600).description.endswith("Try again in 60 minutes.")
    assert Throttled(7200).description.endswith("Try again in 2 hours.")
    assert Throttled(7201).description.endswith("Try again in 3 hours.")
    assert Throttled(0).retry_after == 1


async def test_the_same_username_from_another_address_is_not_blocked(site: Site) -> None:
    await site.browser().register("alice")
    attacker = site.browser("198.51.100.7")
    for _ in range(5):
        await attacker.login("alice", "wrong guess")
    assert (await attacker.login("alice", PASSWORD)).status_code == 429
    owner = site.browser("203.0.113.20")
    assert (await owner.login("alice", PASSWORD)).status_code == 302


async def test_fifty_failures_from_one_address_block_every_username(site: Site) -> None:
    await site.browser().register("alice")
    attacker = site.browser("198.51.100.7")
    for number in range(50):
        response = await attacker.login(f"user{number}", "wrong guess")
        assert response.status_code == 401, number
    assert (await attacker.login("alice", PASSWORD)).status_code == 429
    assert (await site.browser("203.0.113.20").login("alice", PASSWORD)).status_code == 302


async def test_a_successful_login_forgets_that_usernames_failures(site: Site) -> None:
    browser = site.browser()
    await browser.register("alice")
    for _ in range(4):
        await browser.login("alice", "wrong guess")
    assert (await browser.login("alice", PASSWORD)).status_code == 302
    await browser.logout()
    for _ in range(4):
        assert (await browser.login("alice", "wrong guess")).status_code == 401
    assert (await browser.login("alice", PASSWORD)).status_code == 302


async def test_limits_and_window_are_configurable(make_site: SiteFactory) -> None:
    site = await make_site(AUTH_LOGIN_LIMIT=2, AUTH_LIMIT_WINDOW=1)
    browser = site.browser()
    await browser.register("alice")
    for _ in range(2):
        await browser.login("alice", "wrong guess")
    assert (await browser.login("alice", PASSWORD)).status_code == 429
    await asyncio.sleep(1.1)
    assert (await browser.login("alice", PASSWORD)).status_code == 302


async def test_counters_are_shared_by_every_worker_of_the_backend(
    backend: str,
    tmp_path: Path,
    key_prefix: str,
    redis_url: str,
    redis_client: Any,
    database_url: str | None,
) -> None:
    """Two app processes on the same store (files, Redis or PostgreSQL) see the same counts."""
    prefix = key_prefix.removesuffix("sess:")
    settings = site_settings(
        backend, tmp_path / "instance", prefix, redis_url, database_url=database_url
    )
    async with AsyncExitStack() as stack:
        first = await start_site(stack, backend, settings)
        second = await start_site(stack, backend, settings)
        await first.browser().register("alice")
        for worker in (first, second, first, second, first):
            await worker.browser().login("alice", "wrong guess")
        assert (await second.browser().login("alice", PASSWORD)).status_code == 429
    if backend == "redis":
        keys = [key async for key in redis_client.scan_iter(match=f"{prefix}auth:throttle:*")]
        assert keys
    elif backend == "postgres":
        table = table_name(f"{prefix}auth:", "throttle")
        assert database_url is not None
        assert int(psql(database_url, f"SELECT count(*) FROM {table} WHERE count > 0")) > 0
    else:
        assert (tmp_path / "instance" / "throttle.json").exists()


async def test_registrations_per_address_are_limited(make_site: SiteFactory) -> None:
    site = await make_site(AUTH_REGISTER_LIMIT=2)
    browser = site.browser("198.51.100.7")
    assert (await browser.register("one")).status_code == 302
    assert (await browser.register("two")).status_code == 302
    response = await browser.register("three")
    assert response.status_code == 429
    minutes = math.ceil(int(response.headers["Retry-After"]) / 60)
    page = await response.get_data(as_text=True)
    assert (
        f"Too many registration attempts from this address. Try again in {minutes} minutes." in page
    )
    assert await site.auth.users.by_username("three") is None


async def test_unreachable_redis_counters_refuse_with_503() -> None:
    """No counting, no sign-in: the throttle fails closed, as a 503 rather than a 500."""
    client = aioredis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    throttle = Throttle(RedisCounters(client, prefix="test:unreachable:"))
    with pytest.raises(AuthUnavailable) as caught:
        await throttle.begin_login("ann", "203.0.113.9")
    assert caught.value.code == 503
    await client.aclose()
