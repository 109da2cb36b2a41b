"""The cookie's path scope, Secure and SameSite, and who decides that a request is secure."""

from __future__ import annotations

from typing import Any

import pytest
from quart import session

from sessions import Store
from tests.sessions.behaviour.support import (
    attribute_names,
    browser,
    only_cookie,
)
from tests.sessions.conftest import make_app, set_cookies


async def test_cookie_path_scopes_sessions_on_segment_boundaries(store: Store) -> None:
    """path /foo/bar: /foo/bar and /foo/bar/baz have sessions; /foo and /foo/barbaz have none."""
    app = make_app(store, cookie={"path": "/foo/bar"})

    @app.get("/<path:rest>")
    async def anywhere(rest: str) -> str:
        try:
            session["seen"] = rest
        except RuntimeError:
            return "no session"
        return "session"

    client = app.test_client(use_cookies=False)
    for path in ("/", "/foo", "/foo/barbaz", "/foo/ba"):
        response = await client.get(path)
        assert response.status_code == 200
        assert set_cookies(response) == [], path
        if path != "/":
            assert await response.get_data() == b"no session", path
    assert await store.ids() == []
    for path in ("/foo/bar", "/foo/bar/", "/foo/bar/baz"):
        response = await client.get(path)
        assert await response.get_data() == b"session", path
        assert "; Path=/foo/bar;" in only_cookie(response)
    assert len(await store.ids()) == 3


async def test_secure_cookie_over_http_is_not_sent_and_a_new_session_is_not_stored(
    store: Store,
) -> None:
    """secure True over HTTP: no Set-Cookie, and (our deviation) no orphan record for the new session."""
    app = make_app(store, cookie={"secure": True})
    response = await app.test_client(use_cookies=False).get("/count")
    assert response.status_code == 200
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_secure_cookie_over_http_still_saves_a_loaded_session(store: Store) -> None:
    """A session made over HTTPS and changed over HTTP is saved, though its cookie is not re-sent."""
    app = make_app(store, cookie={"secure": True, "max_age": 60})
    client = browser(app)
    created = await client.get("/count", scheme="https")
    assert "; Secure" in only_cookie(created)
    sid = (await created.get_json())["id"]
    response = await client.get("/count")
    assert set_cookies(response) == []
    record = await store.get(sid)
    assert record is not None
    assert record["views"] == 2


@pytest.mark.parametrize(
    ("forwarded", "secure"),
    [
        ("https", True),
        ("https,http", True),
        (" HTTPS ", True),
        ("http,https", False),
        ("http", False),
        (None, False),
    ],
)
async def test_proxy_true_trusts_the_first_x_forwarded_proto(
    store: Store, forwarded: str | None, secure: bool
) -> None:
    """proxy True: the request is secure when the first X-Forwarded-Proto value is https."""
    app = make_app(store, proxy=True, cookie={"secure": True})
    headers = {} if forwarded is None else {"X-Forwarded-Proto": forwarded}
    response = await app.test_client(use_cookies=False).get("/count", headers=headers)
    assert (set_cookies(response) != []) is secure
    assert (len(await store.ids()) == 1) is secure


@pytest.mark.parametrize("proxy", [False, None], ids=["false", "unset"])
async def test_without_proxy_trust_only_the_request_scheme_counts(
    store: Store, proxy: bool | None
) -> None:
    """proxy False or unset: X-Forwarded-Proto is ignored; an HTTPS request is secure."""
    options: dict[str, Any] = {"cookie": {"secure": True}}
    if proxy is not None:
        options["proxy"] = proxy
    app = make_app(store, **options)
    client = app.test_client(use_cookies=False)
    forwarded = await client.get("/count", headers={"X-Forwarded-Proto": "https"})
    assert set_cookies(forwarded) == []
    direct = await client.get("/count", scheme="https")
    assert "; Secure" in only_cookie(direct)


async def test_secure_auto_marks_the_cookie_secure_only_on_https(store: Store) -> None:
    """secure 'auto' (the default): Secure on HTTPS, and the cookie is still sent over HTTP."""
    app = make_app(store)
    client = app.test_client(use_cookies=False)
    plain = only_cookie(await client.get("/count"))
    assert "Secure" not in attribute_names(plain)
    tls = only_cookie(await client.get("/count", scheme="https"))
    assert "Secure" in attribute_names(tls)


async def test_secure_auto_behind_a_trusted_proxy_follows_x_forwarded_proto(store: Store) -> None:
    """secure 'auto' with proxy True: X-Forwarded-Proto https makes the cookie Secure."""
    app = make_app(store, proxy=True)
    response = await app.test_client(use_cookies=False).get(
        "/count", headers={"X-Forwarded-Proto": "https"}
    )
    assert "Secure" in attribute_names(only_cookie(response))


@pytest.mark.parametrize(
    ("scheme", "expected_tail"),
    [("https", "; Secure; SameSite=None"), ("http", "; HttpOnly; SameSite=Lax")],
)
async def test_same_site_auto_is_none_on_https_and_lax_on_http(
    store: Store, scheme: str, expected_tail: str
) -> None:
    """same_site 'auto' with secure 'auto': SameSite=None (and Secure) on HTTPS, Lax on HTTP."""
    app = make_app(store, cookie={"same_site": "auto"})
    response = await app.test_client(use_cookies=False).get("/count", scheme=scheme)
    assert only_cookie(response).endswith(expected_tail)


async def test_auto_values_are_resolved_once_and_stored(store: Store) -> None:
    """'auto' is resolved when the session is made and stored resolved, never as 'auto'."""
    app = make_app(store, cookie={"same_site": "auto"})
    response = await app.test_client(use_cookies=False).get("/count", scheme="https")
    record = await store.get((await response.get_json())["id"])
    assert record is not None
    assert record["cookie"]["secure"] is True
    assert record["cookie"]["sameSite"] == "none"


@pytest.mark.parametrize(
    ("scheme", "expected_tail"),
    [("https", "; Secure; SameSite=None"), ("http", "; HttpOnly; SameSite=Lax")],
)
async def test_callable_cookie_options_resolve_auto_too(
    store: Store, scheme: str, expected_tail: str
) -> None:
    """Unlike express 1.19, a cookie function's 'auto' values are resolved and the cookie is sent."""
    app = make_app(store, cookie=lambda _: {"secure": "auto", "same_site": "auto"})
    response = await app.test_client(use_cookies=False).get("/count", scheme=scheme)
    assert only_cookie(response).endswith(expected_tail)


async def test_callable_cookie_options_are_computed_per_request(store: Store) -> None:
    """A cookie function is called with each new session's request."""
    app = make_app(store, cookie=lambda req: {"priority": "high"} if req.args.get("vip") else {})
    client = app.test_client(use_cookies=False)
    assert "; Priority=High;" in only_cookie(await client.get("/count?vip=1"))
    assert "Priority" not in only_cookie(await client.get("/count"))
