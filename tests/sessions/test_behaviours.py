"""express-session's black-box behaviours (reference §10) through Quart, on every store."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
import redis.asyncio as aioredis
from quart import Quart, jsonify, session

from sessions import FileStore, PostgresStore, RedisStore, SessionNotFound, Sessions, Store
from sessions.expiry import now_ms

from .conftest import SECRET, Browser, cookie_value, make_app, set_cookies, sid_of

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}")
ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
EXPRESS_VECTORS = [
    ("apple", "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"),
    ("%", "s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g"),
    ("/foo", "s%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ"),
]


# ---------------------------------------------------------------- helpers


def signed(sid: str, secret: str = SECRET) -> str:
    """A cookie value as express-session writes it, computed independently of sessions/."""
    digest = hmac.new(secret.encode(), sid.encode(), hashlib.sha256).digest()
    mac = base64.b64encode(digest).decode().rstrip("=")
    return quote(f"s:{sid}.{mac}", safe="-_.!~*'()")


def browser(app: Quart) -> Browser:
    return Browser(app.test_client(use_cookies=False))


def only_cookie(response: Any) -> str:
    """The one session Set-Cookie header of a response."""
    headers = set_cookies(response)
    assert len(headers) == 1, headers
    return headers[0]


def attribute_names(header: str) -> list[str]:
    return [part.split("=", 1)[0] for part in header.split("; ")[1:]]


def expires_of(header: str) -> datetime:
    match = re.search(r"; Expires=([^;]+)", header)
    assert match, header
    return parsedate_to_datetime(match.group(1))


def stored_expires(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["cookie"]["expires"])


async def raw_of(store: Store, sid: str) -> bytes | None:
    """The stored bytes, read without sliding the record's expiry."""
    return (await store.load_many([sid]))[0]


async def remaining_of(store: Store, sid: str) -> float:
    deadline = (await store.deadlines([sid]))[0]
    assert deadline is not None
    return (deadline - now_ms()) / 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def warnings_from_sessions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "sessions" and record.levelno == logging.WARNING
    ]


# ---------------------------------------------------------------- §10.1-3: ids and signed values


@pytest.mark.parametrize(("sid", "value"), EXPRESS_VECTORS)
async def test_genid_vectors_give_express_exact_set_cookie(
    store: Store, sid: str, value: str
) -> None:
    """genid apple / % / /foo with secret 'keyboard cat' give express's exact Set-Cookie."""
    app = make_app(store, genid=lambda _: sid, save_uninitialized=True, cookie={"same_site": False})
    response = await app.test_client(use_cookies=False).get("/")
    assert set_cookies(response) == [f"connect.sid={value}; Path=/; HttpOnly"]
    assert await store.ids() == [sid]


async def test_default_cookie_is_express_header_plus_samesite_lax(store: Store) -> None:
    """Our default cookie options add SameSite=Lax (and nothing else) to express's header."""
    app = make_app(store, genid=lambda _: "apple", save_uninitialized=True)
    response = await app.test_client(use_cookies=False).get("/")
    assert set_cookies(response) == [
        f"connect.sid={EXPRESS_VECTORS[0][1]}; Path=/; HttpOnly; SameSite=Lax"
    ]


async def test_default_ids_are_32_url_safe_characters_and_unique(store: Store) -> None:
    """Each new session gets its own 32-character [A-Za-z0-9_-] id, which is what gets stored."""
    app = make_app(store)
    client = app.test_client(use_cookies=False)
    ids = []
    for _ in range(12):
        response = await client.get("/count")
        sid = (await response.get_json())["id"]
        assert ID_PATTERN.fullmatch(sid), sid
        assert sid_of(cookie_value(response) or "") == sid
        ids.append(sid)
    assert len(set(ids)) == len(ids)
    assert await store.ids() == sorted(ids)


async def test_genid_returning_a_non_string_is_a_type_error(store: Store) -> None:
    """A genid that returns a non-str raises TypeError when the session is made; nothing is sent or stored."""
    app = make_app(store, genid=lambda _: 42)
    with pytest.raises(TypeError, match="genid"):
        async with app.test_request_context("/count"):
            pass
    response = await app.test_client(use_cookies=False).get("/count")
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_genid_that_is_not_callable_is_rejected_at_startup(store: Store) -> None:
    """genid must be a function: anything else is a TypeError when the extension is set up."""
    with pytest.raises(TypeError):
        make_app(store, genid="apple")


# ---------------------------------------------------------------- §10.4-5: the Set-Cookie header


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


# ---------------------------------------------------------------- §10.6-13: when to save and send


async def test_untouched_new_session_sets_no_cookie_and_writes_nothing(store: Store) -> None:
    """A new session the handler never changes sends no cookie and leaves the store empty."""
    app = make_app(store)
    response = await app.test_client(use_cookies=False).get("/")
    assert response.status_code == 200
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_read_only_new_session_sets_no_cookie_and_writes_nothing(store: Store) -> None:
    """Reading a new session (even its id) is not a modification."""
    app = make_app(store)
    response = await app.test_client(use_cookies=False).get("/read")
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_new_session_given_data_sets_cookie_and_stores_one_record(store: Store) -> None:
    """Setting a key on a new session sends its cookie and stores exactly that one record."""
    app = make_app(store)
    response = await app.test_client(use_cookies=False).get("/count")
    sid = (await response.get_json())["id"]
    assert sid_of(cookie_value(response) or "") == sid
    assert await store.ids() == [sid]
    record = await store.get(sid)
    assert record is not None
    assert {k: v for k, v in record.items() if k != "cookie"} == {"views": 1}


