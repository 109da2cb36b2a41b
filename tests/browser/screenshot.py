"""Take the README's screenshot of the demo: ``python -m tests.browser.screenshot [out.png]``.

Starts ``python app.py`` on the embedded default in a temporary instance folder, registers a
user, signs in, reloads the counter a few times and photographs it (desktop width); with
``--phone`` a phone-width picture too.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from .demo import ROOT, chromium, demo_server

PASSWORD = "a quiet orchard at dawn"


async def take(out: Path, phone: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp, demo_server(Path(tmp) / "instance") as base:
        async with chromium() as browser:
            context = await browser.new_context(
                viewport={"width": 1100, "height": 640}, device_scale_factor=1
            )
            page = await context.new_page()
            await page.goto(base + "/register")
            await page.fill("#username", "dora")
            await page.fill("#password", PASSWORD)
            await page.fill("#confirm", PASSWORD)
            await page.click("button[type=submit]")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            for _ in range(6):
                await page.reload()
            await page.screenshot(path=str(out))
            if phone is not None:
                await page.set_viewport_size({"width": 390, "height": 760})
                await page.reload()
                await page.screenshot(path=str(phone), full_page=True)
                await page.goto(base + "/account")
                await page.screenshot(
                    path=str(phone.with_name(phone.stem + "-account.png")), full_page=True
                )
            await context.close()


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--phone"]
    out = Path(args[0]) if args else ROOT / "docs" / "screenshot.png"
    phone = out.with_name(out.stem + "-phone.png") if "--phone" in sys.argv else None
    asyncio.run(take(out, phone))
    print(out)


if __name__ == "__main__":
    main()
