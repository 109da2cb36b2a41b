"""Errors the auth package raises as HTTP responses."""

from __future__ import annotations

from werkzeug.exceptions import ServiceUnavailable, TooManyRequests

__all__ = ["AuthUnavailable", "Throttled"]


class AuthUnavailable(ServiceUnavailable):
    """A backend of auth (users, throttle counters) does not answer: 503 with Retry-After."""

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
