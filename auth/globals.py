"""The public helpers of a request: ``current_user``, ``login_required``, ``login_user``, ..."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

from quart import Response, abort, current_app, g, request, url_for
from werkzeug.local import LocalProxy

from sessions import SessionUnavailable, session

from .signins import SessionUser, SignIns, user_in
from .users import AnonymousUser, User

__all__ = [
    "ANONYMOUS",
    "current_user",
    "login_required",
    "login_user",
    "logout_user",
    "signed_in_user",
    "signins",
    "wants_json",
]

P = ParamSpec("P")
T = TypeVar("T")

ANONYMOUS = AnonymousUser()


def signins() -> SignIns:
    """The app's ``SignIns`` (set up by ``Auth``)."""
    return cast(SignIns, current_app.extensions["auth"].signins)


def _get_user() -> SessionUser | AnonymousUser:
    # Worked out on first use and kept for the request: routes that never ask cost nothing.
    known: Any = g.get("_auth_user")
    if known is not None:
        return cast("SessionUser | AnonymousUser", known)
    try:
        found = user_in(session)
    except SessionUnavailable:
        g._auth_user = ANONYMOUS  # the 503 page that follows must not ask the store again
        raise
    g._auth_user = found or ANONYMOUS
    return g._auth_user  # type: ignore[no-any-return]


current_user = cast("SessionUser | AnonymousUser", LocalProxy(_get_user))
"""The signed-in user of this request (a ``SessionUser``), or an ``AnonymousUser``."""


def signed_in_user() -> SessionUser:
    """The signed-in user of this request; only for views behind ``login_required``."""
    user = _get_user()
    if not isinstance(user, SessionUser):
        raise RuntimeError("signed_in_user() needs a signed-in user: use @login_required")
    return user


async def login_user(user: User, *, remember: bool = False) -> None:
    """Sign ``user`` in: a new session id (no fixation), written at once and owned by the user.

    ``user`` is the record the password was checked against: if the password changed since,
    the new session is ended and ``StaleSignIn`` raised.  ``remember`` makes the cookie
    persistent for ``AUTH_REMEMBER_DURATION``; otherwise it is a browser-session cookie and the
    store's ttl is the idle timeout.  Example::

        await login_user(user, remember=True)
    """
    agent = request.headers.get("User-Agent", "")
    g._auth_user = await signins().sign_in(session, user, remember=remember, user_agent=agent)


async def logout_user() -> None:
    """Sign out: the session is destroyed in the store and its cookie cleared.

    Example::

        await logout_user()
    """
    await signins().sign_out(session)
    g._auth_user = ANONYMOUS


def wants_json() -> bool:
    """True when the client asked for JSON rather than a page (API and fetch requests)."""
    if request.is_json or request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def login_required(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Let only signed-in users through: others are sent to the login page (or get a JSON 401).

    Example::

        @app.get("/secret")
        @login_required
        async def secret() -> str:
            return f"Hello {current_user.username}"
    """

    @wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if not current_user.is_authenticated:
            if wants_json():
                body = json.dumps({"error": "authentication required"})
                abort(Response(body, 401, content_type="application/json"))
            target = request.full_path if request.query_string else request.path
            abort(Response("", 302, headers={"Location": url_for("auth.login", next=target)}))
        return await func(*args, **kwargs)

    return wrapper
