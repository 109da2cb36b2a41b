"""PostgresStore on a real PostgreSQL: connect-pg-simple's table, one statement per read, merges
on the server, expired rows never returned nor written back, pruning, bounded failures."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions.errors import StoreUnavailable
from sessions.stores.contract import Change, Renewal, deadline_of, merge_record, renew_record
from sessions.stores.postgres import PostgresStore
from sessions.stores.postgres_sql import iso_from_ms
from tests.postgres_db import count_round_trips, postgres_url, scratch_database  # noqa: F401

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def express_record(expires_ms: int | None, max_age_ms: int | float | None = 60_000, **data: object) -> bytes:
    """A record as express-session + connect-pg-simple write it."""
    expires = None if expires_ms is None else iso_from_ms(expires_ms)
    cookie = {"originalMaxAge": max_age_ms, "expires": expires, "httpOnly": True, "path": "/"}
    return json.dumps({"cookie": cookie, **data}, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:  # noqa: F811
    store = PostgresStore.from_url(postgres_url, prune_interval=None)
    await store.ping()  # creates the table
    yield store
    await store.close()


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:  # noqa: F811
    """A plain connection to the test's database, to look at the rows behind the store's back."""
    connection = await asyncpg.connect(postgres_url)
    yield connection
    await connection.close()


async def stored(db: asyncpg.Connection, sid: str) -> tuple[str, int | None] | None:
    """The row's `sess` text and `expire` in epoch ms (None: infinity)."""
    row = await db.fetchrow(
        "SELECT sess::text, CASE WHEN isfinite(expire) THEN"
        " (extract(epoch FROM expire::timestamptz) * 1000)::bigint END FROM session WHERE sid = $1",
        sid,
    )
    return None if row is None else (row[0], row[1])


async def test_the_table_is_connect_pg_simples_created_only_when_missing(
    store: PostgresStore, db: asyncpg.Connection
) -> None:
    await store.ping()
    columns = await db.fetch(
        "SELECT column_name, data_type, datetime_precision, is_nullable FROM information_schema.columns"
        " WHERE table_name = 'session' ORDER BY ordinal_position"
    )
    assert [tuple(c) for c in columns] == [
        ("sid", "character varying", None, "NO"),
        ("sess", "json", None, "NO"),
        ("expire", "timestamp without time zone", 6, "NO"),
    ]
    indexes = dict(
        await db.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'session'")
    )
    assert indexes["session_pkey"].endswith("USING btree (sid)")
    assert indexes["IDX_session_expire"].endswith("USING btree (expire)")
    assert set(indexes) == {"session_pkey", "IDX_session_expire", "IDX_session_owner"}
    pkey = await db.fetchval(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'session'::regclass AND contype = 'p'"
    )
    assert pkey == "session_pkey"


async def test_an_existing_table_is_used_as_it_is_and_a_schema_can_be_named(
    postgres_url: str,  # noqa: F811
    db: asyncpg.Connection,
) -> None:
    await db.execute("CREATE SCHEMA app")
    await db.execute(
        'CREATE TABLE app.sessions (sid varchar PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL, note text DEFAULT \'node\')'
    )
    store = PostgresStore.from_url(postgres_url, table="sessions", schema="app", prune_interval=None)
    try:
        await store.write("a", express_record(now_ms() + 60_000), now_ms() + 60_000)
        assert await db.fetchval("SELECT note FROM app.sessions WHERE sid = 'a'") == "node"
        assert await db.fetchval("SELECT to_regclass('public.session')") is None
    finally:
        await store.close()


async def test_load_returns_live_records_and_never_expired_ones(
    store: PostgresStore, db: asyncpg.Connection
) -> None:
    now = now_ms()
    await store.write("live", express_record(now + 60_000, views=1), now + 60_000)
    await store.write("browser", express_record(None, None, views=2), now + 60_000)
    await store.write("gone", express_record(now + 60_000), now - 1000)
    # The row's `expire` is still ahead (whole seconds, rounded up), its cookie expired 1 ms ago.
    await store.write("cookie-expired", express_record(now - 1), now + 60_000)
    assert await store.load("live") == express_record(now + 60_000, views=1)
    assert await store.load("browser") == express_record(None, None, views=2)
    assert await store.load("gone") is None
    assert await store.load("cookie-expired") is None
    assert await store.load("missing") is None
    assert await store.load_many(["gone", "live", "missing", "browser"]) == [
        None,
        express_record(now + 60_000, views=1),
        None,
        express_record(None, None, views=2),
    ]
    renewal = Renewal(now_ms(), DAY_MS, HOUR_MS)
    before = await stored(db, "cookie-expired")
    assert await store.load("cookie-expired", renewal) is None
    assert await stored(db, "cookie-expired") == before, "an expired row was renewed"


