"""Keyed digests: CSRF tokens and the opaque handles of listed sessions."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["Tokens"]


class Tokens:
    """HMAC-SHA256 digests under the app's secrets (the first one signs, all verify).

    Each digest names its purpose, so a value made for one use is worthless for another.
    Example::

        tokens = Tokens([b"new secret", b"old secret"])
        token = tokens.make("csrf", "browser-nonce")
        assert tokens.matches("csrf", "browser-nonce", token)
    """

    def __init__(self, secrets: Sequence[str | bytes]) -> None:
        keys = tuple(s.encode() if isinstance(s, str) else bytes(s) for s in secrets if s)
        if not keys:
            raise ValueError("auth needs a secret: set SECRET_KEY (or AUTH_SECRET)")
        self.keys = keys

    def make(self, purpose: str, message: str, key: bytes | None = None) -> str:
        """The digest of ``message`` for ``purpose`` (128 bits, hex), under the current key."""
        data = purpose.encode() + b"\0" + message.encode("utf-8", "surrogatepass")
        return hmac.new(key or self.keys[0], data, hashlib.sha256).hexdigest()[:32]

    def matches(self, purpose: str, message: str, sent: str) -> bool:
        """True when ``sent`` is the digest of ``message`` for ``purpose`` under any key."""
        given = sent.encode("utf-8", "replace")
        found = False
        for key in self.keys:  # every key, always: the time taken says nothing about which
            found |= hmac.compare_digest(self.make(purpose, message, key).encode(), given)
        return found

    def handle(self, session_id: str) -> str:
        """An opaque, stable name for a session id, safe to put in a page."""
        return self.make("session-handle", session_id)[:24]
