"""Fuzzed auth forms: never a 5xx, and nothing stored for a visitor without a session."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart.testing import QuartClient
from quart.wrappers import Response

from auth import owner_key
from auth.csrf import CSRF_HEADER

from .support import COOKIE, PASSWORD, Browser, Site, SiteFactory

KIB = 1024

# Every POST route of the blueprint and the form fields its view reads.
ROUTES: dict[str, list[str]] = {
    "/register": ["username", "password", "confirm"],
    "/login": ["username", "password", "remember", "next"],
    "/logout": [],
    "/account/password": ["current_password", "new_password"],
    "/account/sessions/revoke": ["session"],
    "/account/sessions/revoke-others": [],
}
STORE_WRITES = ("write", "apply", "renew", "delete", "index_add", "index_remove")
# Throttling would answer most fuzzed requests with a 429 before the view reads its fields.
UNTHROTTLED = {
    "AUTH_LOGIN_LIMIT": 10**6,
    "AUTH_ADDRESS_LIMIT": 10**6,
    "AUTH_REGISTER_LIMIT": 10**6,
}


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


TRICKY = [
    "",
    " ",
    "\x00",
    "a\x00b" * 8,
    "on",
    "true",
    "alice",
    " ALICE ",
    PASSWORD,
    PASSWORD.upper(),
    "/account",
    "//evil.example",
    "/\\evil.example",
    "/\t/evil.example",
    "https://evil.example/",
    "/%0d%0aSet-Cookie:%20x=1",
    "/\u2028",
    "%ff%fe",
    "\ud800",
    "a\udfffb",
    "\u202e\u0000\ufeff",
    "𝔲𝔫𝔦𝔠𝔬𝔡𝔢",
    "s%3Aforged.signature",
]
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)
# Repeated characters at the lengths where a limit starts: usernames, FIELD_LIMIT and the
# password limit, the form memory limit, MAX_CONTENT_LENGTH.
repeated = st.builds(
    str.__mul__,
    st.sampled_from(["x", "é", "\x00", "😀"]),
    st.sampled_from([32, 33, 1024, 1025, 16 * KIB + 1, 64 * KIB, 80 * KIB]),
)
values = st.one_of(
    st.text(max_size=80),
    st.sampled_from(TRICKY),
    st.binary(max_size=80).map(lambda raw: raw.decode("latin-1")),
    repeated,
)
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=no-such-charset",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=fuzz",
    "application/json",
    "text/plain",
    "application/octet-stream",
]


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def multipart(pairs: list[tuple[str, str]], boundary: str, closed: bool) -> bytes:
    parts = [
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (encode(boundary), encode(name), encode(value))
        for name, value in pairs
    ]
    return b"".join(parts) + (b"--%s--\r\n" % encode(boundary) if closed else b"")


@dataclass
class Fuzzed:
    """One POST: a route, its raw body and the headers that describe it."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    async def send(self, client: QuartClient) -> Response:
        return await client.post(self.path, data=self.body, headers=self.headers)


# Mostly forms, so that fuzzed fields reach the views; sometimes no form at all.
KINDS = ["urlencoded", "urlencoded", "multipart", "multipart", "json", "raw"]


@st.composite
def posts(
    draw: st.DrawFn, path: str | None = None, known: list[str] | None = None, csrf: str = ""
) -> Fuzzed:
    """A POST to ``path`` (any auth route if None): its fields, some left out, each value any
    text (or half the time one of ``known``), plus duplicated and unknown fields, in any
    framing. The X-CSRF-Token header is ``csrf`` if given, else any text or absent."""
    path = path or draw(st.sampled_from(sorted(ROUTES)))
    names = [*ROUTES[path], "csrf_token"]
    texts = values
    if known:
        texts = st.booleans().flatmap(lambda pick: st.sampled_from(known) if pick else values)
    left_out = draw(st.sets(st.sampled_from(names)))
    pairs = [(name, draw(texts)) for name in names if name not in left_out]
    more = st.tuples(st.one_of(st.sampled_from(names), st.text(max_size=12)), texts)
    pairs = draw(st.permutations([*pairs, *draw(st.lists(more, max_size=3))]))

    kind = draw(st.sampled_from(KINDS))
    if kind == "urlencoded":
        body = urlencode(pairs, errors="surrogatepass").encode()
        content_type: str | None = "application/x-www-form-urlencoded"
    elif kind == "multipart":
        boundary = draw(st.sampled_from(["fuzz", "x" * 70, "a b", "\u00e9"]))
        body = multipart(pairs, boundary, closed=draw(st.booleans()))
        content_type = f"multipart/form-data; boundary={boundary}"
    elif kind == "json":
        body = json.dumps(dict(pairs)).encode()
        content_type = "application/json"
    else:
        body = draw(st.binary(max_size=300))
        content_type = None
    if draw(st.integers(0, 3)) == 0:
        content_type = draw(st.one_of(st.none(), st.sampled_from(CONTENT_TYPES), header_text))

    headers = {} if content_type is None else {"Content-Type": content_type}
    if draw(st.booleans()):
        headers["Content-Length"] = str(len(body))
    if csrf:
        headers[CSRF_HEADER] = csrf
    elif (token := draw(st.one_of(st.none(), header_text))) is not None:
        headers[CSRF_HEADER] = token
    return Fuzzed(path, body, headers)


