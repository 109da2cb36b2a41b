"""Signing out: POST only, the record is destroyed, a replayed cookie is anonymous."""

from __future__ import annotations

from .support import Site


async def test_logout_by_get_is_not_allowed(site: Site) -> None:
    browser = await site.user("alice")
    response = await browser.get("/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert await browser.signed_in_as() == "alice"


async def test_logout_signs_out_and_clears_the_cookie(site: Site) -> None:
    browser = await site.user("alice")
    response = await browser.logout()
    assert response.status_code == 302
    cleared = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("connect.sid=")]
    assert cleared and "Expires=Thu, 01 Jan 1970" in cleared[0]
    assert await browser.signed_in_as() is None


async def test_replayed_cookie_after_logout_is_anonymous(site: Site) -> None:
    browser = await site.user("alice")
    stolen = browser.cookie
    assert stolen is not None
    await browser.logout()

    thief = site.browser()
    thief.set_cookie(stolen)
    assert await thief.signed_in_as() is None
    assert await thief.visits() == 1


async def test_counter_starts_over_after_logout(site: Site) -> None:
    browser = await site.user("alice")
    for expected in (1, 2, 3):
        assert await browser.visits() == expected
    await browser.logout()
    assert await browser.visits() == 1
