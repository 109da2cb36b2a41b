"""The session object: a dict of JSON data plus its id, its cookie and express's methods."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from flask.sessions import SessionMixin

from .cookie import Cookie
from .errors import SessionUnavailable
from .serialization import dump_data

if TYPE_CHECKING:
    from quart.wrappers import BaseRequestWebsocket

__all__ = ["Session", "UnavailableSession"]


class _Engine(Protocol):
    permanent_lifetime: timedelta

    async def regenerate(self, session: Session, keep_data: bool = False) -> None: ...
    async def destroy(self, session: Session) -> None: ...
    async def reload(self, session: Session) -> None: ...
    async def save(self, session: Session) -> None: ...


class Session(dict[str, Any], SessionMixin):
    """`from quart import session`: the data is the mapping; the rest are attributes and methods.

    ::

        session["visits"] = session.get("visits", 0) + 1
        session.cookie.max_age = timedelta(days=30)
        await session.regenerate()       # new id, old record gone, data cleared
        await session.destroy()          # record gone, browser cookie cleared
    """

    def __init__(
        self,
        engine: _Engine,
        request: BaseRequestWebsocket,
        sid: str,
        cookie: Cookie,
        *,
        cookie_id: str | None,
        secure_request: bool,
        data: dict[str, Any] | None = None,
        owner: str | None = None,
        raw: bytes | None = None,
    ) -> None:
        super().__init__(data or ())
        self.id = sid
        self.cookie = cookie
        self.request = request
        self.secure_request = secure_request
        self._engine = engine
        self._cookie_id = cookie_id
        self._owner = owner
        self._raw = raw
        self._unset = False
        self._clear_cookie = False
        self._destroyed = False
        self._forced = False
        self._explicitly_saved = False
        self._finished = False
        self._mark_original()
        self._saved: tuple[str, str, str | None] | None = None
        self._indexed_owner = owner if raw is not None else None
        self._base = self._original_data

    def _mark_original(self) -> None:
        self._original_id = self.id
        self._original_data = dump_data(self)
        self._original_owner = self._owner
        self._original_sliding = (self.cookie.original_max_age_ms, self.cookie.expires is None)

    def _mark_saved(self, data_json: str) -> None:
        self._saved = (self.id, data_json, self._owner)

    @property
    def new(self) -> bool:  # type: ignore[override]
        """True when the browser did not send this session's id (minted during this request)."""
        return self._cookie_id != self.id

    @property
    def modified(self) -> bool:
        """True when the id, the owner or the data (nested values included) changed."""
        return self._forced or self._is_modified(dump_data(self))

    @modified.setter
    def modified(self, value: bool) -> None:
        self._forced = value

    accessed = True

    @property
    def permanent(self) -> bool:
        """True when the cookie outlives the browser session; setting it uses PERMANENT_SESSION_LIFETIME."""
        return self.cookie.expires is not None

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self.cookie.max_age = self._engine.permanent_lifetime if value else None

    @property
    def owner(self) -> str | None:
        """Who this session belongs to (e.g. ``f"user:{id}"``); listed by ``store.owned(owner)``."""
        return self._owner

    @owner.setter
    def owner(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"session.owner must be a str or None, not {type(value).__name__}")
        self._owner = value

    def _is_modified(self, data_json: str) -> bool:
        return (
            self._forced
            or self.id != self._original_id
            or data_json != self._original_data
            or self._owner != self._original_owner
        )

    def _is_saved(self, data_json: str) -> bool:
        return self._saved == (self.id, data_json, self._owner)

    async def regenerate(self, *, keep_data: bool = False) -> None:
        """A new id, the old record destroyed; the data is cleared unless `keep_data` (Django's cycle_key)."""
        await self._engine.regenerate(self, keep_data)

    async def destroy(self) -> None:
        """Delete the record now and clear the browser's cookie at the end of the request."""
        await self._engine.destroy(self)

    async def reload(self) -> None:
        """Re-read the data from the store; raises SessionNotFound when the record is gone."""
        await self._engine.reload(self)

    async def save(self) -> None:
        """Write the session now (before a long stream, say); the end of the request then skips it."""
        await self._engine.save(self)

    def touch(self) -> None:
        """Reset the cookie's max_age to its original value."""
        self.cookie.reset_max_age()

    def unset(self) -> None:
        """Drop the session for this request (express's `req.session = null`), honouring `unset`."""
        self._unset = True
        self.clear()

    def __repr__(self) -> str:
        return f"<Session {self.id[:6]}… {dict.__repr__(self)}>"


class UnavailableSession(Session):
    """Stands in while the store is down: any use of the data raises a 503."""

    def _mark_original(self) -> None:
        self._original_id, self._original_data, self._original_owner = self.id, "{}", None
        self._original_sliding = (None, True)

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
