"""Session ids, their signed cookie values, and which cookies load a session (express §3)."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

import pytest

from sessions import Store
from tests.sessions.behaviour.support import (
    EXPRESS_VECTORS,
    ID_PATTERN,
    browser,
    raw_of,
    signed,
)
from tests.sessions.conftest import cookie_value, make_app, set_cookies, sid_of


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


@pytest.mark.parametrize("max_age", [None, 60])
async def test_a_cookie_signed_with_a_retired_secret_is_signed_again_so_rotation_completes(
    store: Store, max_age: int | None
) -> None:
    """Ours: a cookie a fallback secret verified gets the current signature on that very response,
    even a browser-session cookie on a read-only page, so the fallback can be dropped later."""
    cookie = {} if max_age is None else {"max_age": max_age}
    client = browser(make_app(store, secret="old", cookie=cookie))
    sid = (await (await client.get("/count")).get_json())["id"]

    client.client = make_app(store, secret=["new", "old"], cookie=cookie).test_client(
        use_cookies=False
    )
    response = await client.get("/read")  # reads only: no other reason to send a cookie
    assert cookie_value(response) == signed(sid, "new")
    assert set_cookies(await client.get("/read")) == []  # once is enough

    client.client = make_app(store, secret=["new"], cookie=cookie).test_client(use_cookies=False)
    body = await (await client.get("/read")).get_json()
    assert body == {"data": {"views": 1}, "id": sid}  # still signed in without the old secret


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
