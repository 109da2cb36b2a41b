"""CSRF: every unsafe request of the blueprint needs the session's token, or gets 400."""

from __future__ import annotations

import re

from .support import PASSWORD, Site


async def test_register_without_a_token_is_refused_and_creates_nothing(site: Site) -> None:
    browser = site.browser()
    form = {"username": "mallory", "password": PASSWORD, "confirm": PASSWORD}
    response = await browser.post("/register", form, csrf=False)
    assert response.status_code == 400
    assert await site.auth.users.by_username("mallory") is None


async def test_wrong_token_is_refused(site: Site) -> None:
    await site.browser().register("alice")
    browser = site.browser()
    response = await browser.post(
        "/login", {"username": "alice", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert response.status_code == 400
    assert await browser.signed_in_as() is None


async def test_another_sessions_token_is_refused(site: Site) -> None:
    victim = await site.user("alice")
    attacker = site.browser()
    token = await attacker.csrf_token()
    response = await victim.post("/logout", {"csrf_token": token})
    assert response.status_code == 400
    assert await victim.signed_in_as() == "alice"


async def test_logout_without_a_token_keeps_the_user_signed_in(site: Site) -> None:
    browser = await site.user("alice")
    assert (await browser.post("/logout", csrf=False)).status_code == 400
    assert await browser.signed_in_as() == "alice"


async def test_password_change_without_a_token_changes_nothing(site: Site) -> None:
    browser = await site.user("alice")
    before = (await site.auth.users.by_username("alice")).password_hash  # type: ignore[union-attr]
    form = {"current_password": PASSWORD, "new_password": "a different passphrase"}
    assert (await browser.post("/account/password", form, csrf=False)).status_code == 400
    after = (await site.auth.users.by_username("alice")).password_hash  # type: ignore[union-attr]
    assert after == before


async def test_revoking_sessions_without_a_token_changes_nothing(site: Site) -> None:
    browser = await site.user("alice")
    other = site.browser()
    await other.login("alice")
    response = await browser.post("/account/sessions/revoke-others", csrf=False)
    assert response.status_code == 400
    assert await other.signed_in_as() == "alice"


async def test_token_is_accepted_as_a_header(site: Site) -> None:
    browser = await site.user("alice")
    token = await browser.csrf_token()
    response = await browser.post("/logout", csrf=False, headers={"X-CSRF-Token": token})
    assert response.status_code == 302
    assert await browser.signed_in_as() is None


async def test_every_form_carries_the_token(site: Site) -> None:
    anonymous = site.browser()
    signed_in = await site.user("alice")
    for browser, paths in ((anonymous, ("/login", "/register")), (signed_in, ("/", "/account"))):
        token = await browser.csrf_token()
        for path in paths:
            page = await browser.text(path)
            forms = page.count("<form")
            fields = re.findall(r'name="csrf_token" value="([^"]+)"', page)
            assert forms and len(fields) == forms, path
            assert set(fields) == {token}, path


async def test_the_error_page_explains_and_does_not_leak(site: Site) -> None:
    response = await site.browser().post("/login", {"username": "a", "password": "b"}, csrf=False)
    page = await response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Reload the page and try again" in page
    assert "Traceback" not in page
