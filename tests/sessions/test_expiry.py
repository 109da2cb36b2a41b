"""The expiry rule: a persistent cookie's moment to the millisecond, else an idle time; and renewal."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from sessions.expiry import (
    Renewal,
    deadline,
    effective_deadline,
    is_expired,
    iso_from_ms,
    ms_from_iso,
    record_deadline,
    renew_record,
    with_expiry,
)

NOW = 1_800_000_000_000


def record(expires: int | None, original: float | None = None, **data: object) -> bytes:
    cookie = {
        "originalMaxAge": original,
        "expires": None if expires is None else iso_from_ms(expires),
    }
    return json.dumps({"cookie": cookie, **data}, separators=(",", ":")).encode()


@given(st.integers(0, 253402300799999))
def test_iso_instants_round_trip_through_milliseconds(ms: int) -> None:
    text = iso_from_ms(ms)
    assert len(text) == 24 and text.endswith("Z")
    assert ms_from_iso(text) == ms


def test_iso_parsing_takes_what_node_and_python_write_and_rejects_the_rest() -> None:
    assert ms_from_iso(iso_from_ms(NOW)) == NOW
    assert ms_from_iso("1970-01-01T00:00:01.500Z") == 1500
    assert ms_from_iso("1970-01-01T00:00:01.5+00:00") == 1500
    assert ms_from_iso("1970-01-01T00:00:01") == 1000  # naive means UTC
    assert ms_from_iso("not a date") is None


def test_the_rule_is_the_cookies_expiry_else_the_idle_time_shorter_without_an_owner() -> None:
    assert deadline(NOW, NOW + 5, True, 1000, 10) == NOW + 5
    assert deadline(NOW, None, True, 1000, 10) == NOW + 1000
    assert deadline(NOW, None, False, 1000, 10) == NOW + 10
    assert record_deadline(record(None, _owner="u").decode(), NOW, 1000, 10) == NOW + 1000
    assert record_deadline(record(None).decode(), NOW, 1000, 10) == NOW + 10
    assert record_deadline(record(NOW + 7, 9).decode(), NOW, 1000, 10) == NOW + 7


def test_renewing_moves_a_persistent_cookies_expiry_and_nothing_else() -> None:
    raw = record(NOW + 5, 60_000.9, views=1)
    renewed = renew_record(raw, Renewal(NOW, 1000, 10))
    assert renewed == (
        raw.replace(iso_from_ms(NOW + 5).encode(), iso_from_ms(NOW + 60_000).encode()),
        NOW + 60_000,
    )


def test_renewing_a_browser_session_cookie_restarts_its_idle_time_only() -> None:
    raw = record(None, views=1)
    assert renew_record(raw, Renewal(NOW, 1000, 10)) == (raw, NOW + 10)
    owned = record(None, _owner="user:1")
    assert renew_record(owned, Renewal(NOW, 1000, 10)) == (owned, NOW + 1000)


def test_an_expired_record_is_not_renewed_and_an_unreadable_one_is_left_to_the_engine() -> None:
    assert renew_record(record(NOW, 60_000), Renewal(NOW, 1000, 1000)) is None
    assert renew_record(b"{broken", Renewal(NOW, 1000, 1000)) == (b"{broken", None)


def test_expired_means_at_or_before_the_cookies_expiry_to_the_millisecond() -> None:
    assert is_expired(record(NOW), NOW)
    assert not is_expired(record(NOW + 1), NOW)
    assert not is_expired(record(None), NOW)


def test_a_store_deadline_never_outlives_the_cookie() -> None:
    assert effective_deadline(record(NOW + 5), NOW + 1000) == NOW + 5
    assert effective_deadline(record(NOW + 5), None) == NOW + 5
    assert effective_deadline(record(NOW + 5), NOW + 1) == NOW + 1
    assert effective_deadline(record(None), NOW + 1000) == NOW + 1000


def test_stamping_an_expiry_changes_only_those_characters_even_with_spaces() -> None:
    spaced = (
        b'{"cookie" : {"originalMaxAge": 1, "expires" : "1970-01-01T00:00:00.000Z"}, "expires": 5}'
    )
    assert with_expiry(spaced, 1) == spaced.replace(b"00.000Z", b"00.001Z")
    assert with_expiry(record(None), 1) == record(None)
