"""Unread flash messages are bounded: repeating an action cannot grow the session into a 500."""

from __future__ import annotations

from auth.flashes import MAX_FLASHES, flash
from sessions import session

from .support import Site, SiteFactory


def session_id(cookie: str | None) -> str:
    assert cookie is not None
    return cookie.removeprefix("s%3A").split(".")[0]


async def test_a_form_posted_again_and_again_unread_never_gives_a_500(
    make_site: SiteFactory,
) -> None:
    # A small max_size makes an unbounded list fail within a few dozen posts.
    site = await make_site(SESSION_MAX_SIZE=2048)
    browser = await site.user("alice")
    token = await browser.csrf_token()  # once: no page in between reads the messages
    for number in range(200):
        response = await browser.post("/account/sessions/revoke-others", {"csrf_token": token})
        assert response.status_code == 302, f"post {number} gave {response.status_code}"

    record = await site.store.get(session_id(browser.cookie))
    assert record is not None
    assert len(record["_flashes"]) <= MAX_FLASHES


async def test_the_same_message_is_kept_once(site: Site) -> None:
    browser = await site.user("alice")
    token = await browser.csrf_token()
    for _ in range(3):
        await browser.post("/account/sessions/revoke-others", {"csrf_token": token})
    page = await browser.text("/account")
    assert page.count("Signed out 0 other sessions.") == 1


async def test_the_newest_messages_are_kept_in_order(site: Site) -> None:
    async with site.app.test_request_context("/"):
        for number in range(10):
            await flash(f"message {number}", "info")
        await flash("message 8", "info")  # again: moves to the end, kept once
        kept = [message for _, message in session["_flashes"]]
    others = [f"message {n}" for n in range(10) if n != 8]
    assert kept == [*others[-(MAX_FLASHES - 1) :], "message 8"]
