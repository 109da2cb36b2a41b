"""Stand-ins, until the merge, for the contract's values and its Python reference rules.

The lead's ``sessions/expiry.py`` (``Renewal``, ``renew_record``) and ``sessions/record.py``
(``Change``, ``merge_record``) replace this module; PostgresStore's statements are tested
against these functions, which state the rules as the SQL implements them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from .postgres_sql import iso_from_ms

__all__ = ["OWNER_KEY", "Change", "Renewal", "deadline_of", "merge_record", "renew_record"]

OWNER_KEY = "_owner"
_ISO = re.compile(r"(?!0000)\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z")
_PLAIN_NUMBER = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,20})?")
_LAST_ISO_MS = 253_402_300_799_999
_COOKIE_HEAD = '{"cookie":{'
_EXPIRES_KEY = '"expires":"'


@dataclass(frozen=True, slots=True)
class Renewal:
    """How a read slides the expiry (express's touch), computed once per request by the engine."""

    now_ms: int
    idle_ms: int
    anonymous_idle_ms: int


@dataclass(frozen=True, slots=True)
class Change:
    """One request's delta against the record it loaded; merged into the current record."""

    cookie: str
    assign: tuple[tuple[str, str], ...] = ()
    remove: frozenset[str] = frozenset()


def _expires(record: dict[str, object]) -> object:
    cookie = record.get("cookie")
    return cookie.get("expires") if isinstance(cookie, dict) else None


def is_live(raw: bytes, deadline_ms: int | None, now_ms: int) -> bool:
    """Alive at `now_ms`: before its store deadline and, when its cookie has a string expiry, that."""
    if deadline_ms is not None and deadline_ms <= now_ms:
        return False
    expires = _expires(json.loads(raw))
    if not isinstance(expires, str):
        return True
    return _ISO.fullmatch(expires) is not None and expires > iso_from_ms(now_ms)


def deadline_of(ms: int | None) -> int | None:
    """The stored deadline for an expiry in ms: whole seconds, rounded up (connect-pg-simple)."""
    return None if ms is None else math.ceil(ms / 1000) * 1000


def renew_record(
    raw: bytes, deadline_ms: int | None, renewal: Renewal
) -> tuple[bytes, int | None] | None:
    """The record after a read's renewal and its new store deadline; None when it is not alive.

    A cookie with a string expiry and a plain-decimal originalMaxAge moves to now +
    originalMaxAge (floor, float arithmetic as JavaScript's Date), spliced into the text; with
    no usable originalMaxAge it keeps its bytes and deadline. A record without a string expiry
    keeps its bytes and lives the idle time (the anonymous one without an "_owner" key).
    """
    if not is_live(raw, deadline_ms, renewal.now_ms):
        return None
    text = raw.decode()
    record = json.loads(text)
    if not isinstance(record, dict) or not isinstance(record.get("cookie"), dict):
        return None
    cookie = record["cookie"]
    if not isinstance(cookie.get("expires"), str):
        idle = renewal.idle_ms if OWNER_KEY in record else renewal.anonymous_idle_ms
        return raw, deadline_of(renewal.now_ms + idle)
    if not text.startswith(_COOKIE_HEAD):
        return raw, deadline_ms
    cookie_text = _member_texts(text)[0]
    keys = [key for key, _ in json.loads(cookie_text, object_pairs_hook=list)]
    original = dict(zip(keys, _member_texts(cookie_text), strict=True)).get("originalMaxAge", "")
    if _PLAIN_NUMBER.fullmatch(original) is None:
        return raw, deadline_ms
    moved = math.floor(renewal.now_ms + float(original))
    if not 0 <= moved <= _LAST_ISO_MS:
        return raw, deadline_ms
    start = text.index(_EXPIRES_KEY) + len(_EXPIRES_KEY)
    renewed = text[:start] + iso_from_ms(moved) + text[start + 24 :]
    return renewed.encode(), deadline_of(moved)


def merge_record(current: bytes, change: Change) -> bytes:
    """`change` on top of `current`: kept members keep their text and order; new keys go last."""
    assigned = dict(change.assign)
    members = json.loads(current, object_pairs_hook=list)
    texts = _member_texts(current.decode())
    parts = ['{"cookie":', change.cookie]
    kept = set()
    for (key, _), value_text in zip(members, texts, strict=True):
        if key == "cookie" or key in change.remove:
            continue
        kept.add(key)
        parts += [",", json.dumps(key, ensure_ascii=False), ":", assigned.get(key, value_text)]
    for key, value in change.assign:
        if key not in kept:
            parts += [",", json.dumps(key, ensure_ascii=False), ":", value]
    return ("".join(parts) + "}").encode()


def _member_texts(text: str) -> list[str]:
    """The exact text of each top-level value of a JSON object, in order."""
    decoder = json.JSONDecoder()
    space = re.compile(r"[ \t\n\r]*")
    at = space.match(text, text.index("{") + 1).end()  # type: ignore[union-attr]
    found: list[str] = []
    while text[at] != "}":
        _, at = json.decoder.scanstring(text, at + 1)
        at = space.match(text, at).end() + 1  # type: ignore[union-attr]
        start = space.match(text, at).end()  # type: ignore[union-attr]
        _, end = decoder.raw_decode(text, start)
        found.append(text[start:end])
        at = space.match(text, end).end()  # type: ignore[union-attr]
        if text[at] == ",":
            at = space.match(text, at + 1).end()  # type: ignore[union-attr]
    return found