async def test_save_uninitialized_stores_and_sends_an_untouched_new_session(store: Store) -> None:
    """With save_uninitialized, even an untouched new session gets a cookie and an empty record."""
    app = make_app(store, save_uninitialized=True)
    response = await app.test_client(use_cookies=False).get("/")
    value = cookie_value(response)
    assert value
    sid = sid_of(value)
    assert await store.ids() == [sid]
    record = await store.get(sid)
    assert record is not None
    assert list(record) == ["cookie"]


async def test_save_uninitialized_sends_the_cookie_only_once(store: Store) -> None:
    """With save_uninitialized and no max_age, the loaded session's cookie is not re-sent."""
    app = make_app(store, save_uninitialized=True)
    client = browser(app)
    assert set_cookies(await client.get("/")) != []
    assert set_cookies(await client.get("/")) == []
    assert len(await store.ids()) == 1


async def test_unchanged_loaded_session_sends_no_cookie_and_only_its_expiry_slides(
    store: Store,
) -> None:
    """resave False: an unchanged loaded session gets no cookie; of its record only cookie.expires moves on."""
    app = make_app(store, cookie={"max_age": 60})
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    before = await store.get(sid)
    await asyncio.sleep(0.05)
    response = await client.get("/read")
    after = await store.get(sid)
    assert (await response.get_json())["data"] == {"views": 1}
    assert set_cookies(response) == []
    assert before is not None and after is not None
    assert stored_expires(after) - stored_expires(before) >= timedelta(milliseconds=50)
    after["cookie"]["expires"] = before["cookie"]["expires"]
    assert after == before
    assert 59.9 < await remaining_of(store, sid) <= 60


async def test_resave_rewrites_an_unchanged_loaded_session(store: Store) -> None:
    """resave True: an unchanged loaded session is written again (its stored expiry moves on)."""
    app = make_app(store, resave=True, cookie={"max_age": 60})
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    first = await store.get(sid)
    await asyncio.sleep(0.02)
    response = await client.get("/read")
    assert set_cookies(response) == []
    second = await store.get(sid)
    assert first is not None and second is not None
    assert stored_expires(second) > stored_expires(first)
    assert second["views"] == 1


async def test_changed_loaded_session_with_max_age_resends_same_id_with_later_expires(
    store: Store,
) -> None:
    """A loaded session with max_age whose data changes gets Set-Cookie again: same id, later Expires."""
    app = make_app(store, cookie={"max_age": 60})
    client = browser(app)
    first = await client.get("/count")
    first_value = cookie_value(first)
    await asyncio.sleep(1.05)
    second = await client.get("/count")
    assert cookie_value(second) == first_value
    assert expires_of(only_cookie(second)) > expires_of(only_cookie(first))
    assert (await second.get_json())["views"] == 2


async def test_changed_loaded_browser_session_sends_no_cookie_but_is_stored(store: Store) -> None:
    """Without max_age a loaded session's change is stored, but its cookie is not re-sent."""
    app = make_app(store)
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    response = await client.get("/count")
    assert set_cookies(response) == []
    record = await store.get(sid)
    assert record is not None
    assert record["views"] == 2


async def test_rolling_sends_the_cookie_on_every_response_of_a_loaded_session(store: Store) -> None:
    """rolling: even unchanged, a loaded browser-session cookie is re-sent each time, same id."""
    app = make_app(store, rolling=True)
    client = browser(app)
    value = cookie_value(await client.get("/count"))
    for _ in range(2):
        response = await client.get("/read")
        assert cookie_value(response) == value


async def test_rolling_advances_expires_on_unchanged_requests(store: Store) -> None:
    """rolling with max_age: an unchanged request re-sends the cookie with a fresh Expires and stored expiry."""
    app = make_app(store, rolling=True, cookie={"max_age": 60})
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    await asyncio.sleep(1.1)
    before = datetime.now(UTC)
    response = await client.get("/read")
    sent = expires_of(only_cookie(response))
    assert sent >= (before + timedelta(seconds=60)).replace(microsecond=0)
    record = await store.get(sid)
    assert record is not None
    assert stored_expires(record).replace(microsecond=0) == sent  # what the browser and store hold agree
    assert 59.9 < await remaining_of(store, sid) <= 60


async def test_rolling_without_save_uninitialized_ignores_an_untouched_new_session(
    store: Store,
) -> None:
    """rolling does not make an untouched new session send a cookie or be stored."""
    app = make_app(store, rolling=True)
    response = await app.test_client(use_cookies=False).get("/")
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_changing_only_max_age_of_a_browser_session_sends_no_cookie(store: Store) -> None:
    """Changing only cookie.max_age is not a data change: express sends no cookie for it."""
    app = make_app(store)

    @app.get("/only-max-age")
    async def only_max_age() -> Any:
        session.cookie.max_age = 30
        return "ok"

    client = browser(app)
    await client.get("/count")
    response = await client.get("/only-max-age")
    assert set_cookies(response) == []


async def test_nested_change_is_detected_and_stored(store: Store) -> None:
    """Mutating a nested value in place counts as a change and is stored."""
    app = make_app(store)
    client = browser(app)
    first = await client.post("/nested")
    sid = sid_of(cookie_value(first) or "")
    second = await client.post("/nested")
    assert (await second.get_json())["cart"] == {"items": [0, 1]}
    record = await store.get(sid)
    assert record is not None
    assert record["cart"] == {"items": [0, 1]}


async def test_nested_key_named_cookie_counts_as_a_change(store: Store) -> None:
    """Only the top-level cookie is left out of change detection: a nested 'cookie' key is data."""
    app = make_app(store)
    client = browser(app)
    sid = sid_of(cookie_value(await client.get("/count")) or "")
    await client.post("/set", json={"prefs": {"cookie": "chocolate"}})
    record = await store.get(sid)
    assert record is not None
    assert record["prefs"] == {"cookie": "chocolate"}
    assert isinstance(record["cookie"], dict)


