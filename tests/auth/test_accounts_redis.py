"""Accounts are never evicted: users and counters on a Redis of their own, a policy check at start."""

from __future__ import annotations

import os
import signal
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from quart.testing.app import LifespanError

from .support import PASSWORD, site_settings, start_site


def configure(server: Any, *settings: str) -> None:
    """CONFIG SET on a private redis-server of this test."""
    client = redis.Redis.from_url(server.url)
    try:
        client.config_set(*settings)
    finally:
        client.close()


def everything_on(server: Any, policy: str, instance: Path) -> dict[str, Any]:
    """Settings of a demo whose sessions, users and counters all live on ``server``."""
    configure(server, "maxmemory-policy", policy)
    return site_settings("redis", instance, "demo:", server.url)


async def test_users_and_counters_live_on_the_auth_redis_url(
    tmp_path: Path,
    private_redis: Any,
    key_prefix: str,
    redis_url: str,
    redis_client: aioredis.Redis,
) -> None:
    prefix = key_prefix.removesuffix("sess:")
    settings = site_settings(
        "redis", tmp_path / "instance", prefix, redis_url, AUTH_REDIS_URL=private_redis.url
    )
    async with AsyncExitStack() as stack:
        site = await start_site(stack, "redis", settings)
        browser = await site.user("alice")
        assert (await site.browser().login("alice", "a wrong password")).status_code == 401
        assert await browser.signed_in_as() == "alice"

        accounts = aioredis.Redis.from_url(private_redis.url)
        on_accounts = [key.decode() for key in await accounts.keys("*")]
        await accounts.aclose()
        on_sessions = [key.decode() async for key in redis_client.scan_iter(match=f"{prefix}*")]

    assert any(key.startswith(f"{prefix}auth:user:") for key in on_accounts), on_accounts
    assert any(key.startswith(f"{prefix}auth:throttle:") for key in on_accounts), on_accounts
    assert on_sessions and all(key.startswith(f"{prefix}sess") for key in on_sessions), on_sessions


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
async def test_the_app_refuses_to_start_where_redis_may_evict_its_users(
    tmp_path: Path, private_redis: Any, policy: str
) -> None:
    settings = everything_on(private_redis, policy, tmp_path / "instance")
    # A failed ASGI lifespan start-up: granian, uvicorn and hypercorn then exit.
    with pytest.raises(LifespanError, match=f"maxmemory-policy {policy}.*AUTH_REDIS_URL"):
        async with AsyncExitStack() as stack:
            await start_site(stack, "redis", settings)


@pytest.mark.parametrize("policy", ["noeviction", "volatile-lru", "volatile-ttl"])
async def test_the_app_starts_where_redis_keeps_keys_without_a_ttl(
    tmp_path: Path, private_redis: Any, policy: str
) -> None:
    settings = everything_on(private_redis, policy, tmp_path / "instance")
    async with AsyncExitStack() as stack:
        site = await start_site(stack, "redis", settings)
        assert await (await site.user("alice")).signed_in_as() == "alice"


async def test_sessions_may_be_evicted_while_accounts_live_elsewhere(
    tmp_path: Path,
    private_redis: Any,
    key_prefix: str,
    redis_url: str,
    redis_client: aioredis.Redis,
) -> None:
    """The issue's flood: sessions on an allkeys-lru Redis that runs full, users on the suite's
    (noeviction) one. Sessions are evicted; the account is not, and its name stays taken."""
    configure(private_redis, "maxmemory-policy", "allkeys-lru")
    configure(private_redis, "maxmemory", "4mb")
    prefix = key_prefix.removesuffix("sess:")
    settings = site_settings(
        "redis", tmp_path / "instance", prefix, private_redis.url, AUTH_REDIS_URL=redis_url
    )
    async with AsyncExitStack() as stack:
        site = await start_site(stack, "redis", settings)
        await site.user("alice")

        flood = redis.Redis.from_url(private_redis.url)
        try:
            pipe = flood.pipeline(transaction=False)
            for number in range(400):
                pipe.set(f"{prefix}sess:flood{number}", os.urandom(32 * 1024))
            pipe.execute()
            evicted = int(flood.info("stats")["evicted_keys"])
        finally:
            flood.close()
        assert evicted > 0

        assert (await site.browser().login("alice", PASSWORD)).status_code == 302
        again = await site.browser().register("alice")
        assert again.status_code == 400
        assert "That username is taken." in await again.get_data(as_text=True)


async def test_a_hung_accounts_redis_costs_a_sign_in_one_timeout_not_two(
    tmp_path: Path, private_redis: Any, key_prefix: str, redis_url: str, redis_client: Any
) -> None:
    """Auth's own Redis client waits 2 s for an answer, as the sessions' does, and does not
    retry a timeout: a frozen AUTH_REDIS_URL is a 503 after one wait, then recovers."""
    prefix = key_prefix.removesuffix("sess:")
    settings = site_settings(
        "redis", tmp_path / "instance", prefix, redis_url, AUTH_REDIS_URL=private_redis.url
    )
    async with AsyncExitStack() as stack:
        site = await start_site(stack, "redis", settings)
        await site.user("alice")
        browser = site.browser()
        token = await browser.csrf_token()
        os.kill(private_redis.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            response = await browser.login("alice", csrf_token=token)
            took = time.monotonic() - started
        finally:
            os.kill(private_redis.pid, signal.SIGCONT)
        assert response.status_code == 503
        assert "Traceback" not in await response.get_data(as_text=True)
        assert 1.8 <= took < 3.6, f"waited {took:.2f} s for a 2 s timeout"
        assert (await browser.login("alice", csrf_token=token)).status_code == 302
