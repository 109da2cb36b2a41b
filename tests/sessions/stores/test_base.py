"""The storage contract (stores/base.py), held by every store kind: reads, renewals, merges, expiry, scans, the index."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sessions import Store
from sessions.errors import StoreUnavailable
from sessions.expiry import Renewal, iso_from_ms, now_ms
from sessions.record import Change

MINUTE = 60_000
# Redis reports a key's time left (PTTL), which `deadlines` turns back into a moment a little later.
JITTER = 5


def record(expires_ms: int | None = None, *, original: float | None = None, **data: Any) -> bytes:
    """A record in express's layout; `original` is the cookie's originalMaxAge in ms."""
    cookie = {
        "originalMaxAge": original,
        "expires": None if expires_ms is None else iso_from_ms(expires_ms),
        "httpOnly": True,
        "path": "/",
    }
    return json.dumps({"cookie": cookie, **data}, separators=(",", ":")).encode()


def cookie_of(raw: bytes | None) -> dict[str, Any]:
    assert raw is not None
    cookie: dict[str, Any] = json.loads(raw)["cookie"]
    return cookie


def renewal(at: int | None = None, idle: int = MINUTE, anonymous: int | None = None) -> Renewal:
    return Renewal(now_ms() if at is None else at, idle, idle if anonymous is None else anonymous)


# ---------------------------------------------------------------- reading


async def test_a_written_record_loads_back_byte_for_byte(store: Store) -> None:
    raw = record(now_ms() + MINUTE, original=MINUTE, views=1, name="é\u2028\x00")
    await store.write("a", raw, now_ms() + MINUTE)
    assert await store.load("a") == raw
    assert await store.load_many(["a", "nobody", "a"]) == [raw, None, raw]


async def test_a_missing_record_loads_as_none(store: Store) -> None:
    assert await store.load("nobody") is None
    assert await store.load("nobody", renewal()) is None


async def test_a_record_past_its_cookie_expiry_is_gone_even_if_the_store_still_holds_it(
    store: Store,
) -> None:
    """The cookie's expiry is the truth to the millisecond; a store deadline rounded up does not revive it."""
    expires = now_ms() + 150
    await store.write("a", record(expires, original=150), expires + 5_000)
    await asyncio.sleep(0.2)
    assert await store.load("a") is None
    assert await store.load("a", renewal()) is None
    assert await store.load_many(["a"]) == [None]


async def test_a_record_past_its_store_deadline_is_gone(store: Store) -> None:
    await store.write("a", record(), now_ms() + 100)
    await asyncio.sleep(0.15)
    assert await store.load("a") is None
    assert await store.load("a", renewal()) is None
    assert await store.deadlines(["a"]) == [None]


# ---------------------------------------------------------------- renewing


async def test_renewing_a_persistent_cookie_rewrites_only_its_expiry(store: Store) -> None:
    start = now_ms()
    raw = record(start + 5_000, original=MINUTE, views=3, nested={"expires": "keep me"})
    await store.write("a", raw, start + 5_000)
    at = now_ms()
    renewed = await store.load("a", renewal(at))
    assert renewed is not None
    assert cookie_of(renewed)["expires"] == iso_from_ms(at + MINUTE)
    assert renewed == raw.replace(
        iso_from_ms(start + 5_000).encode(), iso_from_ms(at + MINUTE).encode()
    )
    assert await store.load("a") == renewed  # what the store holds, not only what was returned
    [deadline] = await store.deadlines(["a"])
    assert deadline is not None and abs(deadline - (at + MINUTE)) <= JITTER


async def test_renewing_with_a_fractional_original_max_age_floors_to_the_millisecond(
    store: Store,
) -> None:
    await store.write("a", record(now_ms() + 5_000, original=1500.7), now_ms() + 5_000)
    at = now_ms()
    renewed = await store.load("a", renewal(at))
    assert cookie_of(renewed)["expires"] == iso_from_ms(at + 1500)


async def test_renewing_a_browser_session_cookie_restarts_its_idle_time(store: Store) -> None:
    raw = record(views=1)
    await store.write("a", raw, now_ms() + 1_000)
    at = now_ms()
    assert await store.load("a", renewal(at, idle=MINUTE)) == raw
    [deadline] = await store.deadlines(["a"])
    assert deadline is not None and at + MINUTE - 1_000 <= deadline <= at + MINUTE + JITTER


