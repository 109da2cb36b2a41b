"""Per-session CSRF tokens: one in every form, checked on every unsafe request."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from quart import request, session
from werkzeug.exceptions import BadRequest

__all__ = ["CSRF_FIELD", "CSRF_HEADER", "CSRFError", "csrf_protect", "csrf_token", "validate_csrf"]

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_KEY = "_csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

P = ParamSpec("P")
T = TypeVar("T")


class CSRFError(BadRequest):
    """The request carried no valid CSRF token (400)."""

    description = (
        "This form has expired or did not come from this site. Reload the page and try again."
    )


def csrf_token() -> str:
    """The session's CSRF token, made on first use; in templates: ``{{ csrf_token() }}``."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


async def validate_csrf() -> None:
    """Raise ``CSRFError`` unless the header or form field matches the session's token."""
    expected = session.get(SESSION_KEY)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        sent = (await request.form).get(CSRF_FIELD)
    if not isinstance(expected, str) or not expected or not sent:
        raise CSRFError()
    if not hmac.compare_digest(expected.encode(), sent.encode("utf-8", "replace")):
        raise CSRFError()


def csrf_protect(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Check the CSRF token on unsafe methods before running a view outside the auth blueprint.

    Example::

        @app.post("/notes")
        @csrf_protect
        async def add_note() -> str: ...
    """

    @wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if request.method in UNSAFE_METHODS:
            await validate_csrf()
        return await func(*args, **kwargs)

    return wrapper
