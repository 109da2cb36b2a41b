"""The request lifecycle: open the session from the cookie, then carry out the end-of-request decision."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from quart import has_request_context, has_websocket_context
from quart.globals import request_ctx, websocket_ctx
from quart.sessions import SessionInterface
from werkzeug.exceptions import HTTPException

from .cookie import Cookie
from .decision import CookieAction, Decision, StoreAction, decide
from .errors import SessionNotFound, SessionTooLarge, SessionUnavailable, StoreUnavailable
from .expiry import Renewal, now_ms
from .policy import Policy
from .record import RESERVED, change_between, dump_record, parse_record
from .serialization import dump_data
from .session import OutOfScopeSession, Session, SkippedSession, state_of
from .signing import encode_cookie_value
from .state import SessionState
from .stores.base import Store

if TYPE_CHECKING:
    from quart import Quart
    from quart.wrappers import BaseRequestWebsocket, Response
    from werkzeug.wrappers import Response as WerkzeugResponse

__all__ = ["SessionEngine"]

logger = logging.getLogger("sessions")
_ROUTE_CACHE = 4096
AnyResponse = Any  # Quart's or Werkzeug's Response; None for a websocket


class SessionEngine(SessionInterface):
    """Quart's SessionInterface with express-session's rules; the store only maps ids to records."""

    null_session_class = OutOfScopeSession

    def __init__(self, policy: Policy, store: Store) -> None:
        self.policy = policy
        self.store = store
        self.permanent_lifetime = policy.permanent_lifetime
        self._skipped = SkippedSession()
        # Options under which an untouched loaded session never needs a store action or cookie.
        self._quiet = not (policy.rolling or policy.resave)
        self._route_skips: dict[tuple[type, str, str, str], bool] = {}

    async def open_session(self, app: Quart, request: BaseRequestWebsocket) -> Session | None:
        policy = self.policy
        options = policy.cookie_options(request)
        if not policy.in_scope(request, options):
            return None
        secure = policy.is_secure(request)
        verified = policy.read_cookie(request)
        if verified is None:
            return self._new(request, secure, cookie_id=None).session
        if self._skipped_route(app, request):
            return self._skipped  # type: ignore[return-value]
        sid, secret_index = verified
        renewal = self.store.renewal(now_ms(), policy.anonymous_ttl)
        try:
            raw = await self.store.load(sid, renewal)
        except StoreUnavailable as error:
            logger.warning("session store unavailable while loading a session: %s", error)
            return SessionState.unavailable_for(self, request, sid, secure=secure).session
        loaded = None if raw is None else self._parse(raw, sid)
        if loaded is None:
            return self._new(request, secure, cookie_id=sid).session  # never adopt the client's id
        cookie, owner, data = loaded
        state = SessionState.loaded(
            self, request, sid, raw, cookie, owner, data,  # type: ignore[arg-type]
            secure=secure, resign=secret_index > 0, renewed=renewal is not None,
        )  # fmt: skip
        return state.session

    async def save_session(self, app: Quart, session: Any, response: AnyResponse) -> None:
        if not isinstance(session, Session):
            return
        state = state_of(session)
        if state.finished:
            return  # Quart calls this again on its error path; do the work once
        state.finished = True
        status = None if response is None else response.status_code
        if state.unavailable:
            if status == 503:
                response.headers.setdefault("Retry-After", str(self.policy.retry_after))
            return
        data_json = dump_data(session)
        if self._quiet and state.untouched(data_json):
            # The most common request: decide() says nothing to store, no cookie (the decision
            # tests hold this shortcut to it). Only the Vary header remains.
            if response is not None:
                _vary_on_cookie(response)
            return
        if state.is_new() and self._skipped_route(app, state.request):
            if state.is_modified(data_json):
                raise RuntimeError(SkippedSession.reason)
            return
        decision = decide(
            self.policy.rules, state.facts(status, data_json, can_renew=self._can_renew())
        )
        finishing = self._carry_out(app, state, decision, data_json, response)
        if response is None:
            # A websocket's session is saved as its handler returns, often while the client
            # closes the socket and the task is cancelled: let the write finish regardless.
            await asyncio.shield(finishing)
        else:
            await finishing

    async def _carry_out(
        self,
        app: Quart,
        state: SessionState,
        decision: Decision,
        data_json: str,
        response: AnyResponse,
    ) -> None:
        session, stored = state.session, True
        try:
            if decision.store is StoreAction.WRITE:
                stored = await self._write(state, data_json)
            elif decision.store is StoreAction.RENEW:
                await self.store.renew(session.id, self._renewal_at_end(state))
            elif decision.store is StoreAction.DELETE:
                await self._forget(state)
        except StoreUnavailable as error:
            logger.warning("session store unavailable while saving %s…: %s", session.id[:6], error)
            if decision.essential and response is not None:
                await self._respond_unavailable(app, response)
                return
            stored = decision.store is not StoreAction.WRITE
        if response is None:
            return
        name = self.policy.name
        if decision.cookie is CookieAction.SET and stored:
            value = encode_cookie_value(session.id, self.policy.secrets[0])
            response.headers.add("Set-Cookie", session.cookie.header(name, value))
        elif decision.cookie is CookieAction.CLEAR:
            response.headers.add("Set-Cookie", session.cookie.clear_header(name))
        if state.cookie_id is not None or decision.cookie is not CookieAction.NOTHING:
            _vary_on_cookie(response)

    # ------------------------------------------------------------------ reading

    def _skipped_route(self, app: Quart, request: BaseRequestWebsocket) -> bool:
        """Whether the request's route uses no session (static, 404s, @skip_session, skip=)."""
        # Quart opens the session before it matches the URL; matching costs about 5 µs, so the
        # answer is remembered per method, host and path (bounded; routes are fixed once serving).
        key = (type(request), request.method, request.host, request.path)
        skips = self._route_skips.get(key)
        if skips is not None:
            return skips
        if request.url_rule is None and request.routing_exception is None:
            context = request_ctx._get_current_object() if has_request_context() else None  # type: ignore[attr-defined]
            if context is None and has_websocket_context():
                context = websocket_ctx._get_current_object()  # type: ignore[attr-defined]
            if context is not None and context.request_websocket is request:
                context.match_request()
        endpoint = request.endpoint
        view = app.view_functions.get(endpoint) if endpoint else None
        skips = self.policy.skips(endpoint, view)
        if len(self._route_skips) >= _ROUTE_CACHE:
            self._route_skips.clear()
        self._route_skips[key] = skips
        return skips

    def _parse(self, raw: bytes, sid: str) -> tuple[Cookie, str | None, dict[str, Any]] | None:
        """The loaded record's parts, or None (a warning) when it is unreadable or has expired."""
        parsed = parse_record(raw)
        try:
            cookie = None if parsed is None else Cookie.from_json(parsed.cookie)
        except (TypeError, ValueError):
            cookie = None
        if parsed is None or cookie is None:
            logger.warning("session record %s… is unreadable; starting a new session", sid[:6])
            return None
        expires = cookie.expires_ms
        if expires is not None and expires <= now_ms():
            return None  # its cookie expired a moment ago: the truth is cookie.expires, to the ms
        return cookie, parsed.owner, parsed.data

    def _new(
        self, request: BaseRequestWebsocket, secure: bool, *, cookie_id: str | None
    ) -> SessionState:
        sid, cookie = self._new_identity(request, secure)
        return SessionState.new(self, request, sid, cookie, secure=secure, cookie_id=cookie_id)

    def _new_identity(self, request: BaseRequestWebsocket, secure: bool) -> tuple[str, Cookie]:
        sid = self.policy.genid(request)
        if not isinstance(sid, str) or not sid:
            raise TypeError(f"genid must return a non-empty str, not {sid!r}")
        options = self.policy.cookie_options(request)
        return sid, Cookie.from_options(options, secure_request=secure)

    # ------------------------------------------------------------------ writing

    def _can_renew(self) -> bool:
        return not (self.store.disable_touch or self.store.disable_ttl)

    def _renewal_at_end(self, state: SessionState) -> Renewal:
        """A renewal for a store that could not slide the expiry while reading (a ttl function)."""
        at = now_ms()
        renewal = self.store.renewal(at, self.policy.anonymous_ttl)
        if renewal is not None:
            return renewal
        deadline = self._deadline(state, at) or at
        return Renewal(at, deadline - at, deadline - at)

    def _record(self, state: SessionState, data_json: str) -> tuple[bytes, str]:
        """The record's bytes and its cookie's JSON text."""
        session = state.session
        for key in RESERVED:
            if key in session:
                raise KeyError(f"session[{key!r}] is reserved for the stored record")
        cookie_text = session.cookie.to_json_text()
        record = dump_record(cookie_text, session.owner, data_json)
        if len(record) > self.policy.max_size:
            raise SessionTooLarge(
                f"session {session.id[:6]}… is {len(record)} bytes serialized, over max_size="
                f"{self.policy.max_size}; keep large data elsewhere and store a reference"
            )
        return record, cookie_text

    def _deadline(self, state: SessionState, at: int) -> int | None:
        """When the stored record expires, per the store's ttl (None: never)."""
        session = state.session
        return self.store.deadline_ms(
            at,
            session.cookie.expires_ms,
            session.owner is not None,
            lambda: {"cookie": session.cookie.to_json(), **session},
            self.policy.anonymous_ttl,
        )

    async def _write(self, state: SessionState, data_json: str) -> bool:
        """Store the session: a new record, or this request's changes merged into the stored one."""
        session = state.session
        if state.gone:
            return False
        record, cookie_text = self._record(state, data_json)
        at = now_ms()
        expires = self._deadline(state, at)
        if expires is not None and expires <= at:
            await self._forget(state)  # its cookie has already expired: express deletes it
            state.mark_gone()
            return False
        if state.stored is None:
            await self.store.write(session.id, record, expires)
            raw: bytes | None = record
        else:
            _, before_data, before_owner, _ = state.stored_as or (None, "{}", None, None)
            change = change_between(before_data, before_owner, cookie_text, session.owner, session)
            # A store that merges in this process may take `record` when nothing changed underneath.
            change = change._replace(base=state.stored, result=record)
            raw = await self.store.apply(session.id, change, expires)
        if raw is None:
            # Destroyed (a logout elsewhere) or expired during the request: never resurrect it.
            logger.info("session %s… vanished during the request; not saved", session.id[:6])
            state.mark_gone()
            return False
        state.mark_stored(raw, record, data_json)
        if session.owner != state.indexed_owner:
            if state.indexed_owner is not None:
                await self.store.index_remove(state.indexed_owner, session.id)
            if session.owner is not None:
                await self.store.index_add(session.owner, session.id)
            state.mark_indexed(session.owner)
        return True

    async def _forget(self, state: SessionState) -> None:
        """Delete the session's record, if it has one, and its owner-index entry."""
        if state.stored is not None:
            await self.store.delete(state.session.id)
            if state.indexed_owner is not None:
                await self.store.index_remove(state.indexed_owner, state.session.id)

    # ------------------------------------------------------------------ the session's methods

    async def regenerate(self, state: SessionState, keep_data: bool) -> None:
        await self._forget_or_503(state)
        sid, cookie = self._new_identity(state.request, state.secure)
        state.start_over(sid, cookie, keep_data=keep_data)

    async def destroy(self, state: SessionState) -> None:
        await self._forget_or_503(state)
        sid, cookie = self._new_identity(state.request, state.secure)
        state.start_over(sid, cookie, keep_data=False)
        state.mark_destroyed()

    async def reload(self, state: SessionState) -> None:
        try:
            raw = await self.store.load(state.session.id)
        except StoreUnavailable as error:
            raise SessionUnavailable(retry_after=self.policy.retry_after) from error
        loaded = None if raw is None else self._parse(raw, state.session.id)
        if raw is None or loaded is None:
            raise SessionNotFound("failed to load session: its record is gone from the store")
        state.mark_reloaded(raw, *loaded)

    async def save(self, state: SessionState) -> None:
        try:
            await self._write(state, dump_data(state.session))
        except StoreUnavailable as error:
            raise SessionUnavailable(retry_after=self.policy.retry_after) from error
        state.mark_written()

    async def _forget_or_503(self, state: SessionState) -> None:
        try:
            await self._forget(state)
        except StoreUnavailable as error:
            raise SessionUnavailable(retry_after=self.policy.retry_after) from error

    # ------------------------------------------------------------------ the store is down

    async def _respond_unavailable(self, app: Quart, response: Response | WerkzeugResponse) -> None:
        """Turn the finished response into the app's 503 page: its session was never saved."""
        error = SessionUnavailable(retry_after=self.policy.retry_after)
        handled = await app.handle_user_exception(error)
        if isinstance(handled, HTTPException):
            status, body = handled.code or 503, handled.get_body().encode()
            headers: list[tuple[str, str]] = list(handled.get_headers())
        else:
            replacement = await app.make_response(handled)
            status, body = replacement.status_code, await replacement.get_data()  # type: ignore[misc]
            headers = list(replacement.headers.items())
        response.status_code = status
        response.headers.clear()
        for key, value in headers:
            response.headers.add(key, value)
        response.headers.setdefault("Retry-After", str(self.policy.retry_after))
        response.set_data(body)


def _vary_on_cookie(response: AnyResponse) -> None:
    """Add Cookie to Vary (cheaper than werkzeug's parsed `response.vary` on every request)."""
    headers = response.headers
    vary = headers.getlist("Vary")  # .get() raises and catches a KeyError when it is missing
    if not vary:
        headers["Vary"] = "Cookie"
    elif "cookie" not in ",".join(vary).lower():
        headers["Vary"] = ", ".join([*vary, "Cookie"])
