"""The Lua that runs inside Redis equals the Python rules it mirrors, on random records."""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions import RedisStore
from sessions.expiry import Renewal, iso_from_ms, now_ms, renew_record
from sessions.record import Change, merge_record

BASE = now_ms()  # fixed for the module: hypothesis must draw the same values when it replays


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
# How other writers spell JSON: Node's 1e21, escaped characters, spaces a hand edit leaves.
node_spellings = st.sampled_from(["1e21", '"\\u00e9\\n"', '{"a" : [ 1 , 2 ]}', "-0.0", '"}{\\""'])
keys = st.text(min_size=1, max_size=8).filter(lambda key: key not in ("cookie",))


def value_texts() -> st.SearchStrategy[str]:
    return (
        json_values.map(lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")))
        | node_spellings
    )


@st.composite
def records(draw: st.DrawFn) -> bytes:
    expires = draw(st.none() | st.integers(BASE + 600_000, BASE + 10**9))
    cookie = {
        "originalMaxAge": None
        if expires is None
        else draw(st.integers(1, 10**9) | st.floats(1, 1e9)),
        "expires": None if expires is None else iso_from_ms(expires),
        "httpOnly": True,
        "path": draw(st.sampled_from(["/", "/a}b", '/q"x'])),
    }
    members = draw(st.dictionaries(keys, value_texts(), max_size=6))
    if draw(st.booleans()):
        members["_owner"] = json.dumps(draw(st.text(max_size=8)))
    body = "".join(
        f",{json.dumps(k, ensure_ascii=draw(st.booleans()))}:{v}" for k, v in members.items()
    )
    return ('{"cookie":' + json.dumps(cookie, separators=(",", ":")) + body + "}").encode()


@st.composite
def changes(draw: st.DrawFn) -> Change:
    assign = tuple(draw(st.dictionaries(keys, value_texts(), max_size=4)).items())
    remove = frozenset(draw(st.sets(keys, max_size=3))) - {key for key, _ in assign}
    return Change('{"originalMaxAge":null,"expires":null}', assign, remove)


SLOW = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def test_the_merge_script_equals_the_python_merge(redis_url: str, key_prefix: str) -> None:
    store = RedisStore.from_url(redis_url, prefix=key_prefix)

    @SLOW
    @given(current=records(), change=changes())
    def check(current: bytes, change: Change) -> None:
        async def run() -> bytes | None:
            await store.write("m", current, now_ms() + 60_000)
            return await store.apply("m", change, now_ms() + 60_000)

        assert asyncio.run(run()) == merge_record(current, change)

    check()


def test_the_renewal_script_equals_the_python_renewal(redis_url: str, key_prefix: str) -> None:
    store = RedisStore.from_url(redis_url, prefix=key_prefix)

    @SLOW
    @given(current=records(), idle=st.integers(1_000, 10**8), anonymous=st.integers(1_000, 10**8))
    def check(current: bytes, idle: int, anonymous: int) -> None:
        async def run() -> tuple[bytes | None, int | None, int]:
            await store.write("r", current, now_ms() + 60_000)
            renewal = Renewal(now_ms(), idle, anonymous)
            renewed = await store.load("r", renewal)
            [deadline] = await store.deadlines(["r"])
            return renewed, deadline, renewal.now_ms

        renewed, deadline, at = asyncio.run(run())
        expected = renew_record(current, Renewal(at, idle, anonymous))
        assert expected is not None and expected[1] is not None
        assert renewed == expected[0]
        assert deadline is not None and abs(deadline - expected[1]) <= 5

    check()
