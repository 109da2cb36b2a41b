"""Cases from express-session's own test suite that an earlier version got wrong, on every store kind.

Each test names the express behaviour it follows, or the deviation it documents (README).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypercorn.middleware import ProxyFixMiddleware
from quart import jsonify, session

from sessions import Store
from sessions.expiry import iso_from_ms, now_ms
from sessions.signing import encode_cookie_value
from tests.sessions.conftest import SECRET, Browser, cookie_value, make_app, set_cookies

# ---------------------------------------------------------------- (a) a mounted app


async def test_a_mounted_apps_cookie_path_is_matched_against_the_full_path(store: Store) -> None:
    """express: "should set cookie for the path matched against the original URL when mounted".

    Mounted under /foo with cookie path /foo/bar: /foo/bar has a session, /foo/foo/bar does not.
    """
    app = make_app(store, cookie={"path": "/foo/bar"})

    @app.get("/bar")
    async def bar() -> Any:
        session["here"] = "bar"
        return jsonify(ok=True)

    @app.get("/foo/bar")
    async def foo_bar() -> Any:
        session["here"] = "foo/bar"  # raises: there is no session here
        return jsonify(ok=True)

    client = app.test_client(use_cookies=False)
    inside = await client.get("/foo/bar", root_path="/foo")
    assert inside.status_code == 200
    assert "; Path=/foo/bar" in set_cookies(inside)[0]
    outside = await client.get("/foo/foo/bar", root_path="/foo")
    assert set_cookies(outside) == []
    assert outside.status_code == 500  # the app tried to write a session that is out of scope


# ---------------------------------------------------------------- (b) the store is down


async def test_an_untouched_page_renders_without_a_cookie_while_the_store_is_down(
    unreachable_store: Store,
) -> None:
    """express: with the store disconnected there is no session, and the page still renders.

    With save_uninitialized the new session would be stored; the store being down costs the
    visitor nothing on a page that does not use the session.
    """
    app = make_app(unreachable_store, save_uninitialized=True)
    client = app.test_client(use_cookies=False)

    cookieless = await client.get("/")
    assert cookieless.status_code == 200
    assert set_cookies(cookieless) == []

    cookie = encode_cookie_value("someone", SECRET.encode())
    returning = await client.get("/", headers={"Cookie": f"connect.sid={cookie}"})
    assert returning.status_code == 200
    assert set_cookies(returning) == []

    counted = await client.get("/count")
    assert counted.status_code == 503
    assert counted.headers["Retry-After"]


# ---------------------------------------------------------------- (c) expired, still stored


async def test_a_session_past_its_cookie_expiry_is_a_new_session_even_if_still_stored(
    store: Store,
) -> None:
    """express: "should generate new session when session expired". TTLs are whole seconds in
    some stores, so the record can outlive its cookie by up to a second: the cookie wins."""
    app = make_app(store)
    expired = {
        "cookie": {"originalMaxAge": 1000, "expires": iso_from_ms(now_ms() - 1), "path": "/"},
        "views": 7,
    }
    await store.write("expired", json.dumps(expired).encode(), now_ms() + 5_000)
    cookie = encode_cookie_value("expired", SECRET.encode())

    response = await app.test_client(use_cookies=False).get(
        "/count", headers={"Cookie": f"connect.sid={cookie}"}
    )

    body = await response.get_json()
    assert body["views"] == 1 and body["id"] != "expired"


async def test_a_touch_keeps_the_stored_expiry_in_step_and_the_handler_never_sees_it_negative(
    store: Store,
) -> None:
    """express's MemoryStore and session-file-store rewrite the stored cookie.expires on touch."""
    app = make_app(store, cookie={"max_age": 1.5})

    @app.get("/left")
    async def left() -> Any:
        return jsonify(max_age=session.cookie.max_age, id=session.id)

    browser = Browser(app.test_client(use_cookies=False))
    sid = (await (await browser.get("/count")).get_json())["id"]
    for _ in range(4):  # 2 s in all: longer than max_age, but never idle for that long
        await asyncio.sleep(0.5)
        body = await (await browser.get("/left")).get_json()
        assert body["id"] == sid
        assert 1.4 < body["max_age"] <= 1.5
        record = await store.get(sid)
        assert record is not None
        assert record["cookie"]["expires"] >= iso_from_ms(now_ms() + 1_400)
    assert (await store.all())[sid]["cookie"]["expires"] >= iso_from_ms(now_ms() + 1_000)


# ---------------------------------------------------------------- (d) proxy=False


async def test_proxy_false_ignores_a_scheme_a_proxy_middleware_derived(store: Store) -> None:
    """express: proxy false ignores req.secure that trust proxy derived from X-Forwarded-Proto.

    Here hypercorn's ProxyFixMiddleware turns X-Forwarded-Proto into the request's scheme; with
    proxy=False the session still counts the request as plain HTTP (no Secure attribute), while
    the default (proxy unset: the framework decides) follows the middleware.
    """
    for proxy, secure in ((False, False), (None, True)):
        options: dict[str, Any] = {"cookie": {"secure": "auto"}}
        if proxy is not None:
            options["proxy"] = proxy
        app = make_app(store, **options)
        app.asgi_app = ProxyFixMiddleware(app.asgi_app, mode="legacy", trusted_hops=1)  # type: ignore[method-assign]
        response = await app.test_client(use_cookies=False).get(
            "/count", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.0.0.1"}
        )
        header = set_cookies(response)[0]
        assert ("; Secure" in header) is secure, (proxy, header)
        assert cookie_value(response)


async def test_proxy_false_still_trusts_tls_the_server_itself_terminated(store: Store) -> None:
    app = make_app(store, proxy=False, cookie={"secure": True})
    response = await app.test_client(use_cookies=False).get("/count", scheme="https")
    assert "; Secure" in set_cookies(response)[0]
