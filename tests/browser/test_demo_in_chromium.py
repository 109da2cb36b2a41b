"""End to end in headless Chromium: register, log in, the counter rises, log out, it starts over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, Page, expect

from .demo import chromium, demo_server

PASSWORD = "a quiet orchard at dawn"


@pytest.fixture(params=["embedded", "redis"])
def server_env(
    request: pytest.FixtureRequest, key_prefix: str, redis_url: str, redis_client: Any
) -> dict[str, str]:
    env = {"SECRET_KEY": "browser test secret " + "b" * 24}
    if request.param == "redis":
        env.update(REDIS_URL=redis_url, REDIS_PREFIX=key_prefix.removesuffix("sess:"))
    return env


async def visits(page: Page) -> int:
    return int(await page.locator("#visits").inner_text())


async def test_register_login_count_logout(tmp_path: Path, server_env: dict[str, str]) -> None:
    with demo_server(tmp_path / "instance", **server_env) as base:
        async with chromium() as browser:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            problems: list[str] = []
            page.on("console", lambda m: _record(problems, m))
            page.on("pageerror", lambda error: problems.append(str(error)))

            await page.goto(base + "/")
            await expect(page.locator("h1")).to_contain_text("Welcome, this is your first visit")
            assert await visits(page) == 1

            await page.get_by_role("navigation").get_by_role("link", name="Register").click()
            await page.fill("#username", "dora")
            await page.fill("#password", PASSWORD)
            await page.fill("#confirm", PASSWORD)
            await page.get_by_role("button", name="Register").click()
            await expect(page.locator(".flash")).to_contain_text("Your account is ready")
            await expect(page.locator("#username")).to_have_value("dora")

            await page.fill("#password", PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await expect(page.locator("#username")).to_have_text("dora")
            await expect(page.locator(".nav-user")).to_have_text("dora")
            first = await visits(page)
            for step in (1, 2, 3):
                await page.reload()
                assert await visits(page) == first + step
            await expect(page.locator("h1")).to_contain_text(
                f"You have visited this page {first + 3} times"
            )
            served_by = await page.locator("#served-by").inner_text()
            assert served_by.rsplit(":", 1)[1].isdigit()
            await page.screenshot(path=str(tmp_path / "counter.png"), full_page=True)
            assert (tmp_path / "counter.png").stat().st_size > 10_000

            await page.goto(base + "/account")
            await expect(page.locator(".session-current")).to_contain_text("Headless Chrom")

            await page.get_by_role("button", name="Log out").click()
            await expect(page.locator("h1")).to_contain_text("Welcome, this is your first visit")
            assert await visits(page) == 1
            await expect(
                page.get_by_role("navigation").get_by_role("link", name="Log in")
            ).to_be_visible()
            assert problems == [], problems
            await context.close()


def _record(problems: list[str], message: ConsoleMessage) -> None:
    # CSP violations and failed loads show up as console errors.
    if message.type == "error":
        problems.append(message.text)
