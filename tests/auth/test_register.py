"""Registration rules: usernames, passwords, clear errors, the form keeps what was typed."""

from __future__ import annotations

import secrets
import unicodedata

import pytest

from .support import PASSWORD, Site, SiteFactory


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
        # Beyond any short hand-kept list: l33t, keyboard walks, words with digits, the name.
        ("P@ssw0rd!", "similar to a commonly used password"),
        ("iloveyou2", "This is a very common password."),
        ("qazwsxedc", "too common"),
        ("Summer2024!", "too common"),
        ("alice-the-user!", "too common"),
    ],
)
async def test_weak_passwords_are_refused(site: Site, password: str, message: str) -> None:
    response = await site.browser().register("alice-the-user", password)
    assert response.status_code == 400
    assert message in await response.get_data(as_text=True)
    assert await site.auth.users.by_username("alice-the-user") is None


async def test_longest_password_is_accepted(site: Site) -> None:
    longest = secrets.token_urlsafe(800)[:1024]
    browser = site.browser()
    assert (await browser.register("alice", longest)).status_code == 302
    assert (await browser.login("alice", longest)).status_code == 302


async def test_a_long_password_is_judged_by_what_it_is(site: Site) -> None:
    response = await site.browser().register("alice", "p" * 1024)
    assert response.status_code == 400
    assert "Repeats like" in await response.get_data(as_text=True)


@pytest.mark.parametrize("password", [" " * 12, "\t \n" * 4, "\u3000" * 10, "\u00a0" * 9])
async def test_a_password_of_only_spaces_is_refused(site: Site, password: str) -> None:
    response = await site.browser().register("alice", password)
    assert response.status_code == 400
    assert "A password cannot be only spaces." in await response.get_data(as_text=True)
    assert await site.auth.users.by_username("alice") is None


# Composed (NFC) and decomposed (NFD) forms of the same passphrase, as different systems type it.
UNICODE_PASSWORD = "Ünïcödé fjörd bêtween çlïffs"
NFC = unicodedata.normalize("NFC", UNICODE_PASSWORD)
NFD = unicodedata.normalize("NFD", UNICODE_PASSWORD)


async def test_a_password_registered_composed_signs_in_decomposed(site: Site) -> None:
    assert NFC != NFD
    assert (await site.browser().register("alice", NFC)).status_code == 302
    assert (await site.browser().login("alice", NFD)).status_code == 302
    assert (await site.browser().login("alice", NFC)).status_code == 302


async def test_compatibility_forms_are_the_same_password(site: Site) -> None:
    """NFKC: full-width letters and digits, ligatures and the like are their plain forms."""
    plain = "office fjords 2024 quietly"
    fancy = "ｏﬃce fjords ２０２４ quietly"
    assert (await site.browser().register("alice", fancy)).status_code == 302
    assert (await site.browser().login("alice", plain)).status_code == 302


async def test_a_hash_made_before_normalisation_keeps_working_and_is_upgraded(site: Site) -> None:
    """An account whose hash is of the decomposed form, as typed, from before normalisation."""
    auth = site.auth
    legacy = auth.passwords.hasher.hash(NFD)  # the raw form, not normalised
    user = await auth.users.create("alice", legacy)

    assert (await site.browser().login("alice", NFD)).status_code == 302

    upgraded = await auth.users.get(user.id)
    assert upgraded is not None and upgraded.password_hash != legacy
    assert auth.passwords.hasher.verify(upgraded.password_hash, unicodedata.normalize("NFKC", NFD))
    assert upgraded.generation == user.generation  # the same password: no session ends
    assert (await site.browser().login("alice", NFC)).status_code == 302


async def test_registration_attempts_are_throttled_whether_the_name_is_taken_or_not(
    make_site: SiteFactory,
) -> None:
    site = await make_site(AUTH_REGISTER_LIMIT=3)
    browser = site.browser()
    assert (await browser.register("alice")).status_code == 302
    for _ in range(2):
        taken = await browser.register("alice")
        assert taken.status_code == 400
        assert "That username is taken." in await taken.get_data(as_text=True)

    for name in ("alice", "bob"):
        response = await browser.register(name)
        page = await response.get_data(as_text=True)
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) > 0
        assert "taken" not in page
    assert await site.auth.users.by_username("bob") is None


async def test_form_mistakes_do_not_count_against_the_registration_limit(
    make_site: SiteFactory,
) -> None:
    site = await make_site(AUTH_REGISTER_LIMIT=1)
    browser = site.browser()
    for _ in range(3):
        assert (await browser.register("a")).status_code == 400
        assert (await browser.register("alice", confirm="something else")).status_code == 400
    assert (await browser.register("alice")).status_code == 302


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
