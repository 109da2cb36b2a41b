"""The account page: the user's sessions, revoking them, changing the password."""

from __future__ import annotations

import re

from .support import PASSWORD, Browser, Site, SiteFactory

NEW_PASSWORD = "an entirely new passphrase"


def handles(page: str) -> list[str]:
    return re.findall(r'name="session" value="([^"]+)"', page)


async def second_device(site: Site, username: str = "alice") -> Browser:
    browser = site.browser()
    response = await browser.login(
        username, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}
    )
    assert response.status_code == 302
    return browser


async def test_account_lists_every_session_and_marks_this_one(site: Site) -> None:
    laptop = await site.user("alice")
    await second_device(site)
    page = await laptop.text("/account")

    assert len(handles(page)) == 2
    assert page.count("This session") == 1
    assert "Firefox on Linux" in page
    assert "Signed in" in page and "Last seen" in page
    assert laptop.cookie is not None and laptop.cookie.split(".")[0][3:] not in page


async def test_account_does_not_list_other_users_sessions(site: Site) -> None:
    alice = await site.user("alice")
    await site.user("bob")
    assert len(handles(await alice.text("/account"))) == 1


async def test_revoke_one_session(site: Site) -> None:
    laptop = await site.user("alice")
    phone = await second_device(site)
    page = await laptop.text("/account")
    current = re.search(r'This session.*?name="session" value="([^"]+)"', page, re.S)
    assert current
    other = next(h for h in handles(page) if h != current.group(1))

    response = await laptop.post("/account/sessions/revoke", {"session": other})

    assert response.status_code == 302
    assert await phone.signed_in_as() is None
    assert await laptop.signed_in_as() == "alice"
    assert len(handles(await laptop.text("/account"))) == 1


async def test_revoke_unknown_handle_changes_nothing(site: Site) -> None:
    laptop = await site.user("alice")
    phone = await second_device(site)
    response = await laptop.post("/account/sessions/revoke", {"session": "not-a-handle"})
    assert response.status_code == 302
    assert await phone.signed_in_as() == "alice"


async def test_a_user_cannot_revoke_another_users_session(site: Site) -> None:
    alice = await site.user("alice")
    bob = await site.user("bob")
    bobs = handles(await bob.text("/account"))
    await alice.post("/account/sessions/revoke", {"session": bobs[0]})
    assert await bob.signed_in_as() == "bob"


async def test_revoke_all_other_sessions(site: Site) -> None:
    laptop = await site.user("alice")
    phone = await second_device(site)
    tablet = await second_device(site)

    response = await laptop.post("/account/sessions/revoke-others")

    assert response.status_code == 302
    assert "Signed out 2 other sessions." in await laptop.text("/account")
    assert await phone.signed_in_as() is None
    assert await tablet.signed_in_as() is None
    assert await laptop.signed_in_as() == "alice"


async def test_revoking_this_session_signs_out(site: Site) -> None:
    laptop = await site.user("alice")
    page = await laptop.text("/account")
    await laptop.post("/account/sessions/revoke", {"session": handles(page)[0]})
    assert await laptop.signed_in_as() is None


async def test_password_change_ends_other_sessions_and_keeps_this_one(site: Site) -> None:
    laptop = await site.user("alice")
    phone = await second_device(site)
    before = laptop.cookie
    await laptop.visits()
    await laptop.visits()

    response = await laptop.post(
        "/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )

    assert response.status_code == 302
    assert laptop.cookie != before
    assert await laptop.signed_in_as() == "alice"
    assert await laptop.visits() == 3
    assert await phone.signed_in_as() is None
    assert (await site.browser().login("alice", PASSWORD)).status_code == 401
    assert (await site.browser().login("alice", NEW_PASSWORD)).status_code == 302


async def test_wrong_current_password_changes_nothing(site: Site) -> None:
    laptop = await site.user("alice")
    phone = await second_device(site)
    response = await laptop.post(
        "/account/password", {"current_password": "wrong guess", "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 400
    assert "That is not your current password." in await response.get_data(as_text=True)
    assert await phone.signed_in_as() == "alice"
    assert (await site.browser().login("alice", PASSWORD)).status_code == 302


async def test_new_password_follows_the_registration_rules(site: Site) -> None:
    laptop = await site.user("alice")
    response = await laptop.post(
        "/account/password", {"current_password": PASSWORD, "new_password": "password123"}
    )
    assert response.status_code == 400
    assert "too common" in await response.get_data(as_text=True)


async def test_guessing_the_current_password_is_throttled(make_site: SiteFactory) -> None:
    site = await make_site(AUTH_LOGIN_LIMIT=2)
    laptop = await site.user("alice")
    form = {"current_password": "guess", "new_password": NEW_PASSWORD}
    assert (await laptop.post("/account/password", form)).status_code == 400
    assert (await laptop.post("/account/password", form)).status_code == 400
    response = await laptop.post("/account/password", form)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
