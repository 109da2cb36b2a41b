"""Take the README's screenshots: ``python -m tests.browser.screenshot [--cluster] [--phone] [out.png]``.

Starts the demo in a temporary instance folder (``python app.py`` on the embedded store, or with
``--cluster`` three workers behind nginx sharing a private Redis), visits the counter
anonymously, registers, signs in again with "remember me" and reloads; then photographs the
counter page whole at 1280 px (``docs/screenshot.png`` or ``docs/screenshot-cluster.png``),
and with ``--phone`` at 390 px too (``…-phone.png``, plus the account page).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

from .demo import ROOT, chromium, demo_cluster, demo_server, log_in, register

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


async def take(base: str, out: Path, phone: Path | None) -> None:
    async with chromium() as browser:
        context = await browser.new_context(viewport=DESKTOP, device_scale_factor=1)
        page = await context.new_page()
        await page.goto(base + "/")
        await page.reload()
        await register(page, base, "dora")
        await log_in(page, base, "dora", remember=True)
        for _ in range(3):
            await page.reload()
        await page.screenshot(path=str(out), full_page=True)
        if phone is not None:
            await page.set_viewport_size(PHONE)
            await page.reload()
            await page.screenshot(path=str(phone), full_page=True)
            await page.goto(base + "/account")
            await page.screenshot(
                path=str(phone.with_name(phone.stem + "-account.png")), full_page=True
            )
        await context.close()


def main() -> None:
    cluster = "--cluster" in sys.argv
    args = [a for a in sys.argv[1:] if a not in ("--phone", "--cluster")]
    default = "screenshot-cluster.png" if cluster else "screenshot.png"
    out = Path(args[0]) if args else ROOT / "docs" / default
    phone = out.with_name(out.stem + "-phone.png") if "--phone" in sys.argv else None
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        site: AbstractContextManager[str] = (
            demo_cluster(instance) if cluster else demo_server(instance)
        )
        with site as base:
            asyncio.run(take(base, out, phone))
    print(out)


if __name__ == "__main__":
    main()
