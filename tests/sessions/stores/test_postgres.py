"""PostgresStore on a real PostgreSQL: connect-pg-simple's table, statements equal to the Python
references, merges and renewals in one statement, pruning, and bounded failures."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from quart import Quart

from sessions import PostgresStore, Sessions
from sessions.cli import sessions_cli
from sessions.errors import StoreUnavailable
from sessions.expiry import (
    Renewal,
    effective_deadline,
    iso_from_ms,
    ms_from_iso,
    now_ms,
    renew_record,
)
from sessions.record import Change, fields, merge_record
from sessions.stores.postgres_sql import FIRST_ISO_MS, LAST_ISO_MS
from tests.sessions.conftest import Browser, make_app, sid_of

DAY = 86_400_000
NOW = now_ms()  # the renewals' clock


def record(expires_ms: int | None, original: float | None = 60_000, **data: object) -> bytes:
    """A record as express-session + connect-pg-simple write it."""
    expires = None if expires_ms is None else iso_from_ms(expires_ms)
    cookie = {"originalMaxAge": original, "expires": expires, "httpOnly": True, "path": "/"}
    return json.dumps(
        {"cookie": cookie, **data}, separators=(",", ":"), ensure_ascii=False
    ).encode()


@pytest.fixture
def table() -> str:
    return f"session_{secrets.token_hex(6)}"


@pytest.fixture
async def store(postgres_database: str, table: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore.from_url(postgres_database, table=table, prune_interval=None)
    await store.ping()  # creates the tables
    yield store
    await store.close()


@pytest.fixture
async def db(postgres_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the database, to look at the rows behind the store's back."""
    connection = await asyncpg.connect(postgres_database)
    yield connection
    await connection.close()


async def row(db: asyncpg.Connection, table: str, sid: str) -> tuple[str, int | None] | None:
    """The row's `sess` text and `expire` in epoch ms (None: infinity)."""
    found = await db.fetchrow(
        f"SELECT sess::text, CASE WHEN isfinite(expire) THEN (extract(epoch FROM expire::timestamptz)"
        f' * 1000)::bigint END FROM "{table}" WHERE sid = $1',
        sid,
    )
    return None if found is None else (found[0], found[1])


async def put_row(
    db: asyncpg.Connection, table: str, sid: str, raw: bytes, expire_ms: int | None
) -> None:
    """A row written behind the store's back (as a Node app would), `expire` to the ms."""
    await db.execute(
        f'INSERT INTO "{table}" VALUES ($1, $2::text::json, coalesce(to_timestamp($3::bigint / 1000.0),'
        " 'infinity')) ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire",
        sid,
        raw.decode(),
        expire_ms,
    )


# ---------------------------------------------------------------- the table


async def test_the_tables_are_connect_pg_simples_and_the_owner_index_beside_it(
    postgres_database: str,
    db: asyncpg.Connection,
) -> None:
    schema = f"s_{secrets.token_hex(4)}"
    await db.execute(f'CREATE SCHEMA "{schema}"')
    store = PostgresStore.from_url(postgres_database, schema=schema, prune_interval=None)
    try:
        await store.ping()
        columns = await db.fetch(
            "SELECT column_name, data_type, datetime_precision, is_nullable FROM"
            " information_schema.columns WHERE table_schema = $1 AND table_name = 'session'"
            " ORDER BY ordinal_position",
            schema,
        )
        assert [tuple(c) for c in columns] == [
            ("sid", "character varying", None, "NO"),
            ("sess", "json", None, "NO"),
            ("expire", "timestamp without time zone", 6, "NO"),
        ]
        indexes = dict(
            await db.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1"
                " AND tablename = 'session'",
                schema,
            )
        )
        assert set(indexes) == {"session_pkey", "IDX_session_expire"}
        assert indexes["session_pkey"].endswith("USING btree (sid)")
        assert indexes["IDX_session_expire"].endswith("USING btree (expire)")
        owner_table = await db.fetchval("SELECT to_regclass($1)", f'"{schema}".session_owner')
        assert owner_table is not None
    finally:
        await store.close()