async def test_a_read_renews_in_one_statement_splicing_only_the_24_characters(
    store: PostgresStore, db: asyncpg.Connection
) -> None:
    now = now_ms()
    raw = express_record(now + 5_000, 3_600_000.5, user={"name": "Zoë", "n": 1e21}, list=[1, 2.5])
    await store.write("a", raw, now + 5_000)
    renewal = Renewal(now + 1_000, DAY_MS, HOUR_MS)
    renewed = await store.load("a", renewal)
    expected = raw.replace(
        iso_from_ms(now + 5_000).encode(), iso_from_ms(now + 1_000 + 3_600_000).encode()
    )
    assert renewed == expected
    assert await stored(db, "a") == (expected.decode(), deadline_of(now + 1_000 + 3_600_000))

    owned = express_record(None, None, _owner="user:1")
    anonymous = express_record(None, None)
    await store.write("owned", owned, now + 1_000)
    await store.write("anonymous", anonymous, now + 1_000)
    await store.renew("owned", renewal)
    await store.renew("anonymous", renewal)
    assert await stored(db, "owned") == (owned.decode(), deadline_of(now + 1_000 + DAY_MS))
    assert await stored(db, "anonymous") == (anonymous.decode(), deadline_of(now + 1_000 + HOUR_MS))


# Values as Node writes them (JSON.stringify), besides what Python's encoder writes.
NODE_VALUE_TEXTS = st.sampled_from(
    ["1e+21", "10000000000000000", "5e-7", "-0", "0.1", '"\u2028"', '"\\u0001"', '"Zoë 🎉"',
     '{"a":{"b":[1,{"c":null}]}}', "[]", "{}", "true", '"\\"quoted\\""']
)  # fmt: skip
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
VALUE_TEXTS = NODE_VALUE_TEXTS | JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=False))
KEYS = st.sampled_from(["views", "user", "_owner", "cart", "é", 'a"b', "x", "y", ""])


