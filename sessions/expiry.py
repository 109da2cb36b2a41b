"""When a record expires, and how a request slides that moment: the one rule every store follows.

A record whose ``cookie.expires`` is set expires exactly then (to the millisecond). A record of a
browser-session cookie (``expires`` null) lives for an idle time after its last use, kept by the
store. Renewing (express's touch) moves ``cookie.expires`` to now + ``originalMaxAge``, written into
the record itself, or restarts the idle time. The Redis script and the PostgreSQL statement mirror
this module, and the tests hold them to it.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from .record import OWNER_KEY, fields
from .serialization import raw_decode

__all__ = [
    "Renewal",
    "deadline",
    "effective_deadline",
    "is_expired",
    "iso_from_ms",
    "ms_from_iso",
    "now_ms",
    "record_deadline",
    "renew_record",
    "with_expiry",
]

ISO_LENGTH = len("2026-01-01T00:00:00.000Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COOKIE_HEAD = '{"cookie":{'
_EXPIRES_VALUE = re.compile(r'("expires"[ \t\n\r]*:[ \t\n\r]*)(?:"[^"]*"|null)')


@dataclass(frozen=True, slots=True)
class Renewal:
    """How a read slides the expiry, computed once per request by the engine."""

    now_ms: int
    idle_ms: int
    anonymous_idle_ms: int


def now_ms() -> int:
    """The wall clock in epoch milliseconds, the unit of every expiry."""
    return time.time_ns() // 1_000_000


def iso_from_ms(ms: int) -> str:
    """``2026-11-29T13:53:21.123Z``: the form ``Date.prototype.toJSON`` writes."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def ms_from_iso(text: str) -> int | None:
    """Epoch milliseconds of an ISO-8601 instant (naive means UTC), or None when it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    since = moment - _EPOCH
    return since.days * 86_400_000 + since.seconds * 1000 + since.microseconds // 1000


def _cookie(text: str) -> tuple[dict[str, object], int, int] | None:
    """The record's cookie object and where its text starts and ends, when the record starts with it."""
    if not text.startswith(_COOKIE_HEAD):
        for field in fields(text):
            if field.key == "cookie":
                value, end = raw_decode(text, field.start)
                return (value, field.start, end) if isinstance(value, dict) else None
        return None
    start = len(_COOKIE_HEAD) - 1
    value, end = raw_decode(text, start)
    return (value, start, end) if isinstance(value, dict) else None


def deadline(
    at_ms: int, cookie_expires_ms: int | None, owned: bool, idle_ms: int, anonymous_idle_ms: int
) -> int:
    """The rule: a persistent cookie's expiry, else `at_ms` plus the idle time (shorter without an owner)."""
    if cookie_expires_ms is not None:
        return cookie_expires_ms
    return at_ms + (idle_ms if owned else anonymous_idle_ms)


def record_deadline(text: str, at_ms: int, idle_ms: int, anonymous_idle_ms: int) -> int | None:
    """`deadline` for a record's text (None when it has no readable cookie)."""
    found = _cookie(text)
    if found is None:
        return None
    expires = found[0].get("expires")
    if isinstance(expires, str):
        return ms_from_iso(expires)
    owned = idle_ms == anonymous_idle_ms or any(field.key == OWNER_KEY for field in fields(text))
    return deadline(at_ms, None, owned, idle_ms, anonymous_idle_ms)


def renew_record(raw: bytes, renewal: Renewal) -> tuple[bytes, int | None] | None:
    """The record after a renewal and its new deadline (epoch ms); None when it has expired.

    An unreadable record comes back unchanged with no deadline: the engine reports it.
    """
    try:
        text = raw.decode()
        found = _cookie(text)
    except (ValueError, UnicodeDecodeError):
        return raw, None
    if found is None:
        return raw, None
    cookie, start, end = found
    expires, original = cookie.get("expires"), cookie.get("originalMaxAge")
    if isinstance(expires, str):
        expires_ms = ms_from_iso(expires)
        if expires_ms is None:
            return raw, None
        if expires_ms <= renewal.now_ms:
            return None
        if isinstance(original, bool) or not isinstance(original, int | float):
            return raw, expires_ms
        deadline = math.floor(renewal.now_ms + original)
        return _stamped(text, start, end, deadline), deadline
    return raw, record_deadline(text, renewal.now_ms, renewal.idle_ms, renewal.anonymous_idle_ms)


def _stamped(text: str, start: int, end: int, expires_ms: int) -> bytes:
    stamp = f'\\1"{iso_from_ms(expires_ms)}"'
    return (
        text[:start] + _EXPIRES_VALUE.sub(stamp, text[start:end], count=1) + text[end:]
    ).encode()


def with_expiry(raw: bytes, expires_ms: int) -> bytes:
    """The record with its cookie.expires set to `expires_ms`, when it has one (null stays null)."""
    try:
        text = raw.decode()
        found = _cookie(text)
    except (ValueError, UnicodeDecodeError):
        return raw
    stated = None if found is None else found[0].get("expires")
    if found is None or not isinstance(stated, str) or ms_from_iso(stated) is None:
        return raw
    return _stamped(text, found[1], found[2], expires_ms)


def is_expired(raw: bytes, at_ms: int) -> bool:
    """True when the record's cookie.expires is at or before `at_ms` (to the millisecond)."""
    try:
        found = _cookie(raw.decode())
    except (ValueError, UnicodeDecodeError):
        return False
    expires = None if found is None else found[0].get("expires")
    if not isinstance(expires, str):
        return False
    expires_ms = ms_from_iso(expires)
    return expires_ms is None or expires_ms <= at_ms


def effective_deadline(raw: bytes, deadline_ms: int | None) -> int | None:
    """A store deadline never later than the record's cookie.expires, the truth it must not outlive."""
    try:
        found = _cookie(raw.decode())
    except (ValueError, UnicodeDecodeError):
        return deadline_ms
    stated = None if found is None else found[0].get("expires")
    expires = ms_from_iso(stated) if isinstance(stated, str) else None
    if expires is None:
        return deadline_ms
    return expires if deadline_ms is None else min(expires, deadline_ms)