async def test_an_existing_table_is_used_as_it_is(
    postgres_database: str,
    db: asyncpg.Connection,
    table: str,
) -> None:
    await db.execute(
        f'CREATE TABLE "{table}" (sid varchar PRIMARY KEY, sess json NOT NULL,'
        " expire timestamp(6) NOT NULL, note text DEFAULT 'node')"
    )
    store = PostgresStore.from_url(postgres_database, table=table, prune_interval=None)
    try:
        await store.write("a", record(now_ms() + 60_000), now_ms() + 60_000)
        assert await db.fetchval(f'SELECT note FROM "{table}" WHERE sid = $1', "a") == "node"
        indexes = await db.fetch("SELECT indexname FROM pg_indexes WHERE tablename = $1", table)
        assert len(indexes) == 1, "an index was added to a table that existed"
    finally:
        await store.close()


async def test_without_create_table_a_missing_table_is_a_clear_error(
    postgres_database: str,
    table: str,
) -> None:
    store = PostgresStore.from_url(
        postgres_database, table=table, create_table=False, prune_interval=None
    )
    try:
        with pytest.raises(asyncpg.UndefinedTableError, match=table):
            await store.load("a")
    finally:
        await store.close()


async def test_expire_is_local_time_of_the_servers_time_zone_as_connect_pg_simple_writes_it(
    postgres_database: str,
) -> None:
    """connect-pg-simple stores to_timestamp(seconds) in a `timestamp` column: the local time."""
    admin = await asyncpg.connect(postgres_database)
    try:
        database = await admin.fetchval("SELECT current_database()")
        await admin.execute(f"ALTER DATABASE \"{database}\" SET TimeZone = 'America/New_York'")
        store = PostgresStore.from_url(postgres_database, prune_interval=None)
        try:
            await store.write("a", record(None), 1_800_000_000_123)
            stored = await admin.fetchval("SELECT expire::text FROM session")
            assert stored == "2027-01-15 03:00:00.123"  # 08:00 UTC in New York
            assert await store.deadlines(["a"]) == [1_800_000_000_123]
        finally:
            await store.close()
    finally:
        await admin.close()


# ---------------------------------------------------------------- the statements equal the references

# Texts as a Node app (JSON.stringify) or another writer spells them.
NODE_VALUES = st.sampled_from(
    ["1e21", "1e+21", "-0", "5e-7", "0.1", "10000000000000000", '"\\u00e9"', '"\u2028"',
     '"\\u2028"', '"Zoë 🎉"', '{"a":{"b":[1,{"c":null}]}}', "[ 1 , 2 ]", '{ "k" : "v" }',
     '"\\u0000"', '"\\"quoted\\""', '"\\\\u0000"', "true", "null", "{}", '"2027-01-15T08:00:00.000Z"']
)  # fmt: skip
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=6)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
VALUES = NODE_VALUES | JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=False))
KEYS = st.sampled_from(["views", "_owner", "cart", "é", 'a"b', "x", "", "cookie", "\x00", "k\n"])
# Key texts as stored, escapes included: `"\u0041"` is the key "A".
KEY_TEXTS = KEYS.map(lambda k: json.dumps(k, ensure_ascii=False)) | st.sampled_from(
    ['"\\u0041"', '"\\u00e9"', '"_\\u006fwner"', '"\\/"', '"\\u0000"']
)
SPACE = st.sampled_from(["", "", "", "", "", "", " ", "\n  "])
ISO = st.integers(NOW - 5_000, NOW + 10 * DAY).map(iso_from_ms)
EXPIRES = (
    ISO | ISO | st.none() | st.sampled_from(["2027-02-30T00:00:00.000Z", "not a date", 12345, ""])
)
ORIGINAL = (
    st.integers(0, 400 * DAY)
    | st.integers(-DAY, 400 * DAY)
    | st.none()
    | st.floats(-1e7, 1e7)
    | st.sampled_from([1e21, True, "60000", 0.99999999999999, -0.0])
)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """A record as express, a Node app or some other writer may have stored it."""
    cookie_members = [("originalMaxAge", draw(ORIGINAL)), ("expires", draw(EXPIRES))]
    if draw(st.booleans()):
        cookie_members.reverse()
    cookie_members += draw(
        st.lists(st.sampled_from([("httpOnly", True), ("path", "/"), ("sameSite", "lax")]))
    )
    space = draw(SPACE)
    cookie = "{" + ",".join(f'"{k}"{space}:{json.dumps(v)}' for k, v in cookie_members) + "}"
    members = draw(st.lists(st.tuples(KEY_TEXTS, VALUES), max_size=5))
    at = draw(st.integers(0, len(members))) if draw(st.integers(0, 4)) == 4 else 0
    members.insert(at, ('"cookie"', cookie))
    if draw(st.integers(0, 20)) == 20:
        return draw(st.sampled_from([b"[1,2]", b'"x"', b'{"views":1}', b'{"cookie":"x"}']))
    separator = draw(SPACE)
    body = ("," + separator).join(f"{k}{separator}:{separator}{v}" for k, v in members)
    return ("{" + draw(SPACE) + body + "}").encode()


