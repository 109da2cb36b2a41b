"""50 visitors x 100 requests each through nginx: no 5xx, nothing lost, nothing mixed."""

from __future__ import annotations

import asyncio
import re

from keepalive_client import KeepAliveClient

from deploy.cluster import Cluster

CLIENTS = 50
REQUESTS = 100
TIME_LIMIT = 240.0  # seconds; the whole run normally takes well under a minute on 2 cores
_VISITS = re.compile(rb'id="visits"[^>]*>\s*(\d+)\s*<')


async def one_visitor(url: str) -> tuple[list[int], list[int], set[str]]:
    """Make REQUESTS visits on one keep-alive connection: (statuses, counters, workers)."""
    client = KeepAliveClient(url)
    statuses, counters, workers = [], [], set()
    try:
        for _ in range(REQUESTS):
            answer = await client.get("/")
            statuses.append(answer.status)
            workers.add(answer.headers.get("x-served-by", "?"))
            match = _VISITS.search(answer.body)
            counters.append(int(match.group(1)) if match else -1)
    finally:
        await client.close()
    return statuses, counters, workers


async def test_50_visitors_x_100_requests_lose_and_mix_nothing(cluster: Cluster) -> None:
    results = await asyncio.wait_for(
        asyncio.gather(*(one_visitor(cluster.url) for _ in range(CLIENTS))), TIME_LIMIT
    )

    every_status = [status for statuses, _, _ in results for status in statuses]
    assert len(every_status) == CLIENTS * REQUESTS
    assert [s for s in every_status if s >= 500] == []
    assert set(every_status) == {200}
    for _, counters, _ in results:
        # Each visitor sees exactly its own count: 1, 2, ..., 100 (no other visitor's visits).
        assert counters == list(range(1, REQUESTS + 1))
    assert len(set().union(*(workers for _, _, workers in results))) == 3
