"""Through nginx with three workers, a password change ends every other session at once."""

from __future__ import annotations

import secrets

from site_http import Browser, sign_up_and_in

from deploy.cluster import Cluster


def signed_in(browser: Browser, username: str) -> tuple[bool, str]:
    """Whether /account shows ``username`` on this request, and which worker answered."""
    reply = browser.get("/account")
    return reply.status == 200 and username in reply.body, reply.served_by


def test_a_password_change_ends_every_other_session_on_every_worker_at_once(
    cluster: Cluster, credentials: dict[str, str]
) -> None:
    username, password = credentials["username"], credentials["password"]
    laptop = Browser(cluster.url)
    sign_up_and_in(laptop, username, password)
    devices = [Browser(cluster.url) for _ in range(2)]
    for device in devices:
        reply = device.submit("/login", "/login", {"username": username, "password": password})
        assert reply.status in (302, 303), reply.status
    thieves = [Browser(cluster.url, cookies=dict(device.cookies)) for device in devices]

    workers = set()
    for browser in (*devices, *thieves):
        for _ in range(3):
            ok, worker = signed_in(browser, username)
            assert ok, f"{worker} did not know the signed-in user"
            workers.add(worker)
    assert len(workers) == 3, f"only {workers} answered"

    new_password = secrets.token_urlsafe(18)
    changed = laptop.submit(
        "/account",
        "/account/password",
        {"current_password": password, "new_password": new_password},
    )
    assert changed.status in (302, 303), changed.body[:500]

    # The very next request of every other browser is anonymous, whichever worker answers.
    workers = set()
    for browser in (*devices, *thieves):
        for _ in range(3):
            ok, worker = signed_in(browser, username)
            assert not ok, f"{worker} still honoured a session the password change ended"
            workers.add(worker)
    assert len(workers) == 3, f"only {workers} answered"

    ok, _ = signed_in(laptop, username)
    assert ok, "the session that changed the password goes on"
    old = Browser(cluster.url).submit(
        "/login", "/login", {"username": username, "password": password}
    )
    assert old.status == 401
    fresh = Browser(cluster.url)
    reply = fresh.submit("/login", "/login", {"username": username, "password": new_password})
    assert reply.status in (302, 303)