def first_cookie_expiry(raw: bytes) -> object:
    """The stated `expires` of the record's first "cookie" member, as the references read it."""
    try:
        first = next((f for f in fields(raw.decode()) if f.key == "cookie"), None)
    except ValueError:
        return None
    cookie = None if first is None else json.loads(first.value_text)
    return cookie.get("expires") if isinstance(cookie, dict) else None


def reference_renewal(
    raw: bytes, deadline: int | None, renewal: Renewal
) -> tuple[bytes, int | None] | None:
    """What the MemoryStore does on a renewing read of (raw, deadline): the record and its deadline.

    One documented difference: a renewed expiry without a 4-digit-year ISO form (Python raises,
    or writes one no Date parses) keeps the record, which lives to its cookie's expiry.
    """
    ends = effective_deadline(raw, deadline)
    if ends is not None and ends <= renewal.now_ms:
        return None
    try:
        renewed = renew_record(raw, renewal)
    except (OverflowError, ValueError, OSError):
        renewed = raw, LAST_ISO_MS + 1
    if renewed is None:
        return None
    new, moved = renewed
    if moved is not None and not FIRST_ISO_MS <= moved <= LAST_ISO_MS:
        return raw, ms_from_iso(str(first_cookie_expiry(raw)))
    return new, deadline if moved is None else moved


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=records(),
    deadline=st.none() | st.integers(NOW - 5_000, NOW + 10 * DAY),
    idle=st.integers(1, DAY),
    anonymous=st.integers(1, DAY) | st.none(),
)
async def test_a_renewing_read_equals_the_python_reference(
    store: PostgresStore,
    db: asyncpg.Connection,
    table: str,
    raw: bytes,
    deadline: int | None,
    idle: int,
    anonymous: int | None,
) -> None:
    expires = first_cookie_expiry(raw)
    # ISO forms Python parses but neither express nor we write (no milliseconds, an offset).
    assume(not isinstance(expires, str) or len(expires) == 24 or ms_from_iso(expires) is None)
    await put_row(db, table, "r", raw, deadline)
    renewal = Renewal(NOW, idle, idle if anonymous is None else anonymous)
    expected = reference_renewal(raw, deadline, renewal)
    got = await store.load("r", renewal)
    if expected is None:
        assert got is None
        assert await row(db, table, "r") == (raw.decode(), deadline), "an expired row changed"
    else:
        assert got == expected[0]
        assert await row(db, table, "r") == (expected[0].decode(), expected[1])


@st.composite
def changes(draw: st.DrawFn) -> Change:
    cookie = json.dumps({"originalMaxAge": draw(st.integers(0, DAY)), "expires": None})
    assign = draw(st.lists(st.tuples(KEYS, VALUES), max_size=4))
    remove = draw(st.frozensets(KEYS, max_size=2))
    return Change(cookie, tuple(assign), remove - {key for key, _ in assign})


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=records(), change=changes(), expires=st.none() | st.integers(DAY, 10 * DAY))
async def test_a_merge_equals_the_python_reference(
    store: PostgresStore,
    db: asyncpg.Connection,
    table: str,
    raw: bytes,
    change: Change,
    expires: int | None,
) -> None:
    stated = first_cookie_expiry(raw)
    cookie_ms = ms_from_iso(stated) if isinstance(stated, str) else None
    assume(cookie_ms is None or cookie_ms > now_ms() + 1_000)  # alive while it is merged
    await put_row(db, table, "m", raw, None)
    expires_ms = None if expires is None else now_ms() + expires
    merged = await store.apply("m", change, expires_ms)
    try:
        expected: bytes | None = merge_record(raw, change)
    except ValueError:  # not a JSON object: nothing to merge into, left as it is
        expected = None
    assert merged == expected
    if expected is not None:
        assert await row(db, table, "m") == (expected.decode(), expires_ms)


# ---------------------------------------------------------------- concurrency


