"""Run the demo (`python app.py`, or the nginx cluster) and drive it with Debian's Chromium."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

from deploy.cluster import Cluster
from deploy.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a quiet orchard at dawn"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def demo_server(instance: Path, **env: str) -> Iterator[str]:
    """`python app.py` as a person would start it; yields its base URL, stops it by PID."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SECRET_KEY")}
    environ.update(HOST="127.0.0.1", PORT=str(port), INSTANCE_PATH=str(instance), **env)
    instance.mkdir(parents=True, exist_ok=True)
    log = open(instance / "server.log", "wb")  # noqa: SIM115 - closed below, after the process
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited: {(instance / 'server.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("app.py did not start listening within 30 s") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Debian Chromium through Playwright (no browser download)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@contextmanager
def demo_cluster(instance: Path, workers: int = 3) -> Iterator[str]:
    """`python -m deploy.cluster --workers 3` in-process: nginx, granian workers, a private Redis.

    Yields the base URL through nginx; everything started is stopped by PID on the way out.
    """
    with Cluster(workers=workers, port=0, env={"INSTANCE_PATH": str(instance)}) as cluster:
        yield cluster.url.rstrip("/")


async def register(page: Page, base: str, username: str) -> None:
    """Fill in and send the registration form (which signs the new user in)."""
    await page.goto(base + "/register")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.fill("#confirm", PASSWORD)
    await page.get_by_role("button", name="Register").click()
    await page.wait_for_url(base + "/")


async def log_in(page: Page, base: str, username: str, *, remember: bool = False) -> None:
    """Sign in through the login form, with or without "remember me"."""
    await page.goto(base + "/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    if remember:
        await page.check("input[name=remember]")
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(base + "/")


async def visits(page: Page) -> int:
    """The count on the counter page."""
    return int(await page.locator("#visits").inner_text())


async def worker_history(page: Page) -> list[str]:
    """The workers the session panel lists, newest first."""
    return [text.strip() for text in await page.locator("#worker-history code").all_inner_texts()]
