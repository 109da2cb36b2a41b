"""Errors the auth package raises, and the one place a backend failure becomes a 503."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError
from werkzeug.exceptions import ServiceUnavailable, TooManyRequests

from sessions import StoreUnavailable

__all__ = ["AuthUnavailable", "StaleSignIn", "Throttled", "unavailable_as_503"]


class AuthUnavailable(ServiceUnavailable):
    """A backend of auth (users, throttle counters, sessions) does not answer: 503 with Retry-After."""

    def __init__(self, description: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(description, retry_after=retry_after)


class Throttled(TooManyRequests):
    """Too many attempts from this client: 429 with Retry-After (seconds)."""

    def __init__(
        self,
        retry_after: int,
        description: str = "Too many failed sign-in attempts. Please wait before trying again.",
    ) -> None:
        super().__init__(description, retry_after=max(1, retry_after))


class StaleSignIn(Exception):
    """The password changed while this sign-in was being checked; its new session was ended."""


# What a backend raises when it cannot answer: Redis errors (refused, timeout, OOM, READONLY),
# file system errors, a file that is not what it should be, and the session store's own.
_BACKEND_ERRORS = (RedisError, OSError, ValueError, StoreUnavailable)


@contextmanager
def unavailable_as_503(backend: str) -> Iterator[None]:
    """Turn a failure of ``backend`` inside the block into ``AuthUnavailable`` (503)::

    with unavailable_as_503("the user store"):
        raw = await client.get(key)
    """
    try:
        yield
    except AuthUnavailable:
        raise
    except _BACKEND_ERRORS as error:
        raise AuthUnavailable(f"{backend} does not answer") from error
