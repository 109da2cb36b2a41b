"""Keyed digests: the session's sign-in token and the opaque handles of listed sessions."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from .users import User

__all__ = ["Tokens"]


class Tokens:
    """HMAC-SHA256 digests under the app's secret (the first one signs, all verify).

    The sign-in token is derived from the user's password hash, so a new password (or a
    rehash) invalidates every session that carries the old token.  Example::

        tokens = Tokens(["new secret", "old secret"])
        assert tokens.check(user, tokens.sign_in(user))
    """

    def __init__(self, secrets: Sequence[str | bytes]) -> None:
        keys = [s.encode() if isinstance(s, str) else bytes(s) for s in secrets if s]
        if not keys:
            raise ValueError("auth needs a secret: set SECRET_KEY (or AUTH_SECRET)")
        self._keys = keys

    def sign_in(self, user: User, key: bytes | None = None) -> str:
        """The token a session of ``user`` carries."""
        message = b"auth-token\0" + user.id.encode() + b"\0" + user.password_hash.encode()
        return hmac.new(key or self._keys[0], message, hashlib.sha256).hexdigest()[:32]

    def check(self, user: User, token: str) -> bool:
        """True when ``token`` is valid for ``user`` under any of the keys."""
        return self.which(user, token) is not None

    def is_current(self, user: User, token: str) -> bool:
        """True when ``token`` was made with the first (current) key."""
        return self.which(user, token) == 0

    def which(self, user: User, token: str) -> int | None:
        """Index of the key that made ``token``, or ``None``."""
        sent = token.encode("utf-8", "replace")
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(self.sign_in(user, key).encode(), sent):
                return index
        return None

    def handle(self, session_id: str) -> str:
        """An opaque, stable name for a session id, safe to put in a page."""
        digest = hmac.new(self._keys[0], b"session-handle\0" + session_id.encode(), hashlib.sha256)
        return digest.hexdigest()[:24]
