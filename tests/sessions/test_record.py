"""The stored record as text: its layout, its top-level members, and the merge of one request's change."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessions.record import Change, change_between, dump_record, fields, merge_record, parse_record

COOKIE = '{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"}'


def test_a_record_is_the_cookie_first_then_the_owner_then_the_data() -> None:
    assert dump_record(COOKIE, "user:1", '{"a":1,"b":[2]}') == (
        b'{"cookie":' + COOKIE.encode() + b',"_owner":"user:1","a":1,"b":[2]}'
    )
    assert dump_record(COOKIE, None, "{}") == b'{"cookie":' + COOKIE.encode() + b"}"


def test_parsing_takes_the_record_apart_and_refuses_what_is_not_one() -> None:
    parsed = parse_record(b'{"cookie":{"path":"/"},"_owner":"user:1","a":1}')
    assert parsed is not None
    assert (parsed.cookie, parsed.owner, parsed.data) == ({"path": "/"}, "user:1", {"a": 1})
    for broken in (b"{", b"[]", b'{"a":1}', b'{"cookie":"x"}', b"\xff", b'{"cookie":{},"n":NaN}'):
        assert parse_record(broken) is None, broken
    assert parse_record(b'{"cookie":{},"_owner":7}').owner is None  # type: ignore[union-attr]


def test_fields_give_each_members_exact_text_in_order() -> None:
    text = '{ "cookie" : {"a":"}"} , "k\\"q":1e21,"s":"\\u00e9" }'
    found = [(f.key, f.key_text, f.value_text) for f in fields(text)]
    assert found == [
        ("cookie", '"cookie"', '{"a":"}"}'),
        ('k"q', '"k\\"q"', "1e21"),
        ("s", '"s"', '"\\u00e9"'),
    ]
    assert all(text[f.start : f.start + len(f.value_text)] == f.value_text for f in fields(text))
    for broken in ("[]", '{"a"}', '{"a":1,}', '{"a":1 "b":2}'):
        with pytest.raises(ValueError):
            fields(broken)


def test_a_merge_keeps_untouched_bytes_replaces_set_keys_and_appends_new_ones() -> None:
    current = b'{"cookie":{"old":1},"keep":1e21,"set":1,"gone":2}'
    change = Change('{"new":1}', (("set", '"x"'), ("added", "[]")), frozenset({"gone", "missing"}))
    assert merge_record(current, change) == b'{"cookie":{"new":1},"keep":1e21,"set":"x","added":[]}'


def test_the_change_between_two_states_is_the_keys_set_and_deleted() -> None:
    base = '{"same":[1,2],"changed":1,"gone":true,"big":1e21}'
    change = change_between(
        base, "user:1", COOKIE, None, {"same": [1, 2], "changed": 2, "big": 1e21, "new": "é"}
    )
    assert change.cookie == COOKIE
    assert dict(change.assign) == {"changed": "2", "new": '"é"'}  # 1e21 is the same number
    assert change.remove == {"gone", "_owner"}


json_data = st.dictionaries(
    st.text(max_size=5).filter(lambda k: k not in ("cookie", "_owner")),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                 max_leaves=5),
    max_size=5,
)  # fmt: skip


@given(before=json_data, after=json_data)
def test_merging_the_change_into_the_base_gives_the_new_state(
    before: dict[str, object], after: dict[str, object]
) -> None:
    before_text = json.dumps(before, separators=(",", ":"), ensure_ascii=False)
    base = dump_record(COOKIE, None, before_text)
    merged = merge_record(base, change_between(before_text, None, COOKIE, None, after))
    parsed = parse_record(merged)
    assert parsed is not None and parsed.data == after


@given(before=json_data, ours=json_data, theirs=json_data)
def test_a_merge_on_top_of_another_writers_record_keeps_their_keys_unless_ours_changed(
    before: dict[str, object], ours: dict[str, object], theirs: dict[str, object]
) -> None:
    def text(data: dict[str, object]) -> bytes:
        return dump_record(
            COOKIE, None, json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        )

    before_text = json.dumps(before, separators=(",", ":"), ensure_ascii=False)
    change = change_between(before_text, None, COOKIE, None, ours)
    merged = parse_record(merge_record(text(theirs), change))
    assert merged is not None
    for key, value in merged.data.items():
        assert value == (ours[key] if key in dict(change.assign) else theirs[key])
    assert change.remove.isdisjoint(merged.data)
