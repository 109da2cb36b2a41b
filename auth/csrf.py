"""CSRF tokens that need no stored state: one in every form, checked on every unsafe request.

A signed-in session's token is an HMAC of its session id (secret, and new at every sign-in).
An anonymous browser's token is an HMAC of a random value in a cookie of its own (signed
double-submit): a cookieless look at ``/login`` stores nothing, yet a forged form fails, since
another site can neither read that cookie nor make the HMAC.  Over HTTPS the cookie is named
``__Host-auth.csrf``, which a sibling subdomain cannot plant.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar, cast

from quart import Response, current_app, g, request
from werkzeug.exceptions import BadRequest

from sessions import session

from .signins import user_in
from .tokens import Tokens

__all__ = [
    "CSRF",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "CSRFError",
    "csrf_protect",
    "csrf_token",
    "validate_csrf",
]

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
CSRF_COOKIE = "auth.csrf"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NONCE = re.compile(r"[A-Za-z0-9_-]{32,64}")

P = ParamSpec("P")
T = TypeVar("T")


class CSRFError(BadRequest):
    """The request carried no valid CSRF token (400)."""

    description = (
        "This form has expired or did not come from this site. Reload the page and try again."
    )


class CSRF:
    """Makes and checks the tokens under the app's secrets; ``Auth`` sets one up.

    Example::

        csrf = CSRF(Tokens(app.extensions["sessions"].secrets))
        app.after_request(csrf.set_cookie)
    """

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    def token(self) -> str:
        """This request's token: bound to the signed-in session, else to the browser's cookie."""
        session_id = _signed_in_session_id()
        if session_id is not None:
            return self.tokens.make("csrf-session", session_id)
        return self.tokens.make("csrf-browser", _browser_nonce(create=True) or "")

    async def validate(self) -> None:
        """Raise ``CSRFError`` unless the header or form field holds this request's token."""
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            sent = (await request.form).get(CSRF_FIELD)
        if not sent:
            raise CSRFError()
        session_id = _signed_in_session_id()
        if session_id is not None:
            valid = self.tokens.matches("csrf-session", session_id, sent)
        else:
            nonce = _browser_nonce(create=False)
            valid = nonce is not None and self.tokens.matches("csrf-browser", nonce, sent)
        if not valid:
            raise CSRFError()

    @staticmethod
    async def set_cookie(response: Response) -> Response:
        """Give a browser its cookie when this request made its first token (``after_request``)."""
        made = g.get("_csrf_new_nonce")
        if made is not None:
            name, nonce = made
            response.set_cookie(
                name, nonce, path="/", httponly=True, secure=_is_secure(), samesite="Lax"
            )
            response.vary.add("Cookie")
        return response


def _is_secure() -> bool:
    return request.scheme in ("https", "wss")


def _cookie_name() -> str:
    # __Host-: only from a secure origin, for this host, path=/: no subdomain can plant it.
    return f"__Host-{CSRF_COOKIE}" if _is_secure() else CSRF_COOKIE


def _signed_in_session_id() -> str | None:
    sid = getattr(session, "id", None)  # None outside the session cookie's path
    return sid if isinstance(sid, str) and user_in(session) is not None else None


def _browser_nonce(*, create: bool) -> str | None:
    """The random value of this browser's CSRF cookie; a new one (set later) when ``create``."""
    known: str | None = g.get("_csrf_nonce")
    if known is not None:
        return known
    name = _cookie_name()
    sent = request.cookies.get(name, "")
    if _NONCE.fullmatch(sent):
        nonce = sent
    elif create:
        nonce = secrets.token_urlsafe(32)
        g._csrf_new_nonce = (name, nonce)
    else:
        return None
    g._csrf_nonce = nonce
    return nonce


def _csrf() -> CSRF:
    return cast(CSRF, current_app.extensions["auth"].csrf)


def csrf_token() -> str:
    """This request's CSRF token; in templates: ``{{ csrf_token() }}``."""
    return _csrf().token()


async def validate_csrf() -> None:
    """Raise ``CSRFError`` (400) unless the request carries this request's CSRF token."""
    await _csrf().validate()


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