@st.composite
def records(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A record as express or we write it, and its row's deadline, around a fixed 'now'."""
    now = 1_800_000_000_000
    expires = draw(st.none() | st.integers(now - 5_000, now + 10 * DAY_MS))
    max_age = draw(
        st.none() | st.integers(-DAY_MS, 400 * DAY_MS) | st.floats(0, 1e7) | st.just(1e21)
    )
    members = draw(st.lists(st.tuples(KEYS, VALUE_TEXTS), max_size=5, unique_by=lambda m: m[0]))
    cookie = json.dumps(
        {
            "originalMaxAge": max_age,
            "expires": None if expires is None else iso_from_ms(expires),
            "httpOnly": True,
            "path": "/",
        },
        separators=(",", ":"),
    )
    body = "".join(f",{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in members)
    deadline = draw(st.none() | st.integers(now - 5_000, now + 10 * DAY_MS).map(deadline_of))
    return ('{"cookie":' + cookie + body + "}").encode(), deadline


@st.composite
def changes(draw: st.DrawFn) -> Change:
    cookie = json.dumps({"originalMaxAge": draw(st.integers(0, DAY_MS)), "expires": None})
    assign = draw(st.lists(st.tuples(KEYS, VALUE_TEXTS), max_size=4, unique_by=lambda m: m[0]))
    remove = draw(st.frozensets(KEYS, max_size=3))
    return Change(cookie, tuple(assign), remove)


async def put_row(db: asyncpg.Connection, sid: str, raw: bytes, deadline: int | None) -> None:
    await db.execute(
        "INSERT INTO session VALUES ($1, $2::text::json,"
        " coalesce(to_timestamp($3::bigint / 1000.0), 'infinity'))"
        " ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire",
        sid,
        raw.decode(),
        deadline,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=records(), owned_idle=st.integers(1, DAY_MS), anonymous_idle=st.integers(1, DAY_MS))
async def test_the_renewal_equals_the_python_reference(
    store: PostgresStore,
    db: asyncpg.Connection,
    case: tuple[bytes, int | None],
    owned_idle: int,
    anonymous_idle: int,
) -> None:
    raw, deadline = case
    await put_row(db, "r", raw, deadline)
    renewal = Renewal(1_800_000_000_000, owned_idle, anonymous_idle)
    expected = renew_record(raw, deadline, renewal)
    got = await store.load("r", renewal)
    if expected is None:
        assert got is None
        assert await stored(db, "r") == (raw.decode(), deadline)
    else:
        assert got == expected[0]
        assert await stored(db, "r") == (expected[0].decode(), expected[1])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=records(), change=changes(), expires=st.none() | st.integers(0, 10 * DAY_MS))
async def test_the_merge_equals_the_python_reference(
    store: PostgresStore,
    db: asyncpg.Connection,
    case: tuple[bytes, int | None],
    change: Change,
    expires: int | None,
) -> None:
    raw, _ = case
    await put_row(db, "m", raw, None)
    expires_ms = None if expires is None else now_ms() + expires
    merged = await store.apply("m", change, expires_ms)
    if raw.decode().count('"expires":"') and json.loads(raw)["cookie"]["expires"] <= iso_from_ms(now_ms()):
        assert merged is None  # its cookie has expired: never written back
        return
    assert merged == merge_record(raw, change)
    assert await stored(db, "m") == (merged.decode(), deadline_of(expires_ms))


async def test_fifty_parallel_merges_of_different_keys_all_persist(postgres_url: str) -> None:  # noqa: F811
    store = PostgresStore.from_url(postgres_url, prune_interval=None, pool_size=20)
    try:
        now = now_ms()
        await store.write("a", express_record(now + DAY_MS, DAY_MS, kept="yes"), now + DAY_MS)
        cookie = json.dumps({"originalMaxAge": DAY_MS, "expires": iso_from_ms(now + DAY_MS)})
        results = await asyncio.gather(
            *(
                store.apply("a", Change(cookie, ((f"n{n}", str(n)),)), now + DAY_MS)
                for n in range(50)
            )
        )
        assert all(result is not None for result in results)
        final = json.loads(await store.load("a") or b"null")
        assert final["kept"] == "yes"
        assert {key: final[key] for key in final if key.startswith("n")} == {
            f"n{n}": n for n in range(50)
        }
    finally:
        await store.close()


async def test_a_deleted_or_expired_row_is_never_written_back(
    store: PostgresStore, db: asyncpg.Connection
) -> None:
    now = now_ms()
    change = Change('{"originalMaxAge":null,"expires":null}', (("views", "2"),))
    await store.write("deleted", express_record(None, None), now + DAY_MS)
    await store.delete("deleted", "never-existed")
    assert await store.apply("deleted", change, now + DAY_MS) is None
    assert await stored(db, "deleted") is None
    await store.write("expired", express_record(None, None), now - 2000)
    assert await store.apply("expired", change, now + DAY_MS) is None
    assert await stored(db, "expired") == (express_record(None, None).decode(), deadline_of(now - 2000))
    await store.renew("deleted", Renewal(now, DAY_MS, DAY_MS))
    assert await stored(db, "deleted") is None


async def test_a_destroy_during_parallel_merges_wins(store: PostgresStore, db: asyncpg.Connection) -> None:
    now = now_ms()
    await store.write("a", express_record(None, None), now + DAY_MS)
    change = Change('{"originalMaxAge":null,"expires":null}', (("views", "1"),))
    merges = [store.apply("a", change, now + DAY_MS) for _ in range(20)]
    await asyncio.gather(*merges[:10], store.delete("a"), *merges[10:])
    assert await stored(db, "a") is None


async def test_scan_pages_through_live_ids_in_bounded_batches(store: PostgresStore) -> None:
    now = now_ms()
    for n in range(23):
        await store.write(f"s{n:02}", express_record(None, None), now + DAY_MS)
    await store.write("expired", express_record(None, None), now - 1000)
    pages = [page async for page in store.scan(batch=5)]
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert sorted(sid for page in pages for sid in page) == [f"s{n:02}" for n in range(23)]


async def test_deadlines_are_the_cookies_expiry_to_the_ms_else_the_rows(store: PostgresStore) -> None:
    now = now_ms()
    await store.write("cookie", express_record(now + 60_123), now + 60_123)
    await store.write("browser", express_record(None, None), now + 60_123)
    await store.write("never", express_record(None, None), None)
    assert await store.deadlines(["cookie", "browser", "never", "missing"]) == [
        now + 60_123,
        deadline_of(now + 60_123),
        None,
        None,
    ]


async def test_the_owner_index_lists_a_users_sessions_through_the_expression_index(
    store: PostgresStore, db: asyncpg.Connection
) -> None:
    now = now_ms()
    for sid, owner in [("a", "user:1"), ("b", "user:1"), ("c", "user:2"), ("d", None)]:
        data = {} if owner is None else {"_owner": owner}
        await store.write(sid, express_record(None, None, **data), now + DAY_MS)
    await store.index_add("user:1", "a")
    assert await store.index_members("user:1") == ["a", "b"]
    await store.apply("b", Change("{}", remove=frozenset({"_owner"})), now + DAY_MS)
    assert await store.index_members("user:1") == ["a"]
    await db.execute("SET enable_seqscan = off")
    plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN " + store.sql.owned, "user:1"))
    assert "IDX_session_owner" in plan


async def test_purge_deletes_expired_rows_in_batches_one_instance_at_a_time(
    postgres_url: str,  # noqa: F811
    db: asyncpg.Connection,
) -> None:
    async with count_round_trips(postgres_url) as (url, trips):
        store = PostgresStore.from_url(url, prune_interval=None, prune_batch=10)
        other = PostgresStore.from_url(postgres_url, prune_interval=None)
        try:
            now = now_ms()
            for n in range(35):
                await store.write(f"old{n}", express_record(None, None), now - 2000)
            await store.write("live", express_record(None, None), now + DAY_MS)
            lock = await db.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended('sessions prune ' || $1, 0))",
                store.sql.name,
            )
            assert lock
            assert await other.purge_expired() == 0, "a second pruner ran while one held the lock"
            assert await db.fetchval("SELECT count(*) FROM session") == 36
            await db.execute("SELECT pg_advisory_unlock_all()")
            trips.take()
            assert await store.purge_expired() == 35
            deletes = [s for s in trips.statements if s.startswith("DELETE")]
            assert len(deletes) <= 1  # prepared once, then executed per batch
            assert trips.take() >= 4 + 2  # four batches of at most 10, the lock and its release
            assert await db.fetchval("SELECT array_agg(sid) FROM session") == ["live"]
        finally:
            await store.close()
            await other.close()


