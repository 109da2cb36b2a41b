"""The engine's bookkeeping for one request's session, changed only through the named steps below."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from .cookie import Cookie
from .decision import Facts
from .record import parse_record
from .serialization import dump_data
from .session import Session, UnavailableSession

if TYPE_CHECKING:
    from quart.wrappers import BaseRequestWebsocket

__all__ = ["SessionState"]

# (id, data JSON, owner, cookie settings): what a session is, for "modified" and "saved".
Snapshot = tuple[str, str, str | None, tuple[Any, ...]]


class Engine(Protocol):
    """What a SessionState asks of the engine on behalf of the session's methods."""

    permanent_lifetime: timedelta

    async def regenerate(self, state: SessionState, keep_data: bool) -> None: ...
    async def destroy(self, state: SessionState) -> None: ...
    async def reload(self, state: SessionState) -> None: ...
    async def save(self, state: SessionState) -> None: ...


class SessionState:
    """What was loaded, what the store holds now, and what the request did: one object per request."""

    __slots__ = (
        "engine",
        "request",
        "session",
        "secure",
        "cookie_id",
        "resign",
        "renewed",
        "stored",
        "stored_as",
        "indexed_owner",
        "original",
        "forced",
        "destroyed",
        "unset",
        "written",
        "gone",
        "finished",
        "unavailable",
    )

    session: Session
    original: Snapshot

    def __init__(
        self,
        engine: Engine,
        request: BaseRequestWebsocket,
        *,
        secure: bool,
        cookie_id: str | None,
        resign: bool = False,
        renewed: bool = False,
    ) -> None:
        self.engine = engine
        self.request = request
        self.secure = secure
        self.cookie_id = cookie_id  # the verified id the browser sent
        self.resign = resign  # verified by a fallback secret: sign it again with the current one
        self.renewed = renewed  # the read already slid the expiry
        self.stored: bytes | None = None  # the record as last read or written: the merge base
        self.stored_as: Snapshot | None = None  # the session as the store holds it
        self.indexed_owner: str | None = None
        self.forced = self.destroyed = self.unset = self.written = False
        self.gone = self.finished = self.unavailable = False

    # ------------------------------------------------------------------ beginnings

    @classmethod
    def new(
        cls,
        engine: Engine,
        request: BaseRequestWebsocket,
        sid: str,
        cookie: Cookie,
        *,
        secure: bool,
        cookie_id: str | None,
    ) -> SessionState:
        """A session minted for this request (no valid cookie, or its record is gone)."""
        state = cls(engine, request, secure=secure, cookie_id=cookie_id)
        state.session = Session(state, sid, cookie)
        state.original = state.snapshot("{}")
        return state

    @classmethod
    def loaded(
        cls,
        engine: Engine,
        request: BaseRequestWebsocket,
        sid: str,
        raw: bytes,
        cookie: Cookie,
        owner: str | None,
        data: dict[str, Any],
        *,
        secure: bool,
        resign: bool,
        renewed: bool,
    ) -> SessionState:
        """A session read from the store under the id the browser sent."""
        state = cls(engine, request, secure=secure, cookie_id=sid, resign=resign, renewed=renewed)
        state.session = Session(state, sid, cookie, data, owner)
        state.stored, state.indexed_owner = raw, owner
        state.original = state.stored_as = state.snapshot(dump_data(data))
        return state

    @classmethod
    def unavailable_for(
        cls, engine: Engine, request: BaseRequestWebsocket, sid: str, *, secure: bool
    ) -> SessionState:
        """The stand-in while the store cannot be reached: any use of it is a 503."""
        state = cls(engine, request, secure=secure, cookie_id=sid)
        state.session = UnavailableSession(state, sid, Cookie())
        state.original = (sid, "{}", None, ())
        state.unavailable = True
        return state

    # ------------------------------------------------------------------ questions

    def snapshot(self, data_json: str) -> Snapshot:
        session = self.session
        return (session.id, data_json, session.owner, session.cookie.settings())

    def is_new(self) -> bool:
        return self.cookie_id != self.session.id

    def is_modified(self, data_json: str) -> bool:
        return self.forced or self.snapshot(data_json)[:3] != self.original[:3]

    def untouched(self, data_json: str) -> bool:
        """Loaded, renewed by its read, and left exactly as it was: decide() has nothing to do."""
        return (
            self.renewed
            and self.cookie_id == self.session.id
            and not (self.forced or self.destroyed or self.unset or self.written or self.resign)
            and self.stored_as == self.snapshot(data_json)
        )

    def permanent_lifetime(self) -> timedelta:
        return self.engine.permanent_lifetime

    def facts(self, status: int | None, data_json: str, *, can_renew: bool) -> Facts:
        """This request's session as the end-of-request decision sees it."""
        now = self.snapshot(data_json)
        cookie = self.session.cookie
        return Facts(
            status=status,
            new=self.is_new(),
            modified=self.forced or now[:3] != self.original[:3],
            saved=self.stored_as == now,
            written=self.written,
            cookie_changed=self.stored_as is not None and self.stored_as[3] != now[3],
            destroyed=self.destroyed,
            unset=self.unset,
            has_expiry=cookie.expires is not None,
            # No response (a websocket) carries no cookie either.
            sendable=status is not None and not (cookie.secure and not self.secure),
            had_cookie=self.cookie_id is not None,
            resign=self.resign,
            renewed=self.renewed,
            can_renew=can_renew,
        )

    # ------------------------------------------------------------------ steps

    def force_modified(self, value: bool) -> None:
        self.forced = value

    def mark_unset(self) -> None:
        self.unset = True

    def start_over(self, sid: str, cookie: Cookie, *, keep_data: bool) -> None:
        """A new id (regenerate, destroy): nothing is stored under it yet."""
        session = self.session
        data, owner = (dict(session), session.owner) if keep_data else ({}, None)
        dict.clear(session)
        dict.update(session, data)
        session.id, session.cookie, session.owner = sid, cookie, owner
        self.stored = self.stored_as = self.indexed_owner = None
        self.gone = False

    def mark_destroyed(self) -> None:
        """Destroyed: the fresh empty session that replaced it counts as untouched."""
        self.destroyed, self.forced = True, False
        self.original = self.snapshot("{}")

    def mark_reloaded(
        self, raw: bytes, cookie: Cookie, owner: str | None, data: dict[str, Any]
    ) -> None:
        session = self.session
        dict.clear(session)
        dict.update(session, data)
        session.cookie, session.owner = cookie, owner
        self.stored, self.indexed_owner, self.gone = raw, owner, False
        self.original = self.stored_as = self.snapshot(dump_data(data))

    def mark_stored(self, raw: bytes, record: bytes, data_json: str) -> None:
        """Written: `raw` is what the store now holds (ours, or ours merged into a newer record)."""
        if raw != record and not self.finished:
            # Another request changed other keys meanwhile: carry on from the merged record.
            parsed = parse_record(raw)
            if parsed is not None:
                dict.clear(self.session)
                dict.update(self.session, parsed.data)
                data_json = dump_data(parsed.data)
        self.stored = raw
        self.stored_as = self.snapshot(data_json)

    def mark_written(self) -> None:
        self.written = True

    def mark_gone(self) -> None:
        """The record vanished (destroyed elsewhere, expired): it is never written back."""
        self.gone = True
        self.stored = self.stored_as = None

    def mark_indexed(self, owner: str | None) -> None:
        self.indexed_owner = owner

    # ------------------------------------------------------------------ the session's methods

    async def regenerate(self, keep_data: bool) -> None:
        await self.engine.regenerate(self, keep_data)

    async def destroy(self) -> None:
        await self.engine.destroy(self)

    async def reload(self) -> None:
        await self.engine.reload(self)

    async def save(self) -> None:
        await self.engine.save(self)
