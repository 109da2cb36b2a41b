"""Errors the auth package raises as HTTP responses."""

from __future__ import annotations

from werkzeug.exceptions import ServiceUnavailable, TooManyRequests

__all__ = ["AuthUnavailable", "Throttled"]


class AuthUnavailable(ServiceUnavailable):
    """A backend of auth (users, throttle counters) does not answer: 503 with Retry-After."""

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
