"""Errors the auth package raises, and the one place a backend failure becomes a 503."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from asyncpg import PostgresError
from redis.exceptions import RedisError
from werkzeug.exceptions import ServiceUnavailable, TooManyRequests

from sessions import StoreUnavailable

__all__ = ["AuthUnavailable", "StaleSignIn", "Throttled", "unavailable_as_503"]


class AuthUnavailable(ServiceUnavailable):
    """A backend of auth (users, throttle counters, sessions) does not answer: 503 with Retry-After."""

    def __init__(self, description: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(description, retry_after=retry_after)


class Throttled(TooManyRequests):
    """Too many attempts from this client: 429 with Retry-After (seconds).

    The description ends with the wait, from the same figure as Retry-After:
    ``Throttled(900).description == "Too many failed sign-in attempts. Try again in 15 minutes."``
    """

    def __init__(self, retry_after: int, reason: str = "Too many failed sign-in attempts.") -> None:
        retry_after = max(1, retry_after)
        super().__init__(f"{reason} Try again in {_wait(retry_after)}.", retry_after=retry_after)


def _wait(seconds: int) -> str:
    """A wait for people, never shorter than the real one: ``_wait(61) == "2 minutes"``."""
    if seconds < 60:
        amount, unit = seconds, "second"
    elif seconds < 2 * 3600:
        amount, unit = -(-seconds // 60), "minute"
    else:
        amount, unit = -(-seconds // 3600), "hour"
    return f"{amount} {unit}" if amount == 1 else f"{amount} {unit}s"


class StaleSignIn(Exception):
    """The password changed while this sign-in was being checked; its new session was ended."""


# What a backend raises when it cannot answer: Redis errors (refused, timeout, OOM, READONLY),
# file system errors, a file that is not what it should be, the session store's own (which
# PostgreSQL's connections raise for a server that cannot serve now), and any other error the
# database answers with (a table dropped under us, a full disk).
_BACKEND_ERRORS = (RedisError, OSError, ValueError, StoreUnavailable, PostgresError)


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
