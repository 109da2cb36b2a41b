"""The express-session cookie value: `s:<id>.<HMAC-SHA256>`, percent-encoded like encodeURIComponent."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from urllib.parse import quote, unquote

__all__ = ["encode_cookie_value", "read_cookie", "sign", "unsign", "verify"]

# encodeURIComponent leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) alone; quote() always keeps the first seven.
_URI_COMPONENT_SAFE = "-_.!~*'()"
MAX_COOKIE_VALUE = 4096
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PLAIN = re.compile(r"[A-Za-z0-9_-]+")


def _bytes(text: str) -> bytes:
    # A header can carry any code point (a percent-decoded cookie, say); none of them may raise.
    return text.encode("utf-8", "surrogatepass")


def _mac_bytes(sid: str, secret: bytes) -> bytes:
    # 32 bytes of SHA-256 are 44 characters of base64, the last one padding.
    return binascii.b2a_base64(hmac.digest(secret, _bytes(sid), hashlib.sha256), newline=False)[:43]


def _mac(sid: str, secret: bytes) -> str:
    return _mac_bytes(sid, secret).decode()


def sign(sid: str, secret: bytes) -> str:
    """`s:` + id + `.` + unpadded base64 HMAC-SHA256, as cookie-signature does."""
    return f"s:{sid}.{_mac(sid, secret)}"


def verify(value: str, secrets: Sequence[bytes]) -> tuple[str, int] | None:
    """The id a signed value carries and the index of the secret that verified it, else None."""
    if not value.startswith("s:"):
        return None
    sid, dot, mac = value[2:].rpartition(".")
    if not dot:
        return None
    given = _bytes(mac)
    for index, secret in enumerate(secrets):
        if hmac.compare_digest(_mac_bytes(sid, secret), given):
            return sid, index
    return None


def unsign(value: str, secrets: Sequence[bytes]) -> str | None:
    """The id a signed value carries when any secret verifies it, else None."""
    verified = verify(value, secrets)
    return None if verified is None else verified[0]


def encode_cookie_value(sid: str, secret: bytes) -> str:
    """The signed id exactly as express-session writes it into Set-Cookie."""
    if _PLAIN.fullmatch(sid):
        # What encodeURIComponent changes in an id of [A-Za-z0-9_-] and a base64 signature.
        mac = _mac(sid, secret).replace("+", "%2B").replace("/", "%2F")
        return f"s%3A{sid}.{mac}"
    return quote(sign(sid, secret), safe=_URI_COMPONENT_SAFE)


def read_cookie(header: str, name: str) -> str | None:
    """The first value of cookie `name` in a Cookie header, parsed the way the `cookie` npm package does."""
    for pair in header.split(";"):
        key, equals, value = pair.partition("=")
        if not equals or key.strip(" \t") != name:
            continue
        value = value.strip(" \t")
        if len(value) > MAX_COOKIE_VALUE:
            return None
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        if "%" in value and not _BAD_ESCAPE.search(value):
            try:
                value = unquote(value, errors="strict")
            except UnicodeDecodeError:
                pass  # decodeURIComponent would throw; the cookie package then keeps the raw value
        return value
    return None
