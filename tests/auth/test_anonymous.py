"""A visitor who only looks stores nothing: no session record for the sign-in forms."""

from __future__ import annotations

import re
from typing import Any

import pytest
from quart.testing import QuartClient

from .support import COOKIE, Site

# Enough cookieless requests that one stored record per request could not hide; the README's
# figures for 10,000 per page come from the same loop.
LOOKS = 300


async def stored_records(site: Site) -> int:
    """Session records in the store (files or Redis keys)."""
    return len(await site.store.ids())


async def redis_keys(site: Site, redis_client: Any, key_prefix: str) -> list[str]:
    """Every key of this test on the shared Redis (sessions, users, counters)."""
    prefix = key_prefix.removesuffix("sess:")
    return [key.decode() async for key in redis_client.scan_iter(match=f"{prefix}*")]


@pytest.mark.parametrize("path", ["/login", "/register", "/account"])
async def test_cookieless_looks_at_the_auth_pages_store_nothing(
    site: Site, path: str, redis_client: Any, key_prefix: str
) -> None:
    before = await stored_records(site)
    keys_before = await redis_keys(site, redis_client, key_prefix)
    client = QuartClient(site.app, use_cookies=False)
    for _ in range(LOOKS):
        response = await client.get(path)
        assert response.status_code in (200, 302)
        assert not any(h.startswith(f"{COOKIE}=") for h in response.headers.getlist("Set-Cookie"))

    assert await stored_records(site) == before
    assert await redis_keys(site, redis_client, key_prefix) == keys_before


async def test_the_counter_stores_one_record_per_cookieless_visit_by_design(site: Site) -> None:
    before = await stored_records(site)
    client = QuartClient(site.app, use_cookies=False)
    for _ in range(50):
        assert (await client.get("/")).status_code == 200
    assert await stored_records(site) == before + 50


async def test_the_sign_in_form_still_works_without_a_stored_session(site: Site) -> None:
    await site.browser().register("alice")
    browser = site.browser()
    page = await browser.text("/login")
    assert browser.cookie is None  # only the CSRF cookie, no session
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = await browser.login("alice", csrf_token=token.group(1))
    assert response.status_code == 302
    assert await browser.signed_in_as() == "alice"