async def test_expired_rows_are_pruned_in_the_background(postgres_url: str, db: asyncpg.Connection) -> None:  # noqa: F811
    store = PostgresStore.from_url(postgres_url, prune_interval=0.2)
    try:
        await store.write("old", express_record(None, None), now_ms() - 2000)
        deadline = time.monotonic() + 10
        while await db.fetchval("SELECT count(*) FROM session"):
            assert time.monotonic() < deadline, "the expired row was never pruned"
            await asyncio.sleep(0.05)
    finally:
        await store.close()


async def test_round_trips_a_renewing_read_is_one_and_a_changed_session_two(
    postgres_url: str,  # noqa: F811
) -> None:
    """Counted on the wire (a proxy in front of the server), once statements are prepared."""
    async with count_round_trips(postgres_url) as (url, trips):
        store = PostgresStore.from_url(url, prune_interval=None, pool_size=1)
        try:
            now = now_ms()
            renewal = Renewal(now, DAY_MS, DAY_MS)
            change = Change('{"originalMaxAge":null,"expires":null}', (("views", "2"),))
            await store.write("a", express_record(None, None), now + DAY_MS)
            for _ in range(2):  # prepare each statement on the pool's one connection
                await store.load("a", renewal)
                await store.apply("a", change, now + DAY_MS)
            trips.take()
            await store.load("a", renewal)
            assert trips.take() == 1
            await store.load("a", renewal)
            await store.apply("a", change, now + DAY_MS)
            assert trips.take() == 2
        finally:
            await store.close()


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
    postgres_url: str,  # noqa: F811
    db: asyncpg.Connection,
) -> None:
    store = PostgresStore.from_url(
        postgres_url, prune_interval=None, pool_size=1, acquire_timeout=0.2, statement_timeout=1.0
    )
    try:
        now = now_ms()
        await store.write("a", express_record(None, None), now + DAY_MS)
        change = Change('{"originalMaxAge":null,"expires":null}', (("views", "2"),))
        # Another client holds the row: the merge waits for its lock until statement_timeout.
        async with db.transaction():
            await db.execute("SELECT 1 FROM session WHERE sid = 'a' FOR UPDATE")
            started = time.monotonic()
            slow = asyncio.ensure_future(store.apply("a", change, now + DAY_MS))
            await asyncio.sleep(0.05)
            with pytest.raises(StoreUnavailable):  # the pool's one connection is busy
                await store.load("a")
            with pytest.raises(StoreUnavailable):
                await slow
            assert time.monotonic() - started < 3
        assert await store.apply("a", change, now + DAY_MS) is not None  # and it recovers
    finally:
        await store.close()


async def test_ping_fails_on_a_read_only_database(postgres_url: str, db: asyncpg.Connection) -> None:  # noqa: F811
    store = PostgresStore.from_url(postgres_url, prune_interval=None)
    try:
        await store.ping()
        database = await db.fetchval("SELECT current_database()")
        await db.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        await store.close()  # new connections pick up the setting
        with pytest.raises(StoreUnavailable):
            await store.ping()
    finally:
        await store.close()


def test_a_store_made_by_from_url_works_in_one_event_loop_after_another() -> None:
    async def use(url: str, store: PostgresStore, sid: str) -> bytes | None:
        await store.write(sid, express_record(None, None), now_ms() + DAY_MS)
        found = await store.load(sid)
        await store.close()
        return found

    async def main() -> None:
        async with scratch_database() as url:
            store = PostgresStore.from_url(url, prune_interval=None)
            # asyncpg pools belong to one loop: a second loop (a CLI command) gets its own.
            assert await asyncio.to_thread(asyncio.run, use(url, store, "a")) is not None
            assert await asyncio.to_thread(asyncio.run, use(url, store, "b")) is not None
            assert await use(url, store, "c") is not None

    asyncio.run(main())
