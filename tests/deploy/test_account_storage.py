"""A flood of anonymous sessions fills the session Redis; accounts live elsewhere and survive."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from keepalive_client import KeepAliveClient
from site_http import Browser, sign_up_and_in

from deploy.cluster import SESSION_EVICTION, Cluster

SESSION_MEMORY = 2 * 1024 * 1024  # an empty redis-server uses about 0.9 MiB of it
FLOODERS = 40  # addresses 127.0.1.1-40, each under nginx's per-address request rate
MOST_REQUESTS = 20_000
AUTH_KEYS = "demo:auth:"  # app.py: REDIS_PREFIX ("demo:") + "auth:" for users and counters


@pytest.fixture
def small_cluster() -> Iterator[Cluster]:
    """Three workers; the session Redis bounded at 2 MiB, so a flood fills it in seconds."""
    with Cluster(workers=3, port=0, session_memory=str(SESSION_MEMORY)) as running:
        yield running
        print(running.diagnostics())


def info(url: str, section: str) -> dict[str, object]:
    client = redis.Redis.from_url(url)
    try:
        return dict(client.info(section))
    finally:
        client.close()


def keys(url: str) -> list[str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return list(client.scan_iter(count=1000))
    finally:
        client.close()


async def flood(url: str, source: str, requests: int) -> int:
    """Cookieless visits to / from one address, each one a new anonymous session: 200s seen."""
    client = KeepAliveClient(url, source=source)
    served = 0
    try:
        for _ in range(requests):
            client.cookies.clear()  # never send the cookie back: every visit is a new visitor
            served += (await client.get("/")).status == 200
    finally:
        await client.close()
    return served


async def test_a_session_flood_past_maxmemory_evicts_sessions_never_an_account(
    small_cluster: Cluster, credentials: dict[str, str]
) -> None:
    cluster = small_cluster
    assert cluster.redis is not None and cluster.auth_redis is not None
    sessions_url, users_url = cluster.redis.url, cluster.auth_redis.url
    assert info(sessions_url, "memory")["maxmemory_policy"] == SESSION_EVICTION
    assert info(users_url, "memory")["maxmemory_policy"] == "noeviction"
    owner = Browser(cluster.url, source="127.0.2.1")
    sign_up_and_in(owner, credentials["username"], credentials["password"])

    # Flood in rounds until the session Redis has had to evict (bounded in requests).
    sent = 0
    while info(sessions_url, "stats")["evicted_keys"] == 0:
        assert sent < MOST_REQUESTS, f"no eviction after {sent} anonymous sessions"
        per_address = 50
        served = await asyncio.gather(
            *(flood(cluster.url, f"127.0.1.{n}", per_address) for n in range(1, FLOODERS + 1))
        )
        assert sum(served) == FLOODERS * per_address, "the flood itself was served"
        sent += FLOODERS * per_address
    memory = info(sessions_url, "memory")
    assert int(str(memory["used_memory"])) <= SESSION_MEMORY * 1.1, memory["used_memory"]

    # Accounts are on the Redis that never evicts, and the session Redis holds none of them.
    assert [key for key in keys(users_url) if key.startswith(AUTH_KEYS)], (
        "no account on the users' Redis: the workers ignore AUTH_REDIS_URL "
        f"(auth/ reads it since the auth-hardening work); there: {keys(users_url)[:20]}"
    )
    assert [key for key in keys(sessions_url) if key.startswith(AUTH_KEYS)] == []

    # And its owner signs in after the flood, with a browser of their own.
    returning = Browser(cluster.url, source="127.0.2.2")
    sign_in = returning.submit(
        "/login", "/login",
        {"username": credentials["username"], "password": credentials["password"]},
    )  # fmt: skip
    assert sign_in.status in (302, 303), sign_in.status
    account = returning.get("/account")
    assert account.status == 200 and credentials["username"] in account.body
    print(f"{sent} anonymous sessions; {info(sessions_url, 'stats')['evicted_keys']} evicted")
