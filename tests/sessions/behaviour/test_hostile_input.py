"""Hostile or broken input: tampered cookies, corrupt records, unserializable or oversized data."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart import jsonify, session

from sessions import MemoryStore, PostgresStore, SessionTooLarge, Store
from sessions.expiry import Renewal, now_ms
from sessions.signing import encode_cookie_value
from tests.sessions.conftest import SECRET, Browser, make_app, sid_of


class CountingStore(MemoryStore):
    """A real MemoryStore that also counts the reads it serves."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    async def load(self, sid: str, renew: Renewal | None = None) -> bytes | None:
        self.reads.append(sid)
        return await super().load(sid, renew)

    async def load_many(self, sids: Sequence[str]) -> list[bytes | None]:
        self.reads.extend(sids)
        return await super().load_many(sids)


cookie_headers = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.tuples(
            st.sampled_from(
                ["connect.sid", "other", "connect.sid ", " connect.sid", "CONNECT.SID", ""]
            ),
            st.one_of(
                st.text(max_size=120),
                st.from_regex(r"s%3A[A-Za-z0-9_\-%.]{0,80}", fullmatch=True),
                st.from_regex(r'"s:[^"]{0,60}"', fullmatch=True),
            ),
        ),
        max_size=4,
    ).map(lambda pairs: "; ".join(f"{k}={v}" for k, v in pairs)),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(header=cookie_headers)
async def test_any_cookie_header_gives_a_page_and_unsigned_ids_never_reach_the_store(
    header: str,
) -> None:
    store = CountingStore()
    app = make_app(store)
    client = app.test_client(use_cookies=False)
    safe = "".join(ch for ch in header if 0x20 <= ord(ch) < 0x7F or ch == "\t")

    response = await client.get("/count", headers={"Cookie": safe})

    assert response.status_code == 200
    assert (await response.get_json())["views"] == 1
    assert store.reads == []


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda v: v[:-1], id="truncated"),
        pytest.param(
            lambda v: v[:-2] + ("A" if v[-2] != "A" else "B") + v[-1], id="tampered-signature"
        ),
        pytest.param(lambda v: v.replace("s%3A", "", 1), id="unsigned"),
        pytest.param(lambda v: v + "x" * 5000, id="oversized"),
        pytest.param(lambda v: v.replace("%3A", "%ZZ"), id="bad-escape"),
        pytest.param(lambda v: "s%3A%FF%FE." + v.rpartition(".")[2], id="bad-utf8"),
    ],
)
async def test_a_broken_cookie_gives_a_fresh_session_without_reading_the_store(mangle: Any) -> None:
    store = CountingStore()
    app = make_app(store)
    browser = Browser(app.test_client(use_cookies=False))
    await browser.get("/count")
    assert browser.cookie is not None
    original = sid_of(browser.cookie)
    store.reads.clear()

    browser.cookie = mangle(browser.cookie)
    response = await browser.get("/count")

    assert response.status_code == 200
    assert (await response.get_json())["views"] == 1
    assert store.reads == []
    assert sid_of(browser.cookie) != original


async def test_a_duplicated_cookie_uses_the_first_value(store: Store) -> None:
    app = make_app(store)
    first, second = (
        Browser(app.test_client(use_cookies=False)),
        Browser(app.test_client(use_cookies=False)),
    )
    await first.get("/count")
    await first.get("/count")
    await second.get("/count")
    client = app.test_client(use_cookies=False)

    response = await client.get(
        "/count", headers={"Cookie": f"connect.sid={first.cookie}; connect.sid={second.cookie}"}
    )

    assert (await response.get_json())["views"] == 3


async def test_a_valid_cookie_for_an_unknown_id_is_never_adopted(store: Store) -> None:
    app = make_app(store)
    client = app.test_client(use_cookies=False)
    planted = encode_cookie_value("attacker-chosen-id", SECRET.encode())

    response = await client.get("/count", headers={"Cookie": f"connect.sid={planted}"})

    assert response.status_code == 200
    body = await response.get_json()
    assert body["id"] != "attacker-chosen-id"
    assert await store.get("attacker-chosen-id") is None


