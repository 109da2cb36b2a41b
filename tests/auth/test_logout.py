"""Signing out: POST only, the record is destroyed, a replayed cookie is anonymous."""

from __future__ import annotations

from .support import Site


async def test_logout_by_get_is_not_allowed(site: Site) -> None:
    browser = await site.user("alice")
    response = await browser.get("/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert await browser.signed_in_as() == "alice"


async def test_logout_signs_out_and_says_so(site: Site) -> None:
    browser = await site.user("alice")
    signed_in = browser.cookie
    response = await browser.logout()
    assert response.status_code == 302
    # The signed-in session is gone; a fresh anonymous one carries the notice to the next page.
    replaced = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("connect.sid=")]
    assert len(replaced) == 1 and signed_in is not None and signed_in not in replaced[0]
    assert "You are signed out." in await browser.text(response.headers["Location"])
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