async def test_a_destroy_during_parallel_merges_wins(
    store: PostgresStore, db: asyncpg.Connection, table: str
) -> None:
    await store.write("a", record(None, None), now_ms() + DAY)
    change = Change('{"originalMaxAge":null,"expires":null}', (("views", "1"),))
    merges = [store.apply("a", change, now_ms() + DAY) for _ in range(20)]
    await asyncio.gather(*merges[:10], store.delete("a"), *merges[10:])
    assert await row(db, table, "a") is None


async def test_parallel_renewals_and_merges_keep_every_change_and_the_latest_expiry(
    store: PostgresStore, db: asyncpg.Connection, table: str
) -> None:
    await store.write("a", record(now_ms() + 60_000, 60_000), now_ms() + 60_000)
    cookie = json.dumps({"originalMaxAge": 60_000, "expires": iso_from_ms(now_ms() + 60_000)})
    work = []
    for n in range(30):
        work.append(store.apply("a", Change(cookie, ((f"k{n}", str(n)),)), now_ms() + 60_000))
        work.append(store.load("a", Renewal(now_ms(), DAY, DAY)))
    await asyncio.gather(*work)
    final = json.loads((await row(db, table, "a") or ("null", None))[0])
    assert {f"k{n}": n for n in range(30)}.items() <= final.items()


# ---------------------------------------------------------------- pruning and the owner index


async def test_purge_deletes_expired_rows_in_batches_and_one_instance_at_a_time(
    postgres_database: str,
    db: asyncpg.Connection,
    table: str,
) -> None:
    store = PostgresStore.from_url(
        postgres_database, table=table, prune_interval=None, prune_batch=10
    )
    other = PostgresStore.from_url(postgres_database, table=table, prune_interval=None)
    try:
        for n in range(35):
            await store.write(f"old{n}", record(None, None), now_ms() - 2000)
            await store.index_add("user:1", f"old{n}")
        await store.write("live", record(None, None), now_ms() + DAY)
        await store.index_add("user:1", "live")
        await db.execute(f'DELETE FROM "{table}" WHERE sid = $1', "old0")  # a Node app's destroy
        holder = await asyncpg.connect(postgres_database)
        try:
            assert await holder.fetchval(store.sql.try_lock, store.sql.name)
            assert await other.purge_expired() == 0, "a second pruner ran while one held the lock"
            assert await db.fetchval(f'SELECT count(*) FROM "{table}"') == 35
        finally:
            await holder.close()  # the lock goes with its connection
        await db.execute("SELECT pg_stat_reset()")
        assert await store.purge_expired() == 34
        assert await db.fetchval(f'SELECT array_agg(sid) FROM "{table}"') == ["live"]
        assert await store.index_members("user:1") == ["live"]
        deletes = await db.fetchval(
            "SELECT n_tup_del FROM pg_stat_user_tables WHERE relname = $1", table
        )
        assert deletes in (0, 34)  # the statistics collector may not have reported yet
    finally:
        await store.close()
        await other.close()


