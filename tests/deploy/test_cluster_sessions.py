"""Through nginx with three workers, one visitor's session follows them from worker to worker."""

from __future__ import annotations

from site_http import Browser, cookie_attributes, sign_up_and_in

from deploy.cluster import Cluster


def test_one_visitors_counter_counts_1_to_30_while_three_workers_answer(
    cluster: Cluster, browser: Browser
) -> None:
    counts, workers = [], set()
    for _ in range(30):
        reply = browser.get("/")
        assert reply.status == 200
        counts.append(reply.visits)
        workers.add(reply.served_by)

    assert counts == list(range(1, 31))
    assert len(workers) >= 3, f"only {workers} answered"
    assert {int(w.rsplit(":", 1)[1]) for w in workers} <= set(cluster.worker_pids)


def test_a_sign_in_made_on_one_worker_is_honoured_by_every_worker(
    browser: Browser, credentials: dict[str, str]
) -> None:
    assert browser.get("/account").status in (302, 303, 401), "account visible before sign-in"
    sign_up_and_in(browser, credentials["username"], credentials["password"])

    workers = set()
    for _ in range(9):
        reply = browser.get("/account")
        assert reply.status == 200, f"{reply.served_by} did not know the user: {reply.status}"
        assert credentials["username"] in reply.body
        workers.add(reply.served_by)
    assert len(workers) >= 3, f"only {workers} answered"


def test_the_app_trusts_nginx_as_exactly_one_hop_for_the_scheme(cluster: Cluster) -> None:
    # nginx in front of the app terminating TLS says so in X-Forwarded-Proto: the cookie
    # then carries Secure (secure="auto").
    behind_tls = Browser(f"http://127.0.0.1:{cluster.workers[0].port}")
    reply = behind_tls.get(
        "/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4"}
    )
    assert reply.status == 200
    assert reply.set_cookies, "the first visit sets a session cookie"
    assert all("secure" in cookie_attributes(c) for c in reply.set_cookies), reply.set_cookies

    # A client cannot claim https through our nginx (plain http): nginx overwrites the header.
    spoofing = Browser(cluster.url)
    reply = spoofing.get("/", headers={"X-Forwarded-Proto": "https"})
    assert reply.status == 200
    assert reply.set_cookies, "the first visit sets a session cookie"
    assert not any("secure" in cookie_attributes(c) for c in reply.set_cookies), reply.set_cookies
