"""The express-session cookie value: `s:<id>.<HMAC-SHA256>`, percent-encoded like encodeURIComponent."""

from __future__ import annotations

import base64
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


def _bytes(text: str) -> bytes:
    # A header can carry any code point (a percent-decoded cookie, say); none of them may raise.
    return text.encode("utf-8", "surrogatepass")


def _mac(sid: str, secret: bytes) -> str:
    digest = hmac.new(secret, _bytes(sid), hashlib.sha256).digest()
    return base64.b64encode(digest).decode().rstrip("=")


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
        if hmac.compare_digest(_mac(sid, secret).encode(), given):
            return sid, index
    return None


def unsign(value: str, secrets: Sequence[bytes]) -> str | None:
    """The id a signed value carries when any secret verifies it, else None."""
    verified = verify(value, secrets)
    return None if verified is None else verified[0]


def encode_cookie_value(sid: str, secret: bytes) -> str:
    """The signed id exactly as express-session writes it into Set-Cookie."""
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