async def test_expired_rows_are_pruned_in_the_background(
    postgres_database: str,
    db: asyncpg.Connection,
    table: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = PostgresStore.from_url(postgres_database, table=table, prune_interval=0.2)
    try:
        await store.write("old", record(None, None), now_ms() - 2000)  # also starts the pruner
        deadline = time.monotonic() + 10
        while await db.fetchval(f'SELECT count(*) FROM "{table}"'):
            assert time.monotonic() < deadline, f"never pruned; log: {caplog.messages}"
            await asyncio.sleep(0.05)
    finally:
        await store.close()


async def test_deleting_a_session_drops_its_owner_index_entries(
    store: PostgresStore, db: asyncpg.Connection, table: str
) -> None:
    await store.write("a", record(None, None, _owner="user:1"), now_ms() + DAY)
    await store.index_add("user:1", "a")
    await store.index_add("user:1", "b")
    await store.delete("a")
    assert await store.index_members("user:1") == ["b"]
    owners = await db.fetchval(f'SELECT count(*) FROM "{table}_owner"')
    assert owners == 1


# ---------------------------------------------------------------- failures


async def test_an_unreachable_server_is_store_unavailable_quickly() -> None:
    store = PostgresStore.from_url(
        "postgresql://postgres@127.0.0.1:9/postgres", connect_timeout=0.5, prune_interval=None
    )
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.load("a")
    assert time.monotonic() - started < 3
    await store.close()


async def test_pool_exhaustion_and_a_slow_statement_are_bounded_waits(
    postgres_database: str,
    db: asyncpg.Connection,
    table: str,
) -> None:
    store = PostgresStore.from_url(
        postgres_database,
        table=table,
        prune_interval=None,
        pool_size=1,
        acquire_timeout=0.3,
        statement_timeout=1.0,
    )
    try:
        await store.write("a", record(None, None), now_ms() + DAY)
        change = Change('{"originalMaxAge":null,"expires":null}', (("views", "2"),))
        async with db.transaction():  # another client holds the row
            await db.execute(f'SELECT 1 FROM "{table}" WHERE sid = $1 FOR UPDATE', "a")
            started = time.monotonic()
            slow = asyncio.ensure_future(store.apply("a", change, now_ms() + DAY))
            await asyncio.sleep(0.1)
            with pytest.raises(StoreUnavailable):  # the pool's one connection is busy
                await store.load("b")
            assert time.monotonic() - started < 1.0
            with pytest.raises(StoreUnavailable):  # the lock wait hits statement_timeout
                await slow
            assert time.monotonic() - started < 2.5
        assert await store.apply("a", change, now_ms() + DAY) is not None  # and it recovers
    finally:
        await store.close()


async def test_requests_behind_a_locked_row_or_a_busy_pool_get_a_503_within_the_timeouts(
    postgres_database: str,
    db: asyncpg.Connection,
    table: str,
) -> None:
    store = PostgresStore.from_url(
        postgres_database, table=table, pool_size=1, acquire_timeout=0.3, statement_timeout=1.0
    )
    app = make_app(store)
    user, other = (
        Browser(app.test_client(use_cookies=False)),
        Browser(app.test_client(use_cookies=False)),
    )
    await user.get("/count")
    await other.get("/count")
    try:
        async with db.transaction():  # a long transaction elsewhere holds the user's row
            await db.execute(
                f'SELECT 1 FROM "{table}" WHERE sid = $1 FOR UPDATE', sid_of(user.cookie or "")
            )
            started = time.monotonic()
            stuck = asyncio.ensure_future(user.get("/count"))
            await asyncio.sleep(0.1)
            waiting = await other.get("/read")  # the pool's one connection is taken
            assert waiting.status_code == 503
            assert waiting.headers["Retry-After"] == "5"
            assert time.monotonic() - started < 1.0
            assert (await stuck).status_code == 503  # statement_timeout ended the wait
            assert time.monotonic() - started < 2.5
        recovered = await user.get("/count")
        assert (await recovered.get_json())["views"] == 2
    finally:
        await store.close()


async def test_ping_fails_on_a_read_only_database(postgres_database: str) -> None:
    store = PostgresStore.from_url(postgres_database, prune_interval=None)
    try:
        await store.ping()
        admin = await asyncpg.connect(postgres_database)
        database = await admin.fetchval("SELECT current_database()")
        await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        await admin.close()
        await store.close()  # new connections pick up the setting
        with pytest.raises(StoreUnavailable):
            await store.ping()
    finally:
        await store.close()


# ---------------------------------------------------------------- event loops and the CLI


def test_a_store_made_by_from_url_works_in_one_event_loop_after_another(
    postgres_database: str,
    table: str,
) -> None:
    store = PostgresStore.from_url(postgres_database, table=table, prune_interval=None)

    async def use(sid: str) -> bytes | None:
        await store.write(sid, record(None, None), now_ms() + DAY)
        found = await store.load(sid)
        await store.close()
        return found

    # asyncpg pools belong to one loop: a second loop (a CLI command) gets its own.
    assert asyncio.run(use("a")) is not None
    assert asyncio.run(use("b")) is not None


def test_the_cli_counts_and_purges_a_postgres_store(postgres_database: str, table: str) -> None:
    store = PostgresStore.from_url(postgres_database, table=table, prune_interval=None)
    app = Quart(__name__)
    Sessions(app, secret="k", store=store)

    async def fill() -> None:
        await store.write("a", record(None, None), now_ms() + DAY)
        await store.write("b", record(None, None), now_ms() + DAY)
        await store.write("gone", record(None, None), now_ms() - 1_000)
        await store.close()

    asyncio.run(fill())
    runner = app.test_cli_runner()
    assert "PostgresStore: 2 session(s)" in runner.invoke(sessions_cli, ["stats"]).output
    assert "1 expired session(s) deleted" in runner.invoke(sessions_cli, ["purge-expired"]).output
    assert "0 expired" in runner.invoke(sessions_cli, ["purge-expired"]).output
