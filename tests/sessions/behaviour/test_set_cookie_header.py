"""The Set-Cookie header: attributes, their order, Expires and never Max-Age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sessions import Store
from tests.sessions.behaviour.support import (
    attribute_names,
    browser,
    expires_of,
    only_cookie,
    stored_expires,
)
from tests.sessions.conftest import make_app


async def test_expires_is_now_plus_max_age_and_never_max_age(store: Store) -> None:
    """With max_age 2 s, Expires is the request time + 2 s (cookie and store); no Max-Age attribute."""
    app = make_app(store, cookie={"max_age": 2})
    before = datetime.now(UTC)
    response = await app.test_client(use_cookies=False).get("/count")
    after = datetime.now(UTC)
    header = only_cookie(response)
    assert "Max-Age" not in header
    expires = expires_of(header)
    assert (before + timedelta(seconds=2)).replace(microsecond=0) <= expires
    assert expires <= after + timedelta(seconds=2)
    record = await store.get((await response.get_json())["id"])
    assert record is not None
    assert record["cookie"]["originalMaxAge"] == 2000
    exact = stored_expires(record)
    assert before + timedelta(seconds=2) - timedelta(milliseconds=1) <= exact
    assert exact <= after + timedelta(seconds=2)
    assert expires == exact.replace(microsecond=0)


async def test_set_cookie_attributes_come_in_express_order(store: Store) -> None:
    """Domain, Path, Expires, HttpOnly, Secure, Partitioned, Priority, SameSite, in that order."""
    cookie = {
        "same_site": True,
        "priority": "high",
        "partitioned": True,
        "secure": True,
        "http_only": True,
        "max_age": 60,
        "path": "/",
        "domain": "example.com",
    }
    app = make_app(store, cookie=cookie)
    response = await browser(app).get("/count", scheme="https")
    header = only_cookie(response)
    assert attribute_names(header) == [
        "Domain",
        "Path",
        "Expires",
        "HttpOnly",
        "Secure",
        "Partitioned",
        "Priority",
        "SameSite",
    ]
    assert "; Domain=example.com; Path=/; Expires=" in header
    assert header.endswith("; HttpOnly; Secure; Partitioned; Priority=High; SameSite=Strict")


async def test_browser_session_cookie_has_no_expires(store: Store) -> None:
    """Without max_age the cookie is a browser-session cookie: no Expires, and none stored."""
    app = make_app(store)
    response = await app.test_client(use_cookies=False).get("/count")
    assert attribute_names(only_cookie(response)) == ["Path", "HttpOnly", "SameSite"]
    record = await store.get((await response.get_json())["id"])
    assert record is not None
    assert record["cookie"]["expires"] is None
    assert record["cookie"]["originalMaxAge"] is None