@pytest.mark.parametrize(
    "stored",
    [
        b"{not json",
        b"[1,2,3]",
        b'{"views": 3}',
        b'{"cookie": "nope"}',
        b"\xff\xfe",
        b'{"cookie":{"expires":"not a date"}}',
    ],
    ids=[
        "corrupt-json",
        "not-an-object",
        "no-cookie",
        "cookie-not-object",
        "not-utf8",
        "bad-expires",
    ],
)
async def test_a_corrupt_record_is_a_fresh_session_and_a_logged_warning(
    store: Store, stored: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(store)
    try:
        await store.write("broken-record", stored, now_ms() + 60_000)
    except ValueError:  # PostgreSQL's json column holds JSON only: no such row can exist there
        assert isinstance(store, PostgresStore)
        return
    client = app.test_client(use_cookies=False)
    cookie = encode_cookie_value("broken-record", SECRET.encode())

    response = await client.get("/count", headers={"Cookie": f"connect.sid={cookie}"})

    assert response.status_code == 200
    body = await response.get_json()
    assert body["views"] == 1
    assert body["id"] != "broken-record"
    assert any(r.name == "sessions" and r.levelname == "WARNING" for r in caplog.records)


def logged_errors(caplog: pytest.LogCaptureFixture) -> list[BaseException]:
    return [r.exc_info[1] for r in caplog.records if r.exc_info and r.exc_info[1] is not None]


async def test_an_unserializable_value_is_a_type_error_naming_its_path_and_type(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(store)

    @app.get("/bad")
    async def bad() -> Any:
        session["cart"] = {"items": [{"price": Decimal("1.5")}]}
        await session.save()
        return jsonify(ok=True)

    app.config["TESTING"] = False  # let Quart log the error as in production
    client = app.test_client(use_cookies=False)
    response = await client.get("/bad")

    assert response.status_code == 500
    errors = [e for e in logged_errors(caplog) if isinstance(e, TypeError)]
    assert errors and "session['cart']['items'][0]['price'] is a Decimal" in str(errors[0])
    assert "Traceback" not in await response.get_data(as_text=True)


async def test_a_session_over_max_size_is_a_clear_error(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(store, max_size=1024)

    @app.get("/big")
    async def big() -> Any:
        session["blob"] = "x" * 2000
        await session.save()
        return jsonify(ok=True)

    app.config["TESTING"] = False
    client = app.test_client(use_cookies=False)
    response = await client.get("/big")

    assert response.status_code == 500
    errors = [e for e in logged_errors(caplog) if isinstance(e, SessionTooLarge)]
    assert errors and "over max_size=1024" in str(errors[0])
    assert await store.ids() == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
cookie_fields = st.fixed_dictionaries(
    {},
    optional={
        "originalMaxAge": json_values,
        "expires": st.one_of(
            json_values, st.just("2030-01-01T00:00:00.000Z"), st.text(max_size=30)
        ),
        "httpOnly": json_values,
        "path": json_values,
        "domain": json_values,
        "secure": json_values,
        "sameSite": json_values,
        "priority": json_values,
        "partitioned": json_values,
    },
)
stored_records = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: __import__("json").dumps(v).encode()),
    st.tuples(cookie_fields, st.dictionaries(st.text(max_size=10), json_values, max_size=4)).map(
        lambda parts: __import__("json").dumps({"cookie": parts[0], **parts[1]}).encode()
    ),
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stored=stored_records)
async def test_any_stored_record_gives_a_page_never_a_500(stored: bytes) -> None:
    store = MemoryStore()
    app = make_app(store)
    await store.write("fuzzed", stored, now_ms() + 60_000)
    cookie = encode_cookie_value("fuzzed", SECRET.encode())
    client = app.test_client(use_cookies=False)

    for path in ("/read", "/count"):
        response = await client.get(path, headers={"Cookie": f"connect.sid={cookie}"})
        assert response.status_code == 200, stored
