"""Signing in: fixation, generic errors, remember-me, next, rehash, login_required."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.cookies import SimpleCookie

from argon2 import PasswordHasher

from .support import PASSWORD, Site, SiteFactory


def set_cookie(response: object, name: str = "connect.sid") -> SimpleCookie:
    headers = response.headers.getlist("Set-Cookie")  # type: ignore[attr-defined]
    jar: SimpleCookie = SimpleCookie()
    for header in headers:
        if header.startswith(name + "="):
            jar.load(header)
    return jar


async def test_login_gives_a_new_session_id(site: Site) -> None:
    await site.browser().register("alice")
    browser = site.browser()
    await browser.visits()
    before = browser.cookie
    assert before is not None

    response = await browser.login("alice")

    assert response.status_code == 302
    assert browser.cookie is not None and browser.cookie != before
    assert await browser.signed_in_as() == "alice"


async def test_planted_session_id_is_not_adopted(site: Site) -> None:
    """Fixation: an attacker's cookie, planted before the victim signs in, stays anonymous."""
    attacker = site.browser()
    await attacker.visits()
    planted = attacker.cookie
    assert planted is not None
    victim = site.browser()
    victim.set_cookie(planted)
    await victim.register("victim")
    await victim.login("victim")

    assert await victim.signed_in_as() == "victim"
    assert await attacker.signed_in_as() is None
    assert await site.store.get(planted.removeprefix("s%3A").split(".")[0]) is None


async def test_wrong_password_and_unknown_user_get_the_same_message(site: Site) -> None:
    await site.browser().register("alice")
    browser = site.browser()

    wrong = await browser.login("alice", "not the password")
    unknown = await browser.login("nobody", "not the password")

    assert wrong.status_code == unknown.status_code == 401
    for response in (wrong, unknown):
        page = await response.get_data(as_text=True)
        assert "Wrong username or password." in page
        assert "not the password" not in page
    assert await browser.signed_in_as() is None


async def test_username_is_case_insensitive_at_login(site: Site) -> None:
    browser = site.browser()
    await browser.register("Alice")
    assert (await browser.login("aLICE")).status_code == 302
    assert await browser.signed_in_as() == "Alice"


async def test_empty_form_is_refused_without_a_500(site: Site) -> None:
    browser = site.browser()
    response = await browser.post("/login", {})
    assert response.status_code == 400
    assert "Enter your username and password." in await response.get_data(as_text=True)


async def test_without_remember_me_the_cookie_ends_with_the_browser(site: Site) -> None:
    browser = site.browser()
    await browser.register("alice")
    response = await browser.login("alice")
    cookie = set_cookie(response)["connect.sid"]
    assert not cookie["max-age"] and not cookie["expires"]
    assert cookie["httponly"] and cookie["samesite"].lower() == "lax"


def lifetime(response: object) -> float:
    """Seconds until the session cookie expires, from its Expires attribute."""
    expires = parsedate_to_datetime(set_cookie(response)["connect.sid"]["expires"])
    return (expires - datetime.now(UTC)).total_seconds()


async def test_remember_me_makes_the_cookie_last_30_days(site: Site) -> None:
    browser = site.browser()
    await browser.register("alice")
    response = await browser.login("alice", remember=True)
    assert abs(lifetime(response) - 30 * 24 * 3600) < 60


async def test_remember_duration_is_configurable(make_site: SiteFactory) -> None:
    site = await make_site(AUTH_REMEMBER_DURATION=3600)
    browser = site.browser()
    await browser.register("alice")
    response = await browser.login("alice", remember=True)
    assert abs(lifetime(response) - 3600) < 60


async def test_next_is_followed_for_a_local_path(site: Site) -> None:
    browser = site.browser()
    await browser.register("alice")
    response = await browser.login("alice", next="/account?tab=sessions")
    assert response.status_code == 302
    assert response.headers["Location"] == "/account?tab=sessions"


async def test_open_redirect_attempts_go_home(site: Site) -> None:
    browser = site.browser()
    await browser.register("alice")
    attempts = [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "http:/evil.example",
    ]
    for target in attempts:
        await browser.logout()
        response = await browser.login("alice", next=target)
        assert response.status_code == 302, target
        assert response.headers["Location"] == "/", target


async def test_next_in_the_query_string_is_checked_too(site: Site) -> None:
    browser = site.browser()
    await browser.register("alice")
    form = {"username": "alice", "password": PASSWORD}
    response = await browser.post("/login?next=//evil.example", form)
    assert response.headers["Location"] == "/"


async def test_login_page_carries_a_safe_next_only(site: Site) -> None:
    browser = site.browser()
    assert 'name="next" value="/account"' in await browser.text("/login?next=/account")
    assert "evil" not in await browser.text("/login?next=//evil.example")


async def test_login_required_redirects_pages_to_login_with_next(site: Site) -> None:
    response = await site.browser().get("/account")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/account"


async def test_the_login_page_says_why_it_is_shown(site: Site) -> None:
    browser = site.browser()
    redirected = await browser.get("/account")
    assert "Please sign in to see your account." in await browser.text(
        redirected.headers["Location"]
    )
    assert "Please sign in to continue." in await browser.text("/login?next=/elsewhere")
    assert "Please sign in" not in await browser.text("/login")


async def test_sign_in_makes_a_new_csrf_token_and_refuses_the_old_one(site: Site) -> None:
    await site.browser().register("alice")
    browser = site.browser()
    before = await browser.csrf_token()
    await browser.login("alice", csrf_token=before)
    after = await browser.csrf_token()
    assert after != before
    refused = await browser.post("/logout", {"csrf_token": before})
    assert refused.status_code == 400
    assert await browser.signed_in_as() == "alice"


async def test_login_required_gives_json_401_to_api_clients(site: Site) -> None:
    response = await site.browser().get("/account", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert await response.get_json() == {"error": "authentication required"}


async def test_login_rehashes_when_the_parameters_changed(make_site: SiteFactory) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    site = await make_site(AUTH_PASSWORD_HASHER=weak)
    browser = site.browser()
    await browser.register("alice")
    old_hash = (await site.auth.users.by_username("alice")).password_hash  # type: ignore[union-attr]
    assert "m=8,t=1,p=1" in old_hash

    site.auth.passwords.hasher = stronger
    assert (await browser.login("alice")).status_code == 302

    new_hash = (await site.auth.users.by_username("alice")).password_hash  # type: ignore[union-attr]
    assert "m=16,t=2,p=1" in new_hash
    assert stronger.verify(new_hash, PASSWORD)
    assert await browser.signed_in_as() == "alice"


async def test_login_with_current_parameters_keeps_the_hash(site: Site) -> None:
    browser = site.browser()
    await browser.register("alice")
    before = (await site.auth.users.by_username("alice")).password_hash  # type: ignore[union-attr]
    await browser.login("alice")
    after = (await site.auth.users.by_username("alice")).password_hash  # type: ignore[union-attr]
    assert after == before


async def test_signed_in_name_is_shown_on_the_counter_page(site: Site) -> None:
    browser = await site.user("alice")
    page = await browser.text("/")
    assert 'id="username">alice<' in page
    assert "Log out" in page
