"""Through nginx with three workers on PostgreSQL alone (DATABASE_URL, no Redis): the session
follows the visitor from worker to worker, and an account made on one is known to all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from site_http import Browser, sign_up_and_in

from deploy.cluster import Cluster
from deploy.postgres_server import psql


@pytest.fixture
def cluster(postgres_database: str) -> Iterator[Cluster]:
    """Three workers behind nginx; sessions, users and throttle counters in one database."""
    # 127.0.0.1 exempt from nginx's per-address limits, as in the suite's other clusters.
    with Cluster(
        workers=3, port=0, database_url=postgres_database, unlimited_addresses=["127.0.0.1"]
    ) as running:
        yield running
        print(running.diagnostics())


def direct(cluster: Cluster, index: int, browser: Browser) -> Browser:
    """The same visitor (its cookies) talking to worker ``index`` itself, not through nginx."""
    return Browser(f"http://127.0.0.1:{cluster.workers[index].port}", cookies=browser.cookies)


def test_the_count_goes_on_across_three_workers_and_a_restart_of_every_one(
    cluster: Cluster, browser: Browser, postgres_database: str
) -> None:
    assert (cluster.redis, cluster.auth_redis) == (None, None), "no Redis runs on PostgreSQL"
    counts, workers = [], set()
    for _ in range(30):
        reply = browser.get("/")
        assert reply.status == 200
        assert "PostgresStore" in reply.body
        counts.append(reply.visits)
        workers.add(reply.served_by)
    assert counts == list(range(1, 31))
    assert len(workers) >= 3, f"only {workers} answered"
    stored = psql(postgres_database, "SELECT sess::json ->> 'visits' FROM session")
    assert stored.split() == ["30"]

    cluster.stop_workers()
    cluster.start_workers()
    after = [browser.get("/") for _ in range(6)]
    assert [reply.visits for reply in after] == list(range(31, 37))
    assert {reply.served_by for reply in after}.isdisjoint(workers), "the workers were restarted"


def test_a_sign_in_on_one_worker_is_known_to_the_others(
    cluster: Cluster, credentials: dict[str, str], postgres_database: str
) -> None:
    username, password = credentials["username"], credentials["password"]
    first = Browser(f"http://127.0.0.1:{cluster.workers[0].port}")
    sign_up_and_in(first, username, password)

    for index in (1, 2):
        reply = direct(cluster, index, first).get("/account")
        assert reply.status == 200, f"worker {index} did not know the user: {reply.status}"
        assert username in reply.body
        assert reply.served_by_pid == cluster.workers[index].pid
    through_nginx = Browser(cluster.url, cookies=first.cookies)
    served = set()
    for _ in range(6):
        reply = through_nginx.get("/account")
        assert reply.status == 200 and username in reply.body
        served.add(reply.served_by)
    assert len(served) == 3, f"only {served} answered"
    assert psql(postgres_database, "SELECT username FROM auth_users") == username


def test_failed_sign_ins_on_every_worker_add_up(
    cluster: Cluster, credentials: dict[str, str]
) -> None:
    username, password = credentials["username"], credentials["password"]
    sign_up_and_in(Browser(cluster.url), username, password)
    wrong = {"username": username, "password": "not the password"}
    for index in (0, 1, 2, 0, 1):
        reply = direct(cluster, index, Browser("")).submit("/login", "/login", wrong)
        assert reply.status == 401, f"worker {index}: {reply.status}"
    right = {"username": username, "password": password}
    refused = direct(cluster, 2, Browser("")).submit("/login", "/login", right)
    assert refused.status == 429, "the sixth attempt was not refused"
    assert int(refused.headers["retry-after"]) > 0
