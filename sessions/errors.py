"""The exceptions sessions/ raises."""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import ServiceUnavailable

__all__ = [
    "SessionError",
    "SessionNotFound",
    "SessionTooLarge",
    "SessionUnavailable",
    "StoreUnavailable",
]


class SessionError(Exception):
    """Base class of the errors raised by sessions/."""


class SessionNotFound(SessionError, LookupError):
    """The session's record is no longer in the store (`reload` after a logout elsewhere)."""


class SessionTooLarge(SessionError, ValueError):
    """The serialized session exceeds the configured `max_size`."""


class StoreUnavailable(SessionError):
    """The store could not be reached (connection refused, timeout, disk error)."""


class SessionUnavailable(ServiceUnavailable):
    """A 503 raised when a request touches a session whose store is unreachable.

    Register an error handler for it to render your own page::

        @app.errorhandler(SessionUnavailable)
        async def sessions_down(error):
            return await render_template("503.html"), 503, {"Retry-After": "5"}
    """

    description = "Sessions are temporarily unavailable. Please try again in a few seconds."

    def __init__(self, retry_after: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_after = retry_after

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), ("Retry-After", str(self.retry_after))]
