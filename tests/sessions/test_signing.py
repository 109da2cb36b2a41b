"""Unit tests of sessions/signing.py: cookie-signature's values and the `cookie` package's parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

import pytest

from sessions.signing import encode_cookie_value, read_cookie, sign, unsign

SECRET = b"keyboard cat"
# (sid, Set-Cookie value) from express-session's own tests.
VECTORS = [
    ("apple", "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"),
    ("%", "s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g"),
    ("/foo", "s%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ"),
]


def mac_of(sid: str, secret: bytes) -> str:
    digest = hmac.new(secret, sid.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode().rstrip("=")


# ---------------------------------------------------------------- sign / unsign


def test_sign_gives_cookie_signature_value() -> None:
    """sign('apple') is s:apple.<unpadded standard base64 HMAC-SHA256>, as cookie-signature writes it."""
    assert sign("apple", SECRET) == "s:apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU"


@pytest.mark.parametrize(("sid", "value"), VECTORS)
def test_encode_cookie_value_matches_express_vectors(sid: str, value: str) -> None:
    """The Set-Cookie value for apple, % and /foo is byte-for-byte express's."""
    assert encode_cookie_value(sid, SECRET) == value


@pytest.mark.parametrize("sid", ["apple", "%", "/foo", "a.b.c", "ünïcode"])
def test_unsign_returns_the_id_of_a_value_it_signed(sid: str) -> None:
    """unsign(sign(sid)) is sid, including ids with dots (split at the last one) and non-ASCII."""
    assert unsign(sign(sid, SECRET), [SECRET]) == sid


def test_signature_is_independent_hmac_sha256() -> None:
    """The mac part is HMAC-SHA256 of the id under the secret, base64 without padding."""
    sid = "R8XZ5tYBjH0x8Q3Hf4xq1d3bq9nUoGqv"
    assert sign(sid, b"s3cret") == f"s:{sid}.{mac_of(sid, b's3cret')}"
    assert "=" not in sign(sid, b"s3cret")


def test_rotation_first_secret_signs_and_every_secret_verifies() -> None:
    """With [new, old], a value signed by old verifies; with [old] alone, one signed by new does not."""
    sid = "rotating-session-id"
    assert unsign(sign(sid, b"old"), [b"new", b"old"]) == sid
    assert unsign(sign(sid, b"new"), [b"new", b"old"]) == sid
    assert unsign(sign(sid, b"new"), [b"old"]) is None
    assert unsign(sign(sid, b"other"), [b"new", b"old"]) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v[:-1] + ("A" if v[-1] != "A" else "B"),
        lambda v: v[:-1],
        lambda v: v + "=",
        lambda v: v + "A",
        lambda v: v.replace("s:apple", "s:applf"),
        lambda v: v.replace("s:apple", "s:apple2"),
        lambda v: v.rpartition(".")[0] + ".",
        lambda v: v.upper(),
    ],
    ids=[
        "last-char",
        "truncated",
        "padded",
        "extended",
        "other-id",
        "longer-id",
        "no-mac",
        "case",
    ],
)
def test_tampered_or_truncated_values_do_not_verify(change: Callable[[str], str]) -> None:
    """Any change to the id or the signature makes the value invalid."""
    value = sign("apple", SECRET)
    assert unsign(change(value), [SECRET]) is None


@pytest.mark.parametrize(
    "value",
    [
        "apple",
        "apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU",
        "s:apple",
        "s:",
        "",
        "x:apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU",
        " s:apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU",
    ],
)
def test_unsigned_or_malformed_values_are_rejected(value: str) -> None:
    """Only s:<id>.<mac> counts: a bare id, a value without s: or without a mac is no cookie."""
    assert unsign(value, [SECRET]) is None


def test_encoding_follows_encode_uri_component() -> None:
    """Only A-Za-z0-9 and -_.!~*'() stay as they are; everything else is %XX of its UTF-8 bytes."""
    sid = "a b!~*'()-_é/?#[]@$&+,;=:"
    expected_sid = "a%20b!~*'()-_%C3%A9%2F%3F%23%5B%5D%40%24%26%2B%2C%3B%3D%3A"
    mac = mac_of(sid, SECRET).replace("+", "%2B").replace("/", "%2F")
    assert encode_cookie_value(sid, SECRET) == f"s%3A{expected_sid}.{mac}"