# ---------------------------------------------------------------- §10.14-17: which cookies load


async def test_tampered_signature_is_no_cookie_and_gets_a_new_id(store: Store) -> None:
    """A cookie whose signature does not verify is ignored: new id, the old record unchanged."""
    app = make_app(store)
    client = browser(app)
    old = (await (await client.get("/count")).get_json())["id"]
    before = await raw_of(store, old)
    value = client.cookie or ""
    client.cookie = value[:-1] + ("A" if value[-1] != "A" else "B")
    body = await (await client.get("/count")).get_json()
    assert body["views"] == 1
    assert body["id"] != old
    assert await raw_of(store, old) == before


async def test_unsigned_bare_id_is_ignored(store: Store) -> None:
    """A cookie holding the bare id (no s: prefix, no signature) does not load that session."""
    app = make_app(store)
    client = browser(app)
    old = (await (await client.get("/count")).get_json())["id"]
    client.cookie = old
    body = await (await client.get("/count")).get_json()
    assert body["views"] == 1
    assert body["id"] != old


async def test_rotated_secrets_load_old_cookies_and_sign_with_the_first(store: Store) -> None:
    """Secrets [new, old]: an old-signed cookie loads; new cookies are signed with new; [old] rejects them."""
    old_app = make_app(store, secret="old", cookie={"max_age": 60})
    client = browser(old_app)
    sid = (await (await client.get("/count")).get_json())["id"]
    assert client.cookie == signed(sid, "old")

    client.client = make_app(store, secret=["new", "old"], cookie={"max_age": 60}).test_client(
        use_cookies=False
    )
    response = await client.get("/count")
    assert await response.get_json() == {"views": 2, "id": sid}
    assert cookie_value(response) == signed(sid, "new")

    client.client = make_app(store, secret=["old"]).test_client(use_cookies=False)
    body = await (await client.get("/count")).get_json()
    assert body["views"] == 1
    assert body["id"] != sid


async def test_valid_cookie_for_an_unknown_id_gets_a_new_different_id(store: Store) -> None:
    """A correctly signed id the store does not know is never adopted."""
    app = make_app(store)
    client = browser(app)
    client.cookie = signed("attacker-chosen-session-id-00000")
    response = await client.get("/count")
    body = await response.get_json()
    assert body["views"] == 1
    assert body["id"] != "attacker-chosen-session-id-00000"
    assert sid_of(cookie_value(response) or "") == body["id"]
    assert await store.ids() == [body["id"]]


async def test_expired_record_is_not_adopted(store: Store) -> None:
    """Once the record has expired, its cookie gets a new session with a different id."""
    app = make_app(store, cookie={"max_age": 1})
    client = browser(app)
    old = (await (await client.get("/count")).get_json())["id"]
    await asyncio.sleep(1.1)
    body = await (await client.get("/count")).get_json()
    assert body["views"] == 1
    assert body["id"] != old
    assert await store.get(old) is None
    assert await store.ids() == [body["id"]]


# ---------------------------------------------------------------- §10.18-19: bad records, store errors