@contextmanager
def observed_writes(store: Any) -> Iterator[list[str]]:
    """The names of the store's write methods called meanwhile (the real store still runs them)."""
    calls: list[str] = []

    def recording(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def record(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return await method(*args, **kwargs)

        return record

    for name in STORE_WRITES:
        setattr(store, name, recording(name, getattr(store, name)))
    try:
        yield calls
    finally:
        for name in STORE_WRITES:
            delattr(store, name)


def sets_a_session_cookie(response: Response) -> bool:
    return any(value.startswith(f"{COOKIE}=") for value in response.headers.getlist("Set-Cookie"))


def assert_no_server_error(response: Response, request: Fuzzed) -> None:
    assert response.status_code < 500, (response.status_code, request)


def handles_on(page: str) -> list[str]:
    return re.findall(r'name="session" value="([^"]+)"', page)


@pytest.fixture
async def site(make_site: SiteFactory) -> Site:
    """One site for every example of a test, with alice signed in somewhere."""
    site = await make_site(**UNTHROTTLED)
    await site.user("alice")
    return site


@fuzz(100)
@given(request=posts())
async def test_a_visitor_without_a_session_is_refused_and_nothing_is_stored(
    site: Site, request: Fuzzed
) -> None:
    client = QuartClient(site.app, use_cookies=False)
    before = await site.store.all()

    with observed_writes(site.store) as writes:
        response = await request.send(client)

    assert response.status_code in (400, 413), (response.status_code, request)
    assert writes == []
    assert await site.store.all() == before
    assert not sets_a_session_cookie(response)


@dataclass
class SignedIn:
    """One user signed in on two browsers; a request that ended that is undone before the next."""

    site: Site
    username: str = field(default_factory=lambda: f"fuzz{secrets.token_hex(4)}")
    browser: Browser | None = None

    async def account_page(self) -> tuple[Browser, str]:
        """The first browser and its account page, which lists both sessions."""
        if self.browser is not None:
            page = await self.browser.text("/account")
            if self.shows_both_sessions(page):
                return self.browser, page
        auth = self.site.auth
        user = await auth.users.by_username(self.username)
        if user is None:
            assert (await self.site.browser().register(self.username)).status_code == 302
            user = await auth.users.by_username(self.username)
            assert user is not None
        elif not await auth.passwords.verify(user.password_hash, PASSWORD):
            await auth.users.set_password_hash(user.id, await auth.passwords.hash(PASSWORD))
        await self.site.store.destroy_owned(owner_key(user.id))
        self.browser = self.site.browser()
        for browser in (self.browser, self.site.browser()):
            assert (await browser.login(self.username)).status_code == 302
        page = await self.browser.text("/account")
        assert self.shows_both_sessions(page)
        return self.browser, page

    def shows_both_sessions(self, page: str) -> bool:
        return f'id="account-title">{self.username}<' in page and len(handles_on(page)) == 2


@fuzz(50)
@pytest.mark.parametrize("path", ["/login", "/register"])
@given(data=st.data())
async def test_an_anonymous_visitor_with_a_valid_token_gets_no_server_error_nor_new_sessions(
    site: Site, path: str, data: st.DataObject
) -> None:
    browser = site.browser()
    known = ["alice", f"new{secrets.token_hex(4)}", PASSWORD]
    request = data.draw(posts(path, known, csrf=await browser.csrf_token()))
    before = await site.store.ids()

    response = await request.send(browser.client)

    assert_no_server_error(response, request)
    if response.status_code >= 400:
        assert await site.store.ids() == before


@pytest.fixture
def signed_in(site: Site) -> SignedIn:
    return SignedIn(site)


@fuzz(30)
@pytest.mark.parametrize("path", sorted(ROUTES))
@given(data=st.data())
async def test_a_signed_in_user_with_a_valid_token_gets_no_server_error(
    signed_in: SignedIn, path: str, data: st.DataObject
) -> None:
    browser, page = await signed_in.account_page()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    known = [*handles_on(page), signed_in.username, PASSWORD]
    request = data.draw(posts(path, known, csrf=token.group(1)))

    response = await request.send(browser.client)

    assert_no_server_error(response, request)


@fuzz(100)
@given(
    path=st.sampled_from(["/login", "/register", "/account"]),
    query=st.lists(
        st.tuples(st.one_of(st.sampled_from(["username", "next"]), st.text(max_size=12)), values),
        max_size=4,
    ),
)
async def test_any_query_string_on_an_auth_page_gets_no_server_error(
    site: Site, path: str, query: list[tuple[str, str]]
) -> None:
    url = f"{path}?{urlencode(query, errors='surrogatepass')}"

    response = await QuartClient(site.app, use_cookies=False).get(url)

    assert response.status_code < 500, (response.status_code, url[:300])