# ---------------------------------------------------------------- read_cookie


def test_read_cookie_finds_the_named_cookie_among_others() -> None:
    """The value of the named cookie, wherever it is in the header."""
    assert read_cookie("a=1; connect.sid=abc; b=2", "connect.sid") == "abc"
    assert read_cookie("connect.sid=abc", "connect.sid") == "abc"


def test_read_cookie_first_occurrence_wins() -> None:
    """A repeated name yields its first value (the cookie package's rule)."""
    assert read_cookie("connect.sid=first; connect.sid=second", "connect.sid") == "first"


def test_read_cookie_missing_name_is_none() -> None:
    """No cookie of that name (only similar ones) gives None."""
    header = "xconnect.sid=1; connect.sidx=2; connect=3; sid=4"
    assert read_cookie(header, "connect.sid") is None
    assert read_cookie("", "connect.sid") is None


def test_read_cookie_trims_spaces_and_tabs() -> None:
    """Spaces and tabs around names and values are ignored."""
    assert read_cookie("a=1;\t connect.sid \t=\t abc \t; b=2", "connect.sid") == "abc"


def test_read_cookie_skips_pairs_without_equals() -> None:
    """A fragment without '=' is not a cookie; parsing goes on after it."""
    assert read_cookie("connect.sid; flag; connect.sid=abc", "connect.sid") == "abc"


def test_read_cookie_splits_at_the_first_equals() -> None:
    """A value may itself contain '=' signs."""
    assert read_cookie("connect.sid=a=b==", "connect.sid") == "a=b=="


def test_read_cookie_strips_surrounding_quotes() -> None:
    """A double-quoted value is unquoted; a lone quote stays."""
    assert read_cookie('connect.sid="abc"', "connect.sid") == "abc"
    assert read_cookie('connect.sid="abc', "connect.sid") == '"abc'
    assert read_cookie('connect.sid=""', "connect.sid") == ""


def test_read_cookie_percent_decodes() -> None:
    """%XX escapes are decoded as UTF-8; '+' stays a plus (decodeURIComponent, not form decoding)."""
    assert read_cookie("connect.sid=s%3Aa%2Bb%20c%C3%A9", "connect.sid") == "s:a+b cé"
    assert read_cookie("connect.sid=a+b", "connect.sid") == "a+b"


@pytest.mark.parametrize("value", ["100%", "%zz", "%E0%A4%A", "%FF", "a%2", "a%2Bb%zz", "%41%FF"])
def test_read_cookie_keeps_the_raw_value_on_a_bad_escape(value: str) -> None:
    """A value that does not decode (bad escape or invalid UTF-8) is kept as it was sent."""
    assert read_cookie(f"connect.sid={value}", "connect.sid") == value


def test_read_cookie_accepts_an_unencoded_signed_value() -> None:
    """A raw s:id.mac value (no percent-encoding) is returned as is."""
    raw = sign("apple", SECRET)
    assert read_cookie(f"connect.sid={raw}", "connect.sid") == raw


def test_read_cookie_decodes_what_encode_cookie_value_wrote() -> None:
    """read_cookie and unsign recover the id from an express Set-Cookie value."""
    for sid, value in VECTORS:
        assert unsign(read_cookie(f"connect.sid={value}", "connect.sid") or "", [SECRET]) == sid


def test_read_cookie_rejects_oversize_values() -> None:
    """A value over 4096 characters is ignored; one of exactly 4096 is read."""
    assert read_cookie("connect.sid=" + "a" * 4096, "connect.sid") == "a" * 4096
    assert read_cookie("connect.sid=" + "a" * 4097, "connect.sid") is None


def test_read_cookie_empty_value_is_empty_string() -> None:
    """An empty value is present but empty (it then fails to unsign)."""
    assert read_cookie("connect.sid=; other=1", "connect.sid") == ""
    assert unsign("", [SECRET]) is None