async def test_a_record_without_an_owner_gets_the_anonymous_idle_time(store: Store) -> None:
    await store.write("anonymous", record(views=1), now_ms() + MINUTE)
    await store.write("owned", record(_owner="user:1", views=1), now_ms() + MINUTE)
    at = now_ms()
    for sid in ("anonymous", "owned"):
        await store.load(sid, renewal(at, idle=10 * MINUTE, anonymous=MINUTE))
    short, long = await store.deadlines(["anonymous", "owned"])
    assert short is not None and at + MINUTE - 1_000 <= short <= at + MINUTE + JITTER
    assert long is not None and at + 10 * MINUTE - 1_000 <= long <= at + 10 * MINUTE + JITTER


async def test_renew_without_reading_slides_the_expiry_the_same_way(store: Store) -> None:
    await store.write("a", record(now_ms() + 5_000, original=MINUTE), now_ms() + 5_000)
    at = now_ms()
    await store.renew("a", renewal(at))
    assert cookie_of(await store.load("a"))["expires"] == iso_from_ms(at + MINUTE)
    await store.renew("nobody", renewal(at))
    assert await store.load("nobody") is None


async def test_an_expired_record_is_never_renewed_back_to_life(store: Store) -> None:
    expires = now_ms() + 100
    await store.write("a", record(expires, original=MINUTE), expires + 5_000)
    await asyncio.sleep(0.15)
    await store.renew("a", renewal())
    assert await store.load("a", renewal()) is None
    assert await store.load("a") is None


# ---------------------------------------------------------------- merging


async def test_apply_merges_set_and_deleted_keys_into_the_current_record(store: Store) -> None:
    await store.write("a", record(keep=1, gone=2, changed=3), now_ms() + MINUTE)
    cookie = json.dumps({"originalMaxAge": None, "expires": None, "path": "/x"})
    change = Change(cookie, (("changed", '"new"'), ("added", "[1,2]")), frozenset({"gone"}))
    merged = await store.apply("a", change, now_ms() + MINUTE)
    expected = '{"cookie":' + cookie + ',"keep":1,"changed":"new","added":[1,2]}'
    assert merged == expected.encode()
    assert await store.load("a") == merged


async def test_apply_keeps_the_exact_bytes_of_values_it_does_not_change(store: Store) -> None:
    """A value a Node app wrote (1e21, an escaped character) keeps its spelling."""
    written = b'{"cookie":{"originalMaxAge":null,"expires":null},"big":1e21,"s":"\\u00e9\\n","k\\"q":{"a" : [ 1 ]}}'
    await store.write("a", written, now_ms() + MINUTE)
    merged = await store.apply("a", Change('{"expires":null}', (("n", "1"),)), now_ms() + MINUTE)
    assert (
        merged
        == b'{"cookie":{"expires":null},"big":1e21,"s":"\\u00e9\\n","k\\"q":{"a" : [ 1 ]},"n":1}'
    )


async def test_apply_to_a_missing_record_creates_nothing(store: Store) -> None:
    assert await store.apply("gone", Change("{}", (("a", "1"),)), now_ms() + MINUTE) is None
    assert await store.load("gone") is None
    assert [sid async for batch in store.scan() for sid in batch] == []


async def test_apply_to_a_deleted_record_never_resurrects_it(store: Store) -> None:
    await store.write("a", record(views=1), now_ms() + MINUTE)
    await store.delete("a")
    assert await store.apply("a", Change("{}", (("views", "2"),)), now_ms() + MINUTE) is None
    assert await store.load("a") is None


async def test_apply_to_an_expired_record_never_resurrects_it(store: Store) -> None:
    expires = now_ms() + 100
    await store.write("a", record(expires, original=100), expires + 5_000)
    await asyncio.sleep(0.15)
    change = Change('{"expires":null}', (("views", "2"),))
    assert await store.apply("a", change, now_ms() + MINUTE) is None
    assert await store.load("a") is None


async def test_a_hundred_parallel_merges_of_different_keys_all_persist(store: Store) -> None:
    await store.write("a", record(start=1), now_ms() + MINUTE)
    changes = [Change('{"expires":null}', ((f"k{n}", str(n)),)) for n in range(100)]
    results = await asyncio.gather(*(store.apply("a", c, now_ms() + MINUTE) for c in changes))
    assert all(result is not None for result in results)
    stored = json.loads(await store.load("a") or b"")
    assert {f"k{n}": n for n in range(100)}.items() <= stored.items()
    assert stored["start"] == 1


