"""The session a handler sees: a dict of JSON data, plus its id, cookie, owner and express's methods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from flask.sessions import NullSession, SessionMixin

from .cookie import Cookie
from .errors import SessionUnavailable
from .serialization import dump_data

if TYPE_CHECKING:
    from .state import SessionState

__all__ = ["OutOfScopeSession", "Session", "SkippedSession", "UnavailableSession", "state_of"]


class Session(dict[str, Any], SessionMixin):
    """`from quart import session`: the data is the mapping; the rest are attributes and methods.

    ::

        session["visits"] = session.get("visits", 0) + 1
        session.cookie.max_age = timedelta(days=30)
        await session.regenerate()                  # new id, old record gone, data cleared
        await session.regenerate(keep_data=True)    # new id, same data (after signing in)
        await session.destroy()                     # record gone, browser cookie cleared
    """

    accessed = True

    def __init__(
        self,
        state: SessionState,
        sid: str,
        cookie: Cookie,
        data: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__(data or ())
        self.id = sid
        self.cookie = cookie
        self._owner = owner
        self._state = state

    @property
    def new(self) -> bool:  # type: ignore[override]
        """True when the browser did not send this session's id (minted during this request)."""
        return self._state.is_new()

    @property
    def modified(self) -> bool:
        """True when the id, the owner or the data (nested values included) changed."""
        return self._state.is_modified(dump_data(self))

    @modified.setter
    def modified(self, value: bool) -> None:
        self._state.force_modified(value)

    @property
    def permanent(self) -> bool:
        """True when the cookie outlives the browser session; setting it uses PERMANENT_SESSION_LIFETIME."""
        return self.cookie.expires is not None

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self.cookie.max_age = self._state.permanent_lifetime() if value else None

    @property
    def owner(self) -> str | None:
        """Who this session belongs to (e.g. ``f"user:{id}"``); listed by ``store.owned(owner)``."""
        return self._owner

    @owner.setter
    def owner(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"session.owner must be a str or None, not {type(value).__name__}")
        self._owner = value

    async def regenerate(self, *, keep_data: bool = False) -> None:
        """A new id and the old record destroyed; the data (and owner) are kept only with `keep_data`."""
        await self._state.regenerate(keep_data)

    async def destroy(self) -> None:
        """Delete the record now and clear the browser's cookie at the end of the request."""
        await self._state.destroy()

    async def reload(self) -> None:
        """Re-read the data from the store; raises SessionNotFound when the record is gone."""
        await self._state.reload()

    async def save(self) -> None:
        """Write the session now (before a long stream, say); the end of the request then skips it."""
        await self._state.save()

    def touch(self) -> None:
        """Reset the cookie's max_age to its original value."""
        self.cookie.reset_max_age()

    def unset(self) -> None:
        """Drop the session for this request (express's `req.session = null`), honouring `unset`."""
        self._state.mark_unset()
        self.clear()

    def __repr__(self) -> str:
        return f"<Session {self.id[:6]}… {dict.__repr__(self)}>"


def state_of(session: Session) -> SessionState:
    """The engine's bookkeeping for `session` (the engine's way in; not for applications)."""
    return session._state


class UnavailableSession(Session):
    """Stands in while the store is down: any use of the data raises a 503."""

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise SessionUnavailable()

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __iter__ = __len__ = _fail  # type: ignore[assignment,unused-ignore]
    get = pop = popitem = setdefault = update = clear = keys = items = values = _fail  # type: ignore[assignment,unused-ignore]

    async def regenerate(self, *, keep_data: bool = False) -> None:
        self._fail()

    async def destroy(self) -> None:
        self._fail()

    async def reload(self) -> None:
        self._fail()

    async def save(self) -> None:
        self._fail()


class OutOfScopeSession(NullSession):
    """The session of a request outside the cookie's path: there is none."""

    reason = "this request's path is outside the session cookie's path"

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(f"no session here: {self.reason}")

    __setitem__ = __delitem__ = clear = pop = popitem = update = setdefault = _fail  # type: ignore[assignment,unused-ignore]


class SkippedSession(OutOfScopeSession):
    """The session of a route that does not use one (static files, 404s, skip_session): empty, read-only."""

    reason = "this route does not use the session (static files, 404s, @skip_session, Sessions(skip=...))"