@pytest.mark.parametrize(
    "raw",
    [b'{"views": 5}', b"{not json", b"[1, 2]", b'{"cookie": "x", "views": 5}'],
    ids=["no-cookie", "corrupt-json", "not-an-object", "cookie-not-an-object"],
)
async def test_record_without_cookie_or_corrupt_json_is_a_fresh_session_with_a_warning(
    store: Store, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A record without a cookie object, or not JSON at all, gives a fresh session and a warning, not a 500."""
    sid = "brokenrecord000000000000000000000"
    try:
        await store.write(sid, raw, now_ms() + 60_000)
    except ValueError:  # PostgreSQL's json column holds JSON only: no such row can exist there
        assert isinstance(store, PostgresStore)
        return
    app = make_app(store)
    client = browser(app)
    client.cookie = signed(sid)
    with caplog.at_level(logging.WARNING, logger="sessions"):
        response = await client.get("/count")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["views"] == 1
    assert body["id"] != sid
    assert warnings_from_sessions(caplog)


@pytest.fixture(params=["file", "redis", "redis-multiplexed", "postgres"])
async def unreadable(
    request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str
) -> AsyncIterator[tuple[Store, str]]:
    """A store whose read of one session id fails: a file that is a folder, or Redis that is not there."""
    sid = "unreadablesession000000000000000"
    if request.param == "file":
        store = FileStore(tmp_path / "sessions")
        (store.path / f"{sid}.json").mkdir(parents=True)
        yield store, sid
    elif request.param == "postgres":
        nowhere = PostgresStore.from_url(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
        yield nowhere, sid
        await nowhere.close()
    elif request.param == "redis-multiplexed":
        nobody = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", prefix=key_prefix)
        yield nobody, sid
        await nobody.close()
    else:
        client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
        yield RedisStore(client, prefix=key_prefix), sid
        await client.aclose()


async def test_store_read_error_gives_503_not_500(
    unreadable: tuple[Store, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A failing store read: untouched pages still render; touching the session is a 503 with Retry-After."""
    store, sid = unreadable
    app = make_app(store)
    client = browser(app)
    client.cookie = signed(sid)
    with caplog.at_level(logging.WARNING, logger="sessions"):
        page = await client.get("/")
        assert page.status_code == 200
        assert await page.get_data() == b"hello"
        failed = await client.get("/count")
    assert failed.status_code == 503
    assert failed.headers.get("Retry-After")
    assert set_cookies(failed) == []
    assert warnings_from_sessions(caplog)


@pytest.fixture(params=["file", "redis", "redis-multiplexed", "postgres"])
async def unwritable(
    request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str
) -> AsyncIterator[Store]:
    """A store whose writes fail: its folder is a file, or Redis is not there."""
    if request.param == "file":
        store = FileStore(tmp_path / "sessions")
        store.path.write_text("not a folder")
        yield store
    elif request.param == "postgres":
        nowhere = PostgresStore.from_url(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
        yield nowhere
        await nowhere.close()
    elif request.param == "redis-multiplexed":
        nobody = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", prefix=key_prefix)
        yield nobody
        await nobody.close()
    else:
        client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
        yield RedisStore(client, prefix=key_prefix)
        await client.aclose()


async def test_store_write_error_at_the_end_gives_503_and_no_cookie(
    unwritable: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing end-of-request write is a logged 503 with Retry-After, and no cookie for unsaved data."""
    app = make_app(unwritable)
    with caplog.at_level(logging.WARNING, logger="sessions"):
        response = await app.test_client(use_cookies=False).get("/count")
    assert response.status_code == 503
    assert response.headers.get("Retry-After")
    assert set_cookies(response) == []
    assert warnings_from_sessions(caplog)


# ---------------------------------------------------------------- §10.20: parsing the Cookie header


async def test_first_cookie_of_a_repeated_name_wins(store: Store) -> None:
    """With connect.sid twice in the Cookie header, the first value is the session."""
    app = make_app(store)
    first = await (await browser(app).get("/count")).get_json()
    second = await (await browser(app).post("/set", json={"other": True})).get_json()
    header = f"connect.sid={signed(first['id'])}; connect.sid={signed(second['id'])}"
    response = await app.test_client(use_cookies=False).get("/read", headers={"Cookie": header})
    assert await response.get_json() == {"data": {"views": 1}, "id": first["id"]}


@pytest.mark.parametrize("form", ["quoted", "unencoded", "spaced"])
async def test_quoted_unencoded_and_spaced_cookie_values_are_accepted(
    store: Store, form: str
) -> None:
    """A quoted value, a raw s:id.mac value, or one padded with spaces all load the session."""
    app = make_app(store)
    sid = (await (await browser(app).get("/count")).get_json())["id"]
    value = signed(sid)
    header = {
        "quoted": f'connect.sid="{value}"',
        "unencoded": "other=1; connect.sid=" + unquote(value),
        "spaced": f"theme=dark;  connect.sid = {value} ",
    }[form]
    response = await app.test_client(use_cookies=False).get("/read", headers={"Cookie": header})
    assert await response.get_json() == {"data": {"views": 1}, "id": sid}


async def test_other_cookies_and_similar_names_are_not_the_session(store: Store) -> None:
    """Only the configured name counts: a connect.sid or xapp.sid cookie does not load an app.sid session."""
    app = make_app(store, name="app.sid")
    client = app.test_client(use_cookies=False)
    response = await client.get("/count")
    sid = (await response.get_json())["id"]
    assert set_cookies(response) == []
    assert set_cookies(response, name="app.sid")[0].startswith(f"app.sid={signed(sid)};")
    header = f"connect.sid={signed(sid)}; xapp.sid={signed(sid)}"
    response = await client.get("/read", headers={"Cookie": header})
    body = await response.get_json()
    assert body["data"] == {}
    assert body["id"] != sid
    loaded = await client.get("/read", headers={"Cookie": f"app.sid={signed(sid)}"})
    assert await loaded.get_json() == {"data": {"views": 1}, "id": sid}


# ---------------------------------------------------------------- §10.21: cookie path scope


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


# ---------------------------------------------------------------- §10.22-24: secure, proxy, auto


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


# ---------------------------------------------------------------- §10.25-29: session methods


async def test_regenerate_replaces_the_record_and_sends_a_new_id_even_when_empty(
    store: Store,
) -> None:
    """regenerate: old record gone, new id sent and stored though empty and save_uninitialized is off."""
    app = make_app(store)
    client = browser(app)
    old = (await (await client.get("/count")).get_json())["id"]
    response = await client.post("/regenerate-empty")
    new = (await response.get_json())["id"]
    assert new != old
    assert sid_of(cookie_value(response) or "") == new
    assert await store.get(old) is None
    record = await store.get(new)
    assert record is not None
    assert list(record) == ["cookie"]
    assert await store.ids() == [new]


async def test_regenerate_drops_the_old_data(store: Store) -> None:
    """regenerate does not carry data over: only what is set afterwards is stored."""
    app = make_app(store)
    client = browser(app)
    await client.get("/count")
    body = await (await client.post("/regenerate")).get_json()
    record = await store.get(body["new"])
    assert record is not None
    assert {k: v for k, v in record.items() if k != "cookie"} == {"fresh": True}
    assert await store.get(body["old"]) is None
    read = await (await client.get("/read")).get_json()
    assert read == {"data": {"fresh": True}, "id": body["new"]}


async def test_regenerate_keep_data_moves_the_data_and_owner_to_a_new_id(store: Store) -> None:
    """regenerate(keep_data=True): a new id, the same data and owner, the old record and index entry gone."""
    app = make_app(store)

    @app.post("/sign-in")
    async def sign_in() -> Any:
        old = session.id
        await session.regenerate(keep_data=True)
        return jsonify(old=old, new=session.id, data=dict(session))

    client = browser(app)
    await client.post("/owner", json={"owner": "user:7"})
    await client.get("/count")
    await client.get("/count")
    response = await client.post("/sign-in")
    body = await response.get_json()
    assert body["new"] != body["old"]
    assert body["data"] == {"views": 2}
    assert sid_of(cookie_value(response) or "") == body["new"]
    assert await store.get(body["old"]) is None
    assert [info.id for info in await store.owned("user:7")] == [body["new"]]
    assert (await (await client.get("/count")).get_json())["views"] == 3


async def test_regenerate_on_a_new_request_stores_a_new_session(store: Store) -> None:
    """Regenerating a cookieless request's session still stores it and sends its cookie."""
    app = make_app(store)
    response = await app.test_client(use_cookies=False).post("/regenerate-empty")
    sid = (await response.get_json())["id"]
    assert sid_of(cookie_value(response) or "") == sid
    assert await store.ids() == [sid]


async def test_save_after_regenerate_is_the_only_write(store: Store) -> None:
    """regenerate + save(): the end of the request does not write the record a second time."""
    app = make_app(store)

    @app.post("/regenerate-save")
    async def regenerate_save() -> Any:
        await session.regenerate()
        session["fresh"] = True
        await session.save()
        marker = await mark_stored_record(store, session.id)
        return jsonify(id=session.id, marker=marker)

    client = browser(app)
    await client.get("/count")
    response = await client.post("/regenerate-save")
    body = await response.get_json()
    assert sid_of(cookie_value(response) or "") == body["id"]
    record = await store.get(body["id"])
    assert record is not None
    assert record["cookie"]["path"] == body["marker"]
    assert record["fresh"] is True


async def mark_stored_record(store: Store, sid: str) -> str:
    """Rewrite the stored record's cookie path to a unique marker, so that any later write shows."""
    record = await store.get(sid)
    assert record is not None
    marker = f"/marked-{secrets.token_hex(4)}"
    record["cookie"]["path"] = marker
    await store.set(sid, record)
    return marker


async def test_explicit_save_is_the_only_write_of_the_request(store: Store) -> None:
    """save() and no later change: the data is stored once, and the end of the request writes nothing more."""
    app = make_app(store)

    @app.post("/save-and-mark")
    async def save_and_mark() -> Any:
        session["a"] = 1
        await session.save()
        marker = await mark_stored_record(store, session.id)
        return jsonify(id=session.id, marker=marker)

    client = browser(app)
    for _ in range(2):  # a new session, then a loaded one
        body = await (await client.post("/save-and-mark")).get_json()
        record = await store.get(body["id"])
        assert record is not None
        assert record["cookie"]["path"] == body["marker"]
        assert record["a"] == 1


async def test_save_then_change_stores_the_later_change_too(store: Store) -> None:
    """A change made after save() is still stored at the end of the request."""
    app = make_app(store)

    @app.post("/save-then-more")
    async def save_then_more() -> Any:
        session["a"] = 1
        await session.save()
        session["b"] = 2
        return jsonify(id=session.id)

    response = await app.test_client(use_cookies=False).post("/save-then-more")
    record = await store.get((await response.get_json())["id"])
    assert record is not None
    assert (record["a"], record["b"]) == (1, 2)


async def test_destroy_deletes_the_record_and_clears_the_browser_cookie(store: Store) -> None:
    """destroy: the record is deleted and the cookie cleared (our deviation); the old cookie then starts afresh."""
    app = make_app(store)
    client = browser(app)
    first = await client.get("/count")
    old_value = cookie_value(first)
    old = (await first.get_json())["id"]
    response = await client.post("/destroy")
    assert set_cookies(response) == [
        "connect.sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
    ]
    assert await store.ids() == []
    client.cookie = old_value
    body = await (await client.get("/count")).get_json()
    assert body["views"] == 1
    assert body["id"] != old


async def test_destroy_of_a_new_session_sends_no_cookie_and_stores_nothing(store: Store) -> None:
    """destroy on a cookieless request: nothing to clear, nothing stored."""
    app = make_app(store)
    response = await app.test_client(use_cookies=False).post("/destroy")
    assert response.status_code == 200
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_destroy_with_save_uninitialized_stores_no_replacement_session(store: Store) -> None:
    """save_uninitialized does not turn a destroyed session into a new stored one: the cookie is cleared."""
    app = make_app(store, save_uninitialized=True)
    client = browser(app)
    await client.get("/count")
    response = await client.post("/destroy")
    assert cookie_value(response) == ""
    assert await store.ids() == []


async def test_destroy_keeps_the_cookie_attributes_in_the_clearing_header(store: Store) -> None:
    """The clearing Set-Cookie repeats the session cookie's path and domain so the browser drops it."""
    app = make_app(store, cookie={"path": "/app", "domain": "example.com", "max_age": 60})

    @app.get("/app/count")
    async def app_count() -> Any:
        session["views"] = session.get("views", 0) + 1
        return "ok"

    @app.post("/app/destroy")
    async def app_destroy() -> Any:
        await session.destroy()
        return "ok"

    client = browser(app)
    await client.get("/app/count")
    response = await client.post("/app/destroy")
    header = only_cookie(response)
    assert header.startswith(
        "connect.sid=; Domain=example.com; Path=/app; Expires=Thu, 01 Jan 1970 00:00:00 GMT;"
    )
    assert await store.ids() == []


async def test_unset_keep_leaves_the_record_untouched(store: Store) -> None:
    """unset 'keep': dropping the session leaves its record as it was, and the next request sees it."""
    app = make_app(store, unset="keep")
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    before = await raw_of(store, sid)
    response = await client.post("/unset")
    assert set_cookies(response) == []
    assert await raw_of(store, sid) == before
    assert await (await client.get("/read")).get_json() == {"data": {"views": 1}, "id": sid}


async def test_unset_destroy_deletes_the_record(store: Store) -> None:
    """unset 'destroy': the record is deleted at the end; the old cookie then gets a new session."""
    app = make_app(store, unset="destroy")
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    response = await client.post("/unset")
    assert response.status_code == 200
    assert await store.ids() == []
    body = await (await client.get("/count")).get_json()
    assert body["views"] == 1
    assert body["id"] != sid


async def test_unset_destroy_on_a_new_session_sets_no_cookie_and_stores_nothing(
    store: Store,
) -> None:
    """unset 'destroy' on a cookieless request: no cookie and no record, even after data was set."""
    app = make_app(store, unset="destroy")

    @app.post("/set-then-unset")
    async def set_then_unset() -> str:
        session["a"] = 1
        session.unset()
        return "ok"

    response = await app.test_client(use_cookies=False).post("/set-then-unset")
    assert set_cookies(response) == []
    assert await store.ids() == []


async def test_unset_other_than_keep_or_destroy_is_rejected(store: Store) -> None:
    """unset accepts only 'keep' and 'destroy'."""
    with pytest.raises(ValueError):
        make_app(store, unset="drop")


def add_reload_route(app: Quart) -> tuple[asyncio.Event, asyncio.Event]:
    """/reload-later loads the session, waits for the test, then reloads it."""
    entered, proceed = asyncio.Event(), asyncio.Event()

    @app.get("/reload-later")
    async def reload_later() -> Any:
        before = dict(session)
        entered.set()
        await proceed.wait()
        try:
            await session.reload()
        except SessionNotFound as error:
            return jsonify(before=before, error=str(error)), 410
        return jsonify(before=before, after=dict(session))

    return entered, proceed


async def test_reload_sees_a_concurrent_requests_write(store: Store) -> None:
    """reload() replaces the data with what another request stored meanwhile."""
    app = make_app(store)
    entered, proceed = add_reload_route(app)
    client = browser(app)
    sid = sid_of(cookie_value(await client.post("/set", json={"x": 1})) or "")
    pending = asyncio.create_task(client.get("/reload-later"))
    await entered.wait()
    await client.post("/set", json={"x": 2, "y": 3})
    proceed.set()
    body = await (await pending).get_json()
    assert body == {"before": {"x": 1}, "after": {"x": 2, "y": 3}}
    record = await store.get(sid)
    assert record is not None
    assert (record["x"], record["y"]) == (2, 3)


async def test_reload_of_a_destroyed_record_raises_session_not_found(store: Store) -> None:
    """reload() after the record is gone raises SessionNotFound ('failed to load session')."""
    app = make_app(store)
    entered, proceed = add_reload_route(app)
    client = browser(app)
    sid = sid_of(cookie_value(await client.post("/set", json={"x": 1})) or "")
    pending = asyncio.create_task(client.get("/reload-later"))
    await entered.wait()
    await store.destroy(sid)
    proceed.set()
    response = await pending
    assert response.status_code == 410
    assert "failed to load session" in (await response.get_json())["error"]
    assert await store.ids() == []


async def test_touch_resets_max_age_to_its_original_value(store: Store) -> None:
    """session.touch() puts the remaining max_age back to the original one."""
    app = make_app(store, cookie={"max_age": 60})

    @app.get("/touch")
    async def touch() -> Any:
        before = session.cookie.max_age
        session.touch()
        return jsonify(before=before, after=session.cookie.max_age)

    @app.get("/slow-touch")
    async def slow_touch() -> Any:
        await asyncio.sleep(0.2)
        return await touch()

    client = browser(app)
    await client.get("/count")
    body = await (await client.get("/slow-touch")).get_json()
    assert 59 < body["before"] < 59.85
    assert 59.95 < body["after"] <= 60


# ---------------------------------------------------------------- §10.30-33: errors and timing


async def test_server_error_discards_session_changes(store: Store) -> None:
    """A 5xx response saves nothing: neither a new session nor a loaded session's change."""
    app = make_app(store)
    client = browser(app)
    response = await client.get("/boom")
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert await store.ids() == []
    sid = (await (await client.get("/count")).get_json())["id"]
    assert (await client.get("/boom")).status_code == 500
    record = await store.get(sid)
    assert record is not None
    assert "lost" not in record
    assert record["views"] == 1


async def test_explicitly_saved_session_survives_a_server_error(store: Store) -> None:
    """What the handler saved with save() before failing is kept."""
    app = make_app(store)

    @app.get("/save-then-boom")
    async def save_then_boom() -> Any:
        session["kept"] = True
        await session.save()
        raise RuntimeError("handler failed after saving")

    response = await app.test_client(use_cookies=False).get("/save-then-boom")
    assert response.status_code == 500
    [sid] = await store.ids()
    record = await store.get(sid)
    assert record is not None
    assert record["kept"] is True


async def test_session_is_stored_before_the_response_starts(store: Store) -> None:
    """The record is in the store by the time the response headers go out (no redirect race)."""
    app = make_app(store)
    seen: dict[str, Any] = {}
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [(k.decode().lower(), v.decode()) for k, v in message["headers"]]
            [value] = [v for k, v in headers if k == "set-cookie"]
            sid = sid_of(value.split(";", 1)[0].split("=", 1)[1])
            seen["record"] = await store.get(sid)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/count",
        "raw_path": b"/count",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
        "extensions": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    assert seen["record"] is not None
    assert seen["record"]["views"] == 1


async def test_missing_secret_fails_at_startup_instead_of_every_request(store: Store) -> None:
    """No secret is a start-up error; an empty secret list is rejected too."""
    app = Quart(__name__)
    with pytest.raises(RuntimeError, match="secret"):
        Sessions(app, store=store)
    with pytest.raises(ValueError):
        Sessions(Quart(__name__), store=store, secret=[])


async def test_secret_key_and_fallbacks_sign_and_verify(store: Store) -> None:
    """Without secret=, SECRET_KEY signs and SECRET_KEY_FALLBACKS still verify."""
    app = Quart(__name__)
    app.config.update(SECRET_KEY="new", SECRET_KEY_FALLBACKS=["old"])
    Sessions(app, store=store, cookie={"max_age": 60})

    @app.get("/count")
    async def count() -> Any:
        session["views"] = session.get("views", 0) + 1
        return jsonify(views=session["views"])

    expires = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    cookie = {"originalMaxAge": 60000, "expires": expires, "path": "/"}
    await store.set("rotated", {"cookie": cookie, "views": 4})
    response = await app.test_client(use_cookies=False).get(
        "/count", headers={"Cookie": f"connect.sid={signed('rotated', 'old')}"}
    )
    assert await response.get_json() == {"views": 5}
    assert cookie_value(response) == signed("rotated", "new")


async def test_unreachable_redis_spares_untouched_pages_and_recovers_after_restart(
    private_redis: Any, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down: pages not using the session render, using it is a 503; after restart the session is back."""
    store = RedisStore.from_url(private_redis.url, prefix=key_prefix, timeout=1.0)
    app = make_app(store)
    client = browser(app)
    try:
        sid = (await (await client.get("/count")).get_json())["id"]
        private_redis.stop()
        with caplog.at_level(logging.WARNING, logger="sessions"):
            page = await client.get("/")
            assert page.status_code == 200
            assert set_cookies(page) == []
            down = await client.get("/count")
        assert down.status_code == 503
        assert down.headers.get("Retry-After")
        assert warnings_from_sessions(caplog)
        private_redis.start()
        assert await (await client.get("/count")).get_json() == {"views": 2, "id": sid}
    finally:
        await store.close()


# ---------------------------------------------------------------- §10.34-37: the stored record


async def test_stored_record_has_the_express_json_layout(store: Store) -> None:
    """The record is compact JSON: cookie first (originalMaxAge ms, ISO expires ending in Z), then the data."""
    app = make_app(store, cookie={"max_age": 60})
    before = datetime.now(UTC)
    response = await app.test_client(use_cookies=False).get("/count")
    raw = await raw_of(store, (await response.get_json())["id"])
    assert raw is not None
    assert raw.startswith(b'{"cookie":{"originalMaxAge":60000,"expires":"')
    record = json.loads(raw)
    assert list(record) == ["cookie", "views"]
    assert list(record["cookie"]) == [
        "originalMaxAge",
        "expires",
        "secure",
        "httpOnly",
        "path",
        "sameSite",
    ]
    cookie = record["cookie"]
    assert ISO_MS_Z.fullmatch(cookie["expires"]), cookie["expires"]
    assert (cookie["secure"], cookie["httpOnly"], cookie["path"], cookie["sameSite"]) == (
        False,
        True,
        "/",
        "lax",
    )
    expires = datetime.fromisoformat(cookie["expires"])
    assert timedelta(seconds=59) < expires - before <= timedelta(seconds=61)
    assert raw.endswith(b',"views":1}')


async def test_browser_session_record_has_null_max_age_and_expires(store: Store) -> None:
    """Without max_age the stored cookie has originalMaxAge null and expires null (same_site False kept)."""
    app = make_app(store, cookie={"same_site": False})
    response = await app.test_client(use_cookies=False).get("/count")
    raw = await raw_of(store, (await response.get_json())["id"])
    assert raw == (
        b'{"cookie":{"originalMaxAge":null,"expires":null,"secure":false,'
        b'"httpOnly":true,"path":"/","sameSite":false},"views":1}'
    )


async def test_stored_keys_named_like_session_methods_are_plain_data(store: Store) -> None:
    """A stored 'save' or 'regenerate' key is just data: it does not break loading or save()."""
    await store.set(
        "methodnames",
        {"cookie": {"originalMaxAge": None, "path": "/"}, "save": "x", "regenerate": 1},
    )
    app = make_app(store)
    client = browser(app)
    client.cookie = signed("methodnames")
    response = await client.post("/save-then-change")
    assert response.status_code == 200
    assert (await response.get_json())["id"] == "methodnames"
    record = await store.get("methodnames")
    assert record is not None
    assert (record["save"], record["regenerate"], record["a"]) == ("x", 1, 1)


async def test_app_set_cookie_headers_are_kept_beside_the_session_cookie(store: Store) -> None:
    """A Set-Cookie the app set itself stays, and the session cookie is added after it."""
    app = make_app(store)

    @app.get("/theme")
    async def theme() -> Any:
        session["theme"] = "dark"
        response = jsonify(ok=True)
        response.set_cookie("theme", "dark")
        return response

    response = await app.test_client(use_cookies=False).get("/theme")
    headers = response.headers.getlist("Set-Cookie")
    assert len(headers) == 2
    assert headers[0].startswith("theme=dark")
    assert headers[1].startswith("connect.sid=s%3A")


async def test_original_max_age_stays_and_each_read_slides_max_age_back_to_it(
    store: Store,
) -> None:
    """original_max_age stays 60 across requests; the read at the start of each request slides the expiry."""
    app = make_app(store, cookie={"max_age": 60})

    @app.get("/cookie")
    async def cookie_info() -> Any:
        return jsonify(original=session.cookie.original_max_age, left=session.cookie.max_age)

    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    await asyncio.sleep(0.3)
    for _ in range(2):
        body = await (await client.get("/cookie")).get_json()
        assert body["original"] == 60
        assert 59.9 < body["left"] <= 60
    record = await store.get(sid)
    assert record is not None
    assert record["cookie"]["originalMaxAge"] == 60000


@pytest.mark.parametrize(
    ("seconds", "milliseconds"), [(5, 5000), (3_000_000, 3_000_000_000), (1.5, 1500)]
)
async def test_max_age_set_in_a_handler_sets_expires_and_original_max_age(
    store: Store, seconds: float, milliseconds: int
) -> None:
    """session.cookie.max_age = N: Expires is N seconds away and originalMaxAge is N*1000 exactly."""
    app = make_app(store)
    before = datetime.now(UTC)
    response = await app.test_client(use_cookies=False).post("/max-age", json={"seconds": seconds})
    after = datetime.now(UTC)
    expires = expires_of(only_cookie(response))
    assert (before + timedelta(seconds=seconds)).replace(microsecond=0) <= expires
    assert expires <= after + timedelta(seconds=seconds)
    record = await store.get((await response.get_json())["id"])
    assert record is not None
    assert record["cookie"]["originalMaxAge"] == milliseconds


async def test_expires_in_the_past_deletes_the_record(store: Store) -> None:
    """A cookie whose expiry has passed is not stored: saving it deletes the record."""
    app = make_app(store)

    @app.post("/expire-now")
    async def expire_now() -> Any:
        session.cookie.expires = datetime.now(UTC) - timedelta(seconds=5)
        session["late"] = True
        return jsonify(id=session.id)

    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    assert await store.ids() == [sid]
    await client.post("/expire-now")
    assert await store.get(sid) is None
    assert await store.ids() == []
    fresh = await app.test_client(use_cookies=False).post("/expire-now")
    assert fresh.status_code == 200
    assert await store.ids() == []


# ---------------------------------------------------------------- §10.38: connect-redis TTLs


async def redis_app_session(
    redis_client: aioredis.Redis, key_prefix: str, **options: Any
) -> tuple[Browser, str]:
    ttl = options.pop("ttl", 86400)
    app = make_app(RedisStore(redis_client, prefix=key_prefix, ttl=ttl), **options)
    client = browser(app)
    sid = (await (await client.get("/count")).get_json())["id"]
    return client, sid


async def test_redis_key_is_prefix_plus_id_holding_the_record(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """The Redis key is <prefix><sid>, and its value is the express JSON record."""
    _, sid = await redis_app_session(redis_client, key_prefix)
    value = await redis_client.get(key_prefix + sid)
    assert value is not None
    assert json.loads(value)["views"] == 1


async def test_redis_ttl_is_the_time_left_until_cookie_expiry(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """With a cookie expiry the key's TTL is ceil(expires - now)."""
    _, sid = await redis_app_session(redis_client, key_prefix, cookie={"max_age": 100})
    assert await redis_client.ttl(key_prefix + sid) == 100
    assert 99_000 < await redis_client.pttl(key_prefix + sid) <= 100_000


async def test_redis_key_expires_with_the_cookie_to_the_millisecond(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """A cookie expiring in 100.2 s gives the key 100.2 s (PX), never a TTL that ends before the cookie."""
    _, sid = await redis_app_session(redis_client, key_prefix, cookie={"max_age": 100.2})
    assert 100_000 < await redis_client.pttl(key_prefix + sid) <= 100_200


async def test_redis_ttl_is_86400_without_cookie_expiry(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """A browser-session cookie's record lives for the store's ttl, 86400 s by default."""
    _, sid = await redis_app_session(redis_client, key_prefix)
    assert await redis_client.ttl(key_prefix + sid) == 86400


async def test_redis_ttl_function_wins_over_cookie_expiry(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """A ttl function decides the TTL even when the cookie has an expiry."""
    seen: list[dict[str, Any]] = []

    def ttl(record: dict[str, Any]) -> int:
        seen.append(record)
        return 42

    _, sid = await redis_app_session(redis_client, key_prefix, ttl=ttl, cookie={"max_age": 100})
    assert await redis_client.ttl(key_prefix + sid) == 42
    assert seen and seen[-1]["views"] == 1


async def test_redis_touch_rewrites_only_the_stored_expiry(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """An unchanged loaded session: only the 24 characters of cookie.expires change, and the key's TTL follows."""
    client, sid = await redis_app_session(redis_client, key_prefix, cookie={"max_age": 100})
    key = key_prefix + sid
    await redis_client.pexpire(key, 30_000)
    before = await redis_client.get(key)
    await asyncio.sleep(0.02)
    response = await client.get("/read")
    after = await redis_client.get(key)
    assert set_cookies(response) == []
    old_expires = json.loads(before)["cookie"]["expires"]
    new_expires = json.loads(after)["cookie"]["expires"]
    assert new_expires > old_expires
    assert after == before.replace(old_expires.encode(), new_expires.encode())
    assert 99_900 < await redis_client.pttl(key) <= 100_000


async def test_redis_touch_without_expiry_resets_to_the_store_ttl(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """Without a cookie expiry, a touch gives the key the store's ttl again."""
    client, sid = await redis_app_session(redis_client, key_prefix, ttl=500)
    key = key_prefix + sid
    assert await redis_client.ttl(key) == 500
    await redis_client.expire(key, 30)
    await client.get("/read")
    assert await redis_client.ttl(key) == 500


async def test_redis_past_expiry_deletes_the_key(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """Saving a session whose cookie already expired deletes the key instead of SET with EX <= 0."""
    store = RedisStore(redis_client, prefix=key_prefix)
    await store.set("gone", {"cookie": {"originalMaxAge": 1, "path": "/"}, "v": 1})
    assert await redis_client.exists(key_prefix + "gone") == 1
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await store.set("gone", {"cookie": {"expires": past, "path": "/"}, "v": 2})
    assert await redis_client.exists(key_prefix + "gone") == 0


async def test_redis_ttl_is_never_below_the_remaining_cookie_life(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """After later requests the key's TTL still covers the cookie's remaining lifetime."""
    client, sid = await redis_app_session(redis_client, key_prefix, cookie={"max_age": 100})
    response = await client.get("/count")
    expires = expires_of(only_cookie(response))
    left = (expires - datetime.now(UTC)).total_seconds()
    assert await redis_client.ttl(key_prefix + sid) >= math.floor(left)
