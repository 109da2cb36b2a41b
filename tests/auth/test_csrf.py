"""CSRF: every unsafe request of the blueprint needs this browser's token, or gets 400."""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from http.cookies import SimpleCookie
from pathlib import Path

from .support import PASSWORD, Browser, Site, site_settings, start_site

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def token_on(browser: Browser, path: str) -> str:
    match = TOKEN.search(await browser.text(path))
    assert match, f"{path} has no csrf_token field"
    return match.group(1)


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
    own_token = await token_on(victim, "/account")  # the victim holds a token of their own
    attacker = await site.user("mallory")
    for token in (await token_on(attacker, "/account"), await site.browser().csrf_token()):
        assert token and token != own_token
        response = await victim.post("/logout", {"csrf_token": token})
        assert response.status_code == 400
        assert await victim.signed_in_as() == "alice"
    assert (await victim.post("/logout", {"csrf_token": own_token})).status_code == 302


async def test_an_anonymous_token_works_only_with_its_own_browsers_cookie(site: Site) -> None:
    """Signed double-submit: the token is an HMAC of a random value in this browser's cookie."""
    await site.browser().register("alice")
    attacker = site.browser()
    attackers_token = await attacker.csrf_token()
    victim = site.browser()
    await victim.csrf_token()  # the victim has a cookie of their own

    forged = await victim.login("alice", csrf_token=attackers_token)
    assert forged.status_code == 400
    assert (await attacker.login("alice", csrf_token=attackers_token)).status_code == 302


async def test_a_cookie_without_its_token_or_a_token_without_its_cookie_is_refused(
    site: Site,
) -> None:
    await site.browser().register("alice")
    browser = site.browser()
    token = await browser.csrf_token()
    cookieless = site.browser()
    assert (await cookieless.login("alice", csrf_token=token)).status_code == 400
    assert (await browser.login("alice", csrf_token="")).status_code == 400
    altered = token[:-1] + ("1" if token.endswith("0") else "0")
    assert (await browser.login("alice", csrf_token=altered)).status_code == 400
    assert (await browser.login("alice", csrf_token=token.upper())).status_code == 400


async def test_the_token_changes_at_sign_in(site: Site) -> None:
    """A token seen before signing in (in a page, a proxy log) is no good after it."""
    browser = site.browser()
    await browser.register("alice")
    anonymous = await browser.csrf_token()
    assert (await browser.login("alice", csrf_token=anonymous)).status_code == 302
    signed_in = await token_on(browser, "/account")
    assert signed_in != anonymous
    assert (await browser.post("/logout", {"csrf_token": anonymous})).status_code == 400
    assert await browser.signed_in_as() == "alice"


async def test_the_anonymous_cookie_is_private_to_this_site(site: Site) -> None:
    response = await site.browser().get("/login")
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("auth.csrf=")]
    assert len(headers) == 1
    cookie = SimpleCookie()
    cookie.load(headers[0])
    morsel = cookie["auth.csrf"]
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert len(morsel.value) >= 32
    assert "Cookie" in response.headers.get("Vary", "")


async def test_over_https_the_cookie_is_a_host_only_secure_cookie(site: Site) -> None:
    response = await site.app.test_client().get("/login", scheme="https")
    headers = response.headers.getlist("Set-Cookie")
    assert any(h.startswith("__Host-auth.csrf=") and "Secure" in h for h in headers), headers


async def test_forms_keep_working_across_a_secret_rotation(
    tmp_path: Path, site: Site, key_prefix: str, redis_url: str
) -> None:
    """A page served before the new secret was deployed still posts after it."""
    prefix = key_prefix.removesuffix("sess:") + "rotation:"
    settings = site_settings(
        site.backend,
        tmp_path / "rotation",
        prefix,
        redis_url,
        database_url=site.settings.get("DATABASE_URL"),
    )
    async with AsyncExitStack() as stack:
        before = await start_site(stack, site.backend, {**settings, "SECRET_KEY": "old " * 10})
        browser = before.browser()
        assert (await browser.register("alice")).status_code == 302
        token = await browser.csrf_token()
        after = await start_site(
            stack,
            site.backend,
            {**settings, "SECRET_KEY": "new " * 10, "SECRET_KEY_FALLBACKS": ["old " * 10]},
        )
        browser.client.app = after.app
        assert (await browser.login("alice", csrf_token=token)).status_code == 302
        assert await token_on(browser, "/account") != token


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
            fields = TOKEN.findall(page)
            assert forms and len(fields) == forms, path
            assert set(fields) == {token}, path


async def test_the_error_page_explains_and_does_not_leak(site: Site) -> None:
    response = await site.browser().post("/login", {"username": "a", "password": "b"}, csrf=False)
    page = await response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Reload the page and try again" in page
    assert "Traceback" not in page
