"""Sign-ins live in the session: no user look-up per request; revocation destroys records."""

from __future__ import annotations

import asyncio
from typing import Any

from auth import User, owner_key

from .support import PASSWORD, Browser, Site, SiteFactory

NEW_PASSWORD = "an entirely new passphrase"


def session_id(browser: Browser) -> str:
    assert browser.cookie is not None
    return browser.cookie.removeprefix("s%3A").split(".")[0]


async def test_signed_in_pages_need_no_user_record(site: Site) -> None:
    """The user store down: signed-in pages still know who is signed in (a sign-in does not)."""
    browser = await site.user("alice")
    users = site.auth.users

    async def unavailable(*args: Any) -> User | None:
        raise AssertionError("a signed-in page looked up the user")

    users.get = unavailable  # type: ignore[method-assign]
    users.by_username = unavailable  # type: ignore[method-assign]
    try:
        assert await browser.signed_in_as() == "alice"
        assert await browser.visits() == 1
        assert "Signed in as" in await browser.text("/")
    finally:
        del users.get, users.by_username


async def test_a_stolen_cookie_is_dead_on_its_next_request_after_a_password_change(
    site: Site,
) -> None:
    laptop = await site.user("alice")
    phone = site.browser()
    assert (await phone.login("alice")).status_code == 302
    thief = site.browser()
    assert phone.cookie is not None
    thief.set_cookie(phone.cookie)
    assert await thief.signed_in_as() == "alice"

    form = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert (await laptop.post("/account/password", form)).status_code == 302

    assert await site.store.get(session_id(phone)) is None
    assert await thief.signed_in_as() is None
    assert await phone.signed_in_as() is None
    assert await laptop.signed_in_as() == "alice"


async def test_a_sign_in_that_checked_the_old_password_during_a_change_is_ended(
    site: Site,
) -> None:
    """The race: a sign-in reads the user, the password changes and destroy_owned runs, then
    the sign-in writes its session. Its re-read of the user's generation ends it."""
    laptop = await site.user("alice")
    users = site.auth.users
    read, go_on = asyncio.Event(), asyncio.Event()
    real_by_username = users.by_username

    async def slow_by_username(username: str) -> User | None:
        user = await real_by_username(username)
        read.set()
        await go_on.wait()  # the old record is in hand; the password changes meanwhile
        return user

    users.by_username = slow_by_username  # type: ignore[method-assign]
    thief = site.browser()
    token = await thief.csrf_token()
    try:
        attempt = asyncio.create_task(thief.login("alice", PASSWORD, csrf_token=token))
        await asyncio.wait_for(read.wait(), 10)
        form = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        assert (await laptop.post("/account/password", form)).status_code == 302
        go_on.set()
        response = await asyncio.wait_for(attempt, 10)
    finally:
        del users.by_username

    assert response.status_code == 401
    assert "Wrong username or password." in await response.get_data(as_text=True)
    assert await thief.signed_in_as() is None
    user = await users.by_username("alice")
    assert user is not None
    listed = await site.store.owned(owner_key(user.id))
    assert [info.id for info in listed] == [session_id(laptop)]


async def test_a_rehash_on_sign_in_does_not_end_other_sessions(make_site: SiteFactory) -> None:
    """Same password, new parameters: the generation stays, so do the other sessions."""
    from argon2 import PasswordHasher

    site = await make_site()
    phone = await site.user("alice")
    site.auth.passwords.hasher = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    before = await site.auth.users.by_username("alice")
    laptop = site.browser()
    assert (await laptop.login("alice")).status_code == 302
    after = await site.auth.users.by_username("alice")
    assert before is not None and after is not None
    assert after.password_hash != before.password_hash
    assert after.generation == before.generation
    assert await phone.signed_in_as() == "alice"


async def test_each_user_keeps_at_most_the_session_cap(make_site: SiteFactory) -> None:
    site = await make_site(AUTH_MAX_SESSIONS=3)
    first = await site.user("alice")
    others = [site.browser() for _ in range(4)]
    for browser in others:
        assert (await browser.login("alice")).status_code == 302

    alive = [b for b in (first, *others) if await b.signed_in_as() == "alice"]
    assert alive == others[-3:]
    user = await site.auth.users.by_username("alice")
    assert user is not None
    assert len(await site.store.owned(owner_key(user.id))) == 3


async def test_the_least_recently_seen_session_is_signed_out_first(make_site: SiteFactory) -> None:
    site = await make_site(AUTH_MAX_SESSIONS=3)
    oldest = await site.user("alice")  # signed in first, but in use
    idle = site.browser()
    assert (await idle.login("alice")).status_code == 302
    recent = site.browser()
    assert (await recent.login("alice")).status_code == 302
    await asyncio.sleep(1.1)  # last-seen times are kept to the second by some stores
    assert await oldest.visits() == 1

    newest = site.browser()
    assert (await newest.login("alice")).status_code == 302

    assert await idle.signed_in_as() is None
    for browser in (oldest, recent, newest):
        assert await browser.signed_in_as() == "alice"


async def test_other_users_sessions_do_not_count_against_the_cap(make_site: SiteFactory) -> None:
    site = await make_site(AUTH_MAX_SESSIONS=1)
    alice = await site.user("alice")
    bob = await site.user("bob")
    assert await alice.signed_in_as() == "alice"
    assert await bob.signed_in_as() == "bob"
