"""End to end in headless Chromium: the count survives sign-in, the messages explain, the session
panel shows the real session, the layout holds at 1280x800 and 390x844, and behind nginx the
worker history fills while the count goes on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Page, expect

from .demo import (
    chromium,
    demo_cluster,
    demo_server,
    log_in,
    register,
    visits,
    worker_history,
)

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(params=["embedded", "redis"])
def server_env(
    request: pytest.FixtureRequest, key_prefix: str, redis_url: str, redis_client: Any
) -> dict[str, str]:
    env = {"SECRET_KEY": "browser test secret " + "b" * 24}
    if request.param == "redis":
        env.update(REDIS_URL=redis_url, REDIS_PREFIX=key_prefix.removesuffix("sess:"))
    return env


async def watched_page(context: BrowserContext, problems: list[str]) -> Page:
    """A page whose console errors (CSP violations, failed loads) and exceptions are recorded."""
    page = await context.new_page()
    page.on("console", lambda message: _record(problems, message))
    page.on("pageerror", lambda error: problems.append(str(error)))
    return page


async def test_the_count_survives_sign_in_and_the_messages_explain(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    with demo_server(tmp_path / "instance", **server_env) as base:
        async with chromium() as browser:
            context = await browser.new_context(viewport=DESKTOP)
            problems: list[str] = []
            page = await watched_page(context, problems)

            await page.goto(base + "/")
            await expect(page.locator("h1")).to_contain_text("Welcome, this is your first visit")
            await page.reload()
            await page.reload()
            assert await visits(page) == 3
            anonymous_id = await page.locator("#session-id").inner_text()
            store = "RedisStore" if "REDIS_URL" in server_env else "FileStore"
            await expect(page.locator("#store")).to_have_text(store)
            await expect(page.locator("#cookie-lifetime")).to_contain_text("Browser-session cookie")

            await page.goto(base + "/account")
            await expect(page).to_have_url(re.compile(r"/login\?next=/account$"))
            await expect(page.locator("#login-notice")).to_have_text(
                "Please sign in to see your account."
            )

            await register(page, base, "dora")
            await expect(page.locator(".flash")).to_contain_text(
                "Your account is ready and you are signed in"
            )
            await expect(page.locator("#username")).to_have_text("dora")
            assert await visits(page) == 4, "the anonymous count goes on after registering"
            assert await page.locator("#session-id").inner_text() != anonymous_id
            await expect(page.locator("#owner")).to_have_text(re.compile(r"^user:"))

            await page.get_by_role("button", name="Log out").click()
            await expect(page.locator(".flash")).to_have_text("You are signed out.")
            await expect(page.locator("h1")).to_contain_text("Welcome, this is your first visit")
            await expect(
                page.get_by_role("navigation").get_by_role("link", name="Log in")
            ).to_be_visible()

            await page.reload()
            assert await visits(page) == 2
            await log_in(page, base, "dora", remember=True)
            await expect(page.locator(".flash")).to_contain_text("Welcome back, dora.")
            assert await visits(page) == 3, "the count goes on after signing in"
            await expect(page.locator("#cookie-lifetime")).to_contain_text("Persistent cookie")
            countdown = page.locator("#expires-in")
            first = await countdown.inner_text()
            assert re.fullmatch(r"29 d 23:59:5\d", first), first
            await expect(countdown).not_to_have_text(first, timeout=5000)  # static/session.js
            assert re.fullmatch(r"29 d 23:5\d:\d\d", await countdown.inner_text())

            assert problems == [], problems
            await context.close()


async def test_the_pages_fit_and_nothing_wraps_at_desktop_and_phone_size(tmp_path: Path) -> None:
    env = {"SECRET_KEY": "browser test secret " + "b" * 24}
    with demo_server(tmp_path / "instance", **env) as base:
        async with chromium() as browser:
            problems: list[str] = []
            for size in (DESKTOP, PHONE):
                context = await browser.new_context(viewport=size)
                page = await watched_page(context, problems)
                await register(page, base, f"dora{size['width']}")
                for path in ("/", "/account", "/login", "/register"):
                    await page.goto(base + path)
                    overflow = await page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 0, f"{path} is {overflow}px too wide at {size}"
                await page.goto(base + "/account")
                widths = await page.locator(".card").evaluate_all(
                    "cards => cards.map(card => Math.round(card.getBoundingClientRect().width))"
                )
                assert len(widths) == 3 and len(set(widths)) == 1, f"card widths {widths} at {size}"
                for name in ("Sign out", "Log out"):
                    button = page.get_by_role("button", name=name, exact=True)
                    assert await text_lines(button) == 1, f"{name!r} wraps at {size}"
                await context.close()
            assert problems == [], problems


async def text_lines(element: Any) -> int:
    """How many lines of text an element's content takes."""
    return int(
        await element.evaluate(
            """element => {
                const style = getComputedStyle(element);
                const content = element.clientHeight - parseFloat(style.paddingTop)
                    - parseFloat(style.paddingBottom);
                return Math.round(content / parseFloat(style.lineHeight));
            }"""
        )
    )


async def test_behind_nginx_the_history_shows_the_workers_while_the_count_goes_on(
    tmp_path: Path,
) -> None:
    with demo_cluster(tmp_path / "instance", workers=3) as base:
        async with chromium() as browser:
            context = await browser.new_context(viewport=DESKTOP)
            problems: list[str] = []
            page = await watched_page(context, problems)

            response = await page.goto(base + "/")
            assert response is not None
            await expect(page.locator("#store")).to_have_text("RedisStore")
            seen: list[str] = []
            for expected in range(1, 13):
                if expected > 1:
                    response = await page.reload()
                    assert response is not None
                assert await visits(page) == expected
                served_by = response.headers["x-served-by"]
                await expect(page.locator("#worker")).to_have_text(served_by)
                history = await worker_history(page)
                assert history[0] == served_by
                assert all(a != b for a, b in zip(history, history[1:], strict=False))
                seen.append(served_by)
                if len(set(history)) >= 2 and expected >= 3:
                    break
            assert len(set(seen)) >= 2, f"every reload landed on {seen[0]}"
            await expect(page.locator("#worker-note")).to_contain_text("one session")

            count = await visits(page)
            await register(page, base, "dora")
            assert await visits(page) == count + 1, "the count goes on across sign-in"
            kept = await worker_history(page)
            assert set(kept) >= set(history[:5]), "the history is kept across sign-in"

            assert problems == [], problems
            await context.close()


def _record(problems: list[str], message: ConsoleMessage) -> None:
    # CSP violations and failed loads show up as console errors.
    if message.type == "error":
        problems.append(message.text)
