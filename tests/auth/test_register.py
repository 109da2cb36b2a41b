"""Registration rules: usernames, passwords, clear errors, the form keeps what was typed."""

from __future__ import annotations

import pytest

from .support import PASSWORD, Site


async def test_registering_signs_you_in(site: Site) -> None:
    browser = site.browser()
    response = await browser.register("alice")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "Your account is ready and you are signed in" in await browser.text("/")
    assert await browser.signed_in_as() == "alice"
    assert (await browser.login("alice")).status_code == 302


async def test_registering_keeps_the_visitors_data_under_a_new_id(site: Site) -> None:
    browser = site.browser()
    assert await browser.visits() == 1
    anonymous = browser.cookie
    await browser.register("alice")
    assert browser.cookie != anonymous
    assert await browser.visits() == 2


async def test_registering_does_not_store_the_password(site: Site) -> None:
    await site.browser().register("alice")
    user = await site.auth.users.by_username("alice")
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


LENGTH = "Usernames are 3 to 32 characters long."
CHARACTERS = "Use only letters, digits and . _ -, starting and ending with a letter or digit."


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("ab", LENGTH),
        ("x" * 33, LENGTH),
        ("has space", CHARACTERS),
        ("-leading", CHARACTERS),
        ("trailing.", CHARACTERS),
        ("émile", CHARACTERS),
        ("a/b", CHARACTERS),
        ("<script>", CHARACTERS),
    ],
)
async def test_bad_usernames_are_refused(site: Site, username: str, message: str) -> None:
    response = await site.browser().register(username)
    assert response.status_code == 400
    assert message in await response.get_data(as_text=True)
    assert await site.auth.users.by_username(username) is None


async def test_usernames_are_unique_whatever_the_case(site: Site) -> None:
    assert (await site.browser().register("Alice")).status_code == 302
    response = await site.browser().register("aLiCe")
    assert response.status_code == 400
    assert "That username is taken." in await response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "Use at least 8 characters."),
        ("x" * 1025, "Use at most 1024 characters."),
        ("alice-the-user", "must not be your username"),
        ("ALICE-THE-USER", "must not be your username"),
        ("password123", "too common"),
        ("Qwerty123", "too common"),
    ],
)
async def test_weak_passwords_are_refused(site: Site, password: str, message: str) -> None:
    response = await site.browser().register("alice-the-user", password)
    assert response.status_code == 400
    assert message in await response.get_data(as_text=True)
    assert await site.auth.users.by_username("alice-the-user") is None


async def test_longest_password_is_accepted(site: Site) -> None:
    browser = site.browser()
    assert (await browser.register("alice", "p" * 1024)).status_code == 302
    assert (await browser.login("alice", "p" * 1024)).status_code == 302


async def test_mismatched_confirmation_is_refused(site: Site) -> None:
    response = await site.browser().register("alice", confirm="something else entirely")
    assert response.status_code == 400
    assert "The two passwords differ." in await response.get_data(as_text=True)


async def test_the_form_keeps_the_username_but_not_the_passwords(site: Site) -> None:
    response = await site.browser().register("bob", "short")
    page = await response.get_data(as_text=True)
    assert 'value="bob"' in page
    assert 'value="short"' not in page


async def test_typed_values_are_escaped(site: Site) -> None:
    response = await site.browser().register('"><script>alert(1)</script>')
    page = await response.get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;" in page or "&#34;&gt;&lt;script" in page
