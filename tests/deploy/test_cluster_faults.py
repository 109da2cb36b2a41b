"""Workers die, workers restart, Redis restarts: the visitor's session carries on."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from typing import Protocol

import pytest
from keepalive_client import KeepAliveClient
from site_http import Browser, sign_up_and_in

from deploy.cluster import Cluster
from deploy.processes import is_running

VISITS = re.compile(rb'id="visits"[^>]*>\s*(\d+)\s*<')


class RedisServer(Protocol):
    """The shape of tests/conftest.py's private_redis: its own redis-server, stopped by PID."""

    url: str
    process: subprocess.Popen[bytes] | None

    def start(self) -> None: ...
    def stop(self) -> None: ...


def visit(browser: Browser, times: int) -> list[int]:
    """GET / `times` times; every answer must be a 200; returns the counter values shown."""
    counts = []
    for _ in range(times):
        reply = browser.get("/")
        assert reply.status == 200, f"{reply.status} from {reply.headers.get('x-served-by')}"
        counts.append(reply.visits)
    return counts


def test_a_worker_killed_mid_run_costs_no_request_and_no_count(
    cluster: Cluster, browser: Browser, credentials: dict[str, str]
) -> None:
    assert visit(browser, 10) == list(range(1, 11))
    victim = cluster.worker_pids[1]
    assert victim is not None

    cluster.kill_worker(1)  # SIGKILL, by PID
    assert not is_running(victim)

    served_by = set()
    for expected in range(11, 41):
        reply = browser.get("/")
        assert reply.status == 200, f"request {expected} after the kill got {reply.status}"
        assert reply.visits == expected
        served_by.add(reply.served_by_pid)
    assert victim not in served_by
    assert len(served_by) == 2, "the two surviving workers share the load"

    # Forms (POSTs) work too: nginx moves a request it could not deliver to a live worker.
    sign_up_and_in(browser, credentials["username"], credentials["password"])
    account = browser.get("/account")
    assert account.status == 200 and credentials["username"] in account.body


def test_every_worker_stopped_and_started_again_keeps_session_login_and_count(
    cluster: Cluster, browser: Browser, credentials: dict[str, str]
) -> None:
    sign_up_and_in(browser, credentials["username"], credentials["password"])
    assert visit(browser, 5) == [1, 2, 3, 4, 5]
    before = set(cluster.worker_pids)

    cluster.stop_workers()
    down = browser.get("/")
    assert down.status == 502, "with every worker down nginx has nobody to ask"
    cluster.start_workers()

    assert before.isdisjoint(cluster.worker_pids), "every worker is a new process"
    assert visit(browser, 5) == [6, 7, 8, 9, 10]
    account = browser.get("/account")
    assert account.status == 200 and credentials["username"] in account.body


@pytest.fixture
def cluster_on_private_redis(private_redis: RedisServer) -> Iterator[Cluster]:
    """Three workers on the private_redis fixture (append-only, fsync always), never the shared."""
    with Cluster(workers=3, port=0, redis_url=private_redis.url) as running:
        yield running
        print(running.diagnostics())  # shown by pytest only when the test failed


def test_a_redis_restart_keeps_the_session(
    private_redis: RedisServer, cluster_on_private_redis: Cluster, credentials: dict[str, str]
) -> None:
    browser = Browser(cluster_on_private_redis.url)
    sign_up_and_in(browser, credentials["username"], credentials["password"])
    assert visit(browser, 5) == [1, 2, 3, 4, 5]
    pid_before = private_redis.process.pid if private_redis.process else None

    private_redis.stop()  # SIGTERM by PID; the append-only file has every write (fsync always)
    private_redis.start()
    assert private_redis.process is not None and private_redis.process.pid != pid_before

    assert visit(browser, 5) == [6, 7, 8, 9, 10]
    account = browser.get("/account")
    assert account.status == 200 and credentials["username"] in account.body


async def test_a_rolling_restart_under_traffic_loses_no_request(cluster: Cluster) -> None:
    """Graceful shutdown: each worker in turn gets SIGTERM while five visitors keep clicking."""
    restarted = asyncio.Event()

    async def visitor() -> tuple[list[int], list[int]]:
        client = KeepAliveClient(cluster.url)
        statuses: list[int] = []
        counters: list[int] = []
        try:
            # Bounded: the restarts take a few seconds; 2000 requests is far more than needed.
            while not restarted.is_set() and len(statuses) < 2000:
                answer = await client.get("/")
                statuses.append(answer.status)
                match = VISITS.search(answer.body)
                counters.append(int(match.group(1)) if match else -1)
        finally:
            await client.close()
        return statuses, counters

    visitors = [asyncio.create_task(visitor()) for _ in range(5)]
    old_pids = list(cluster.worker_pids)
    try:
        for index in range(len(cluster.workers)):
            await asyncio.sleep(0.3)  # traffic in flight when the SIGTERM arrives
            await asyncio.to_thread(cluster.restart_worker, index)
    finally:
        restarted.set()
    results = await asyncio.wait_for(asyncio.gather(*visitors), 60)

    assert set(old_pids).isdisjoint(cluster.worker_pids), "every worker was replaced"
    for statuses, counters in results:
        assert statuses and set(statuses) == {200}, sorted(set(statuses))
        assert counters == list(range(1, len(counters) + 1))
