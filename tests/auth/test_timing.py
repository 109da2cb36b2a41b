"""Timing: unknown users cost what wrong passwords cost; argon2 never blocks the event loop."""

from __future__ import annotations

import asyncio
import statistics
import time

from argon2 import PasswordHasher

from .support import PASSWORD, Browser, SiteFactory

# argon2-cffi's defaults: RFC 9106 low-memory (argon2id, t=3, m=64 MiB, p=4).
REAL_HASHER = PasswordHasher()


async def timed_login(browser: Browser, token: str, username: str) -> float:
    form = {"username": username, "password": "a wrong password", "csrf_token": token}
    started = time.perf_counter()
    response = await browser.post("/login", form)
    elapsed = time.perf_counter() - started
    assert response.status_code == 401
    return elapsed


async def test_unknown_user_costs_the_same_as_a_wrong_password(make_site: SiteFactory) -> None:
    site = await make_site(AUTH_PASSWORD_HASHER=REAL_HASHER, AUTH_LOGIN_LIMIT=100)
    browser = site.browser()
    await browser.register("alice", PASSWORD)
    token = await browser.csrf_token()
    for _ in range(2):  # warm-up: the dummy hash, connections, file caches
        await timed_login(browser, token, "alice")
        await timed_login(browser, token, "nobody")

    # Back-to-back pairs in alternating order: a change in machine load hits both halves alike.
    wrong, unknown, ratios = [], [], []
    for index in range(11):
        order = ("alice", "nobody") if index % 2 == 0 else ("nobody", "alice")
        times = {name: await timed_login(browser, token, name) for name in order}
        wrong.append(times["alice"])
        unknown.append(times["nobody"])
        ratios.append(times["nobody"] / times["alice"])

    median_wrong, median_unknown = statistics.median(wrong), statistics.median(unknown)
    print(
        f"\nlogin medians: wrong password {median_wrong:.4f}s, unknown user {median_unknown:.4f}s"
    )
    assert abs(statistics.median(ratios) - 1) <= 0.25, (median_wrong, median_unknown, ratios)
    # Both really ran argon2 with the real parameters (tens of milliseconds), not a shortcut.
    assert median_unknown > 0.02 and median_wrong > 0.02


async def test_pages_answer_while_a_login_verifies_its_password(make_site: SiteFactory) -> None:
    # Slower than the default so that one verify spans several page requests.
    slow = PasswordHasher(time_cost=12, memory_cost=64 * 1024, parallelism=4)
    site = await make_site(AUTH_PASSWORD_HASHER=slow)
    visitor = site.browser()
    await visitor.visits()  # warm-up: session created, templates compiled
    user = site.browser()
    await user.register("alice", PASSWORD)
    await user.csrf_token()

    passwords = site.auth.passwords
    original = passwords.verify
    verifying = asyncio.Event()

    async def verify(stored_hash: str | None, password: str) -> bool:
        verifying.set()
        return await original(stored_hash, password)

    passwords.verify = verify  # type: ignore[method-assign]
    login = asyncio.create_task(user.login("alice", PASSWORD))
    await verifying.wait()

    latencies = []
    for _ in range(3):
        started = time.perf_counter()
        response = await visitor.get("/")
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200
    still_verifying = not login.done()
    assert (await login).status_code == 302

    print(f"\npage latencies during a verify: {[round(x, 4) for x in latencies]}")
    assert still_verifying, "the login finished before the page requests: nothing was measured"
    assert statistics.median(latencies) < 0.050, latencies
