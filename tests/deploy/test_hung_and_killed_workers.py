"""A hung worker costs one request a few seconds and the next nothing; a killed one costs nothing."""

from __future__ import annotations

import asyncio
import re
import time

from keepalive_client import KeepAliveClient
from site_http import Browser, sign_up_and_in

from deploy.cluster import Cluster
from deploy.processes import is_running

READ_TIMEOUT = 3.0  # proxy_read_timeout for reads in the template
FAIL_TIMEOUT = 5.0  # fail_timeout: how long a failed worker is left alone
_VISITS = re.compile(rb'id="visits"[^>]*>\s*(\d+)\s*<')


def timed_visit(browser: Browser) -> tuple[float, int, int]:
    """GET / : (seconds, visits shown, PID that answered); anything but a 200 fails the test."""
    started = time.monotonic()
    reply = browser.get("/")
    took = time.monotonic() - started
    assert reply.status == 200, f"{reply.status} after {took:.2f}s"
    return took, reply.visits, reply.served_by_pid


def test_a_hung_worker_costs_one_request_a_read_timeout_and_the_next_nothing(
    cluster: Cluster, browser: Browser, credentials: dict[str, str]
) -> None:
    for expected in range(1, 7):
        assert timed_visit(browser)[1] == expected
    hung = cluster.worker_pids[1]
    assert hung is not None
    cluster.pause_worker(1)  # SIGSTOP: its port still accepts, nothing answers
    try:
        visits = [timed_visit(browser) for _ in range(4)]  # round-robin meets it within three
        slow = [n for n, (took, _, _) in enumerate(visits) if took >= 1.0]
        assert len(slow) == 1, [round(took, 2) for took, _, _ in visits]
        # One read timeout, then the same request answered by another worker.
        assert visits[slow[0]][0] <= READ_TIMEOUT + 1.5, visits[slow[0]]
        # Sidelined: the next requests (well within fail_timeout) cost nothing.
        started = time.monotonic()
        visits += [timed_visit(browser) for _ in range(6)]
        assert time.monotonic() - started < FAIL_TIMEOUT
        assert all(took < 1.0 for took, _, _ in visits[slow[0] + 1 :]), visits
        assert [shown for _, shown, _ in visits] == list(range(7, 7 + len(visits)))
        assert hung not in {pid for _, _, pid in visits}
        # Writes go to the live workers too: a POST sent to the hung one could not be retried.
        sign_up_and_in(browser, credentials["username"], credentials["password"])
        assert browser.get("/account").status == 200
    finally:
        cluster.resume_worker(1)  # SIGCONT, by PID
    assert is_running(hung)


async def test_a_worker_killed_under_load_costs_no_visitor_an_error(cluster: Cluster) -> None:
    """Twelve visitors click / while a worker is SIGKILLed: every answer is a 200.

    A visit in flight on the killed worker is retried by nginx on another (GET is idempotent);
    if the killed worker had already stored that visit, the counter moves by two, never back.
    """
    stop = asyncio.Event()

    async def visitor() -> list[tuple[float, int, int, int]]:
        client = KeepAliveClient(cluster.url, timeout=10)
        seen: list[tuple[float, int, int, int]] = []  # (time, status, visits, pid)
        try:
            while not stop.is_set() and len(seen) < 3000:
                answer = await client.get("/")
                match = _VISITS.search(answer.body)
                pid = answer.headers.get("x-served-by", ":0").rpartition(":")[2]
                seen.append((time.monotonic(), answer.status,
                             int(match.group(1)) if match else -1, int(pid)))  # fmt: skip
        finally:
            await client.close()
        return seen

    tasks = [asyncio.create_task(visitor()) for _ in range(12)]
    victim = cluster.worker_pids[1]
    try:
        await asyncio.sleep(1.0)  # traffic on every worker
        cluster.kill_worker(1)  # SIGKILL by PID, with requests in flight
        killed = time.monotonic()
        await asyncio.sleep(2.0)
    finally:
        stop.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), 60)

    assert not is_running(victim)
    for seen in results:
        statuses = [status for _, status, _, _ in seen]
        assert set(statuses) == {200}, sorted(set(statuses))
        counts = [visits for _, _, visits, _ in seen]
        steps = {b - a for a, b in zip(counts, counts[1:], strict=False)}
        assert counts[0] == 1 and steps <= {1, 2}, counts
        assert any(when > killed + 1 for when, _, _, _ in seen), "the visitor kept visiting"