async def test_apply_sets_the_new_deadline(store: Store) -> None:
    await store.write("a", record(), now_ms() + MINUTE)
    at = now_ms()
    await store.apply("a", Change('{"expires":null}'), at + 10 * MINUTE)
    [deadline] = await store.deadlines(["a"])
    assert (
        deadline is not None and at + 10 * MINUTE - 1_000 <= deadline <= at + 10 * MINUTE + JITTER
    )


# ---------------------------------------------------------------- store-wide


async def test_scan_lists_every_live_id_in_bounded_batches(store: Store) -> None:
    for n in range(25):
        await store.write(f"id{n}", record(), now_ms() + MINUTE)
    await store.write("dead", record(), now_ms() + 50)
    await asyncio.sleep(0.1)
    batches = [batch async for batch in store.scan(batch=10)]
    seen = [sid for batch in batches for sid in batch]
    assert {f"id{n}" for n in range(25)} <= set(seen) <= {f"id{n}" for n in range(25)} | {"dead"}
    assert len(batches) >= 2


async def test_purge_expired_leaves_live_records(store: Store) -> None:
    await store.write("live", record(), now_ms() + MINUTE)
    await store.write("dead", record(), now_ms() + 50)
    await asyncio.sleep(0.1)
    await store.purge_expired()
    assert await store.load("live") is not None
    assert await store.ids() == ["live"]


async def test_delete_removes_several_records_and_ignores_missing_ones(store: Store) -> None:
    for sid in ("a", "b", "c"):
        await store.write(sid, record(), now_ms() + MINUTE)
    await store.delete("a", "b", "nobody")
    assert await store.ids() == ["c"]
    await store.delete()


async def test_deadlines_are_none_for_records_that_never_expire_or_are_missing(
    store: Store,
) -> None:
    await store.write("forever", record(), None)
    assert await store.deadlines(["forever", "nobody"]) == [None, None]
    assert await store.load("forever") is not None


# ---------------------------------------------------------------- express's store API


async def test_express_api_round_trip(store: Store) -> None:
    data = {"cookie": {"originalMaxAge": MINUTE, "expires": iso_from_ms(now_ms() + MINUTE)}, "a": 1}
    await store.set("x", data)
    await store.set("y", {"cookie": {"originalMaxAge": None, "expires": None}, "b": 2})
    assert await store.get("x") == data
    assert await store.length() == 2
    assert await store.ids() == ["x", "y"]
    assert set(await store.all()) == {"x", "y"}
    await store.touch("x", data)
    touched = await store.get("x")
    assert touched is not None and touched["cookie"]["expires"] >= data["cookie"]["expires"]
    await store.destroy("x")
    assert await store.get("x") is None
    await store.clear()
    assert await store.length() == 0


async def test_set_with_an_expired_cookie_deletes_the_record(store: Store) -> None:
    await store.set("x", {"cookie": {"expires": None}, "a": 1})
    await store.set("x", {"cookie": {"originalMaxAge": 1, "expires": iso_from_ms(now_ms() - 1)}})
    assert await store.get("x") is None


# ---------------------------------------------------------------- the owner index and health


async def test_the_owner_index_adds_removes_and_lists(store: Store) -> None:
    await store.index_add("user:1", "a")
    await store.index_add("user:1", "b")
    await store.index_add("user:2", "c")
    await store.index_remove("user:1", "a", "nobody")
    assert await store.index_members("user:1") == ["b"]
    assert await store.index_members("user:3") == []


async def test_ping_passes_on_a_working_store(store: Store) -> None:
    await store.ping()


@pytest.mark.parametrize("method", ["load", "write", "apply", "delete", "ping"])
async def test_failures_are_store_unavailable_never_a_raw_error(
    unreachable_store: Store, method: str
) -> None:
    calls = {
        "load": lambda: unreachable_store.load("a", renewal()),
        "write": lambda: unreachable_store.write("a", record(), now_ms() + MINUTE),
        "apply": lambda: unreachable_store.apply("a", Change("{}"), now_ms() + MINUTE),
        "delete": lambda: unreachable_store.delete("a"),
        "ping": unreachable_store.ping,
    }
    with pytest.raises(StoreUnavailable):
        await calls[method]()
