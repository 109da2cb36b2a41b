"""express-session + connect-redis (Node) and our Quart sessions share one secret, one Redis and
one browser cookie: each side reads, continues, re-signs and destroys the other's sessions."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from .conftest import Browser, StartNode, StartQuart, express_cookie_value

SECRET = "interop test secret"
DAY_S = 86400  # connect-redis's default ttl, used when the cookie has no expires
# Cookie fields express-session's Cookie.toJSON can write; anything else is foreign to Node.
EXPRESS_COOKIE_FIELDS = {
    "originalMaxAge",
    "partitioned",
    "priority",
    "expires",
    "secure",
    "httpOnly",
    "domain",
    "path",
    "sameSite",
}
JS_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

COOKIE_CONFIGS = [
    pytest.param(None, "connect.sid", id="browser-session-cookie"),
    pytest.param(3600, "app.sid", id="one-hour-cookie-named-app.sid"),
]
LIFETIMES = [pytest.param(None, id="browser-session-cookie"), pytest.param(3600, id="one-hour")]


def ms(seconds: int | None) -> int | None:
    return None if seconds is None else seconds * 1000


async def stored(client: aioredis.Redis, prefix: str, sid: str) -> dict[str, Any] | None:
    raw = await client.get(prefix + sid)
    return None if raw is None else json.loads(raw)


@pytest.mark.parametrize(("max_age", "name"), COOKIE_CONFIGS)
async def test_a_session_started_on_node_continues_on_quart_and_back_on_node(
    start_node: StartNode,
    start_quart: StartQuart,
    redis_client: aioredis.Redis,
    key_prefix: str,
    max_age: int | None,
    name: str,
) -> None:
    node = start_node([SECRET], max_age_ms=ms(max_age), name=name)
    quart = await start_quart([SECRET], max_age=max_age, name=name)
    browser = Browser(name)

    first = await browser.visit(node, "GET", "/count")
    sid = first.body["id"]
    assert first.body == {"id": sid, "views": 1}
    assert browser.cookie is not None, "express-session set no cookie for a modified new session"
    assert (await browser.visit(node, "GET", "/count")).body == {"id": sid, "views": 2}

    assert (await browser.visit(quart, "GET", "/count")).body == {"id": sid, "views": 3}
    assert (await browser.visit(node, "GET", "/count")).body == {"id": sid, "views": 4}
    assert (await browser.visit(quart, "GET", "/read")).body == {"id": sid, "data": {"views": 4}}

    record = await stored(redis_client, key_prefix, sid)
    assert record is not None and record["views"] == 4


@pytest.mark.parametrize(("max_age", "name"), COOKIE_CONFIGS)
async def test_a_session_started_on_quart_is_read_and_continued_by_node(
    start_node: StartNode,
    start_quart: StartQuart,
    max_age: int | None,
    name: str,
) -> None:
    node = start_node([SECRET], max_age_ms=ms(max_age), name=name)
    quart = await start_quart([SECRET], max_age=max_age, name=name)
    browser = Browser(name)
    cart = {"items": [1, 2, 3], "note": 'café ☕ "quoted"', "gift": None, "total": 12.5}

    started = await browser.visit(
        quart, "POST", "/set?key=cart&value=" + urllib.parse.quote(json.dumps(cart))
    )
    sid = started.body["id"]
    assert browser.cookie is not None, "Quart set no cookie for a modified new session"

    assert (await browser.visit(node, "GET", "/read")).body == {"id": sid, "data": {"cart": cart}}
    assert (await browser.visit(node, "GET", "/count")).body == {"id": sid, "views": 1}
    assert (await browser.visit(quart, "GET", "/read")).body == {
        "id": sid,
        "data": {"cart": cart, "views": 1},
    }


async def test_both_sides_sign_a_session_id_into_the_same_cookie_value(
    start_node: StartNode,
    start_quart: StartQuart,
) -> None:
    node = start_node([SECRET], max_age_ms=3_600_000)
    quart = await start_quart([SECRET], max_age=3600)

    browser = Browser("connect.sid")
    minted_by_node = await browser.visit(node, "GET", "/count")
    sid = minted_by_node.body["id"]
    node_cookie = minted_by_node.cookie("connect.sid")
    assert node_cookie is not None
    # Pins the reference: express-session's cookie is what the documented format says.
    assert node_cookie.value == express_cookie_value(sid, SECRET)

    # A loaded session with an expiring cookie whose data changes gets its cookie re-sent.
    continued = await browser.visit(quart, "GET", "/count")
    assert continued.body == {"id": sid, "views": 2}
    quart_cookie = continued.cookie("connect.sid")
    assert quart_cookie is not None, "Quart did not re-send the cookie of a modified session"
    assert quart_cookie.value == node_cookie.value
    assert quart_cookie.attributes.get("path") == "/"
    assert "httponly" in quart_cookie.attributes
    expires = quart_cookie.expires
    assert expires is not None, f"no Expires in {quart_cookie}"
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(seconds=5)

    other = Browser("connect.sid")
    minted_by_quart = await other.visit(quart, "GET", "/count")
    quart_sid = minted_by_quart.body["id"]
    assert other.cookie == express_cookie_value(quart_sid, SECRET)
    assert (await other.visit(node, "GET", "/count")).body == {"id": quart_sid, "views": 2}


async def test_a_node_cookie_whose_signature_has_plus_or_slash_verifies_on_quart(
    start_node: StartNode,
    start_quart: StartQuart,
) -> None:
    node = start_node([SECRET])
    quart = await start_quart([SECRET])
    # About 3 signatures in 4 hold a + or a /, which travel as %2B and %2F.
    for _ in range(40):
        browser = Browser("connect.sid")
        first = await browser.visit(node, "GET", "/count")
        assert browser.cookie is not None
        if "%2B" in browser.cookie or "%2F" in browser.cookie:
            break
    else:
        pytest.fail("40 express sessions in a row had no + or / in their signature")

    assert (await browser.visit(quart, "GET", "/count")).body == {
        "id": first.body["id"],
        "views": 2,
    }


async def test_rotation_node_signs_with_new_and_quart_that_knows_only_old_rejects_it(
    start_node: StartNode,
    start_quart: StartQuart,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    node = start_node(["new", "old"], max_age_ms=3_600_000)
    quart = await start_quart(["old"], max_age=3600)
    browser = Browser("connect.sid")

    started = await browser.visit(quart, "GET", "/count")
    sid = started.body["id"]
    assert browser.cookie == express_cookie_value(sid, "old")

    # Node still verifies "old", and re-signs the cookie with its first secret.
    assert (await browser.visit(node, "GET", "/count")).body == {"id": sid, "views": 2}
    assert browser.cookie == express_cookie_value(sid, "new")

    # To a Quart that knows only "old", that cookie is no cookie: a fresh session.
    fresh = await browser.visit(quart, "GET", "/count")
    assert fresh.body["id"] != sid
    assert fresh.body["views"] == 1
    record = await stored(redis_client, key_prefix, sid)
    assert record is not None and record["views"] == 2, "the rejected session was changed"


async def test_rotation_quart_signs_with_new_and_node_that_knows_only_old_rejects_it(
    start_node: StartNode,
    start_quart: StartQuart,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    node = start_node(["old"], max_age_ms=3_600_000)
    quart = await start_quart(["new", "old"], max_age=3600)
    browser = Browser("connect.sid")

    started = await browser.visit(node, "GET", "/count")
    sid = started.body["id"]
    assert browser.cookie == express_cookie_value(sid, "old")

    assert (await browser.visit(quart, "GET", "/count")).body == {"id": sid, "views": 2}
    assert browser.cookie == express_cookie_value(sid, "new"), "Quart did not re-sign with new"

    fresh = await browser.visit(node, "GET", "/count")
    assert fresh.body["id"] != sid
    assert fresh.body["views"] == 1
    record = await stored(redis_client, key_prefix, sid)
    assert record is not None and record["views"] == 2, "the rejected session was changed"


@pytest.mark.parametrize("max_age", LIFETIMES)
async def test_quart_stores_the_record_layout_express_session_writes(
    start_node: StartNode,
    start_quart: StartQuart,
    redis_client: aioredis.Redis,
    key_prefix: str,
    max_age: int | None,
) -> None:
    node = start_node([SECRET], max_age_ms=ms(max_age))
    quart = await start_quart([SECRET], max_age=max_age)

    node_sid = (await Browser("connect.sid").visit(node, "GET", "/count")).body["id"]
    before = datetime.now(UTC)
    quart_sid = (await Browser("connect.sid").visit(quart, "GET", "/count")).body["id"]
    after = datetime.now(UTC)
    node_record = await stored(redis_client, key_prefix, node_sid)
    quart_record = await stored(redis_client, key_prefix, quart_sid)
    assert node_record is not None and quart_record is not None

    # Data keys sit beside "cookie"; anything else would show up as session data on Node.
    assert set(quart_record) == set(node_record) == {"cookie", "views"}
    assert quart_record["views"] == 1
    cookie = quart_record["cookie"]
    assert set(cookie) <= EXPRESS_COOKIE_FIELDS, f"fields express does not write: {cookie}"
    assert cookie["httpOnly"] is True
    assert cookie["path"] == "/"
    if max_age is None:
        assert cookie["originalMaxAge"] is None
        assert node_record["cookie"]["originalMaxAge"] is None
        assert cookie["expires"] is None
    else:
        # express derives originalMaxAge from expires - now, so it can come out a few ms short.
        for written in (cookie, node_record["cookie"]):
            assert isinstance(written["originalMaxAge"], int), written
            assert max_age * 1000 - 1000 < written["originalMaxAge"] <= max_age * 1000, written
        assert JS_ISO_DATE.fullmatch(cookie["expires"]), cookie["expires"]
        assert JS_ISO_DATE.fullmatch(node_record["cookie"]["expires"])
        expires = datetime.fromisoformat(cookie["expires"])
        lifetime = timedelta(seconds=max_age)
        assert before + lifetime - timedelta(seconds=1) <= expires <= after + lifetime


@pytest.mark.parametrize("max_age", LIFETIMES)
async def test_redis_ttl_follows_the_connect_redis_rule_on_both_sides(
    start_node: StartNode,
    start_quart: StartQuart,
    redis_client: aioredis.Redis,
    key_prefix: str,
    max_age: int | None,
) -> None:
    node = start_node([SECRET], max_age_ms=ms(max_age))
    quart = await start_quart([SECRET], max_age=max_age)
    # SET EX ceil((expires - now) / 1000), or the store's ttl when the cookie has no expires.
    expected = DAY_S if max_age is None else max_age

    for writer, toucher in ((node, node), (quart, quart), (node, quart), (quart, node)):
        where = f"written by {writer.label}, touched by {toucher.label}"
        browser = Browser("connect.sid")
        sid = (await browser.visit(writer, "GET", "/count")).body["id"]
        key = key_prefix + sid
        assert expected - 2 <= await redis_client.ttl(key) <= expected, where

        # An unmodified loaded session is touched: the key's expiry goes back to the full
        # lifetime. connect-redis only EXPIREs; ours also moves the stored cookie.expires with it
        # (and nothing else), so that the record says when it really expires.
        await redis_client.expire(key, 100)
        raw = await redis_client.get(key)
        await asyncio.sleep(0.01)
        assert (await browser.visit(toucher, "GET", "/read")).body == {
            "id": sid,
            "data": {"views": 1},
        }
        assert expected - 2 <= await redis_client.ttl(key) <= expected, where
        touched = await redis_client.get(key)
        if toucher is quart and max_age is not None:
            old, new = (json.loads(value)["cookie"]["expires"] for value in (raw, touched))
            assert new > old, where
            assert touched == raw.replace(old.encode(), new.encode()), where
        else:
            assert touched == raw, f"record rewritten on a touch ({where})"


async def test_a_session_destroyed_on_quart_is_gone_for_node(
    start_node: StartNode,
    start_quart: StartQuart,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    node = start_node([SECRET], max_age_ms=3_600_000)
    quart = await start_quart([SECRET], max_age=3600)
    browser = Browser("connect.sid")
    sid = (await browser.visit(node, "GET", "/count")).body["id"]
    stale_tab = browser.header()

    assert (await browser.visit(quart, "POST", "/destroy")).body == {"destroyed": sid}
    assert await redis_client.exists(key_prefix + sid) == 0
    assert browser.cookie is None, "Quart's destroy did not clear the browser cookie"

    # A tab still holding the old cookie gets a new session on Node, never the old id back.
    read = await node.send("GET", "/read", stale_tab)
    assert read.body["id"] != sid
    assert read.body["data"] == {}
    counted = await node.send("GET", "/count", stale_tab)
    assert counted.body["id"] != sid
    assert counted.body["views"] == 1
    assert await redis_client.exists(key_prefix + sid) == 0


async def test_a_session_destroyed_on_node_is_gone_for_quart(
    start_node: StartNode,
    start_quart: StartQuart,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    node = start_node([SECRET], max_age_ms=3_600_000)
    quart = await start_quart([SECRET], max_age=3600)
    browser = Browser("connect.sid")
    sid = (await browser.visit(quart, "GET", "/count")).body["id"]

    assert (await browser.visit(node, "POST", "/destroy")).body == {"destroyed": sid}
    assert await redis_client.exists(key_prefix + sid) == 0
    # express-session's destroy leaves the browser cookie in place.
    assert browser.cookie == express_cookie_value(sid, SECRET)

    read = await browser.visit(quart, "GET", "/read")
    assert read.body["id"] != sid
    assert read.body["data"] == {}
    counted = await browser.visit(quart, "GET", "/count")
    assert counted.body["id"] != sid
    assert counted.body["views"] == 1
    assert await redis_client.exists(key_prefix + sid) == 0


async def test_an_owned_session_keeps_its_owner_through_node_and_signs_out_everywhere(
    start_node: StartNode, start_quart: StartQuart
) -> None:
    node = start_node([SECRET], max_age_ms=3_600_000)
    quart = await start_quart([SECRET], max_age=3600)
    laptop, phone = Browser("connect.sid"), Browser("connect.sid")

    laptop_sid = (await laptop.visit(quart, "POST", "/own?owner=user:7")).body["id"]
    # Node rewrites the whole record when it saves; the owner must survive that.
    assert (await laptop.visit(node, "GET", "/count")).body == {"id": laptop_sid, "views": 1}
    assert (await laptop.visit(quart, "GET", "/owner")).body == {
        "id": laptop_sid,
        "owner": "user:7",
        "data": {"views": 1},
    }
    listed = (await laptop.visit(quart, "GET", "/owned?owner=user:7")).body["sessions"]
    assert listed == {laptop_sid: {"views": 1}}

    phone_sid = (await phone.visit(quart, "POST", "/own?owner=user:7")).body["id"]
    assert (await phone.visit(quart, "POST", "/sign-out-others")).body == {"signed_out": 1}

    # The laptop, now on the Node app, is signed out; the phone is still signed in.
    after = await laptop.visit(node, "GET", "/read")
    assert after.body["id"] != laptop_sid
    assert after.body["data"] == {}
    assert (await phone.visit(quart, "GET", "/owner")).body["owner"] == "user:7"
    listed = (await phone.visit(quart, "GET", "/owned?owner=user:7")).body["sessions"]
    assert list(listed) == [phone_sid]
