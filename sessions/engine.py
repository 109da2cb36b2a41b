"""The request lifecycle: open a session from the cookie, then save, touch or clear it at the end."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask.sessions import NullSession
from quart.sessions import SessionInterface
from werkzeug.exceptions import HTTPException

from .cookie import Cookie, normalize_cookie_options
from .errors import SessionNotFound, SessionTooLarge, SessionUnavailable, StoreUnavailable
from .serialization import OWNER_KEY, dump_data, dump_record, load_record
from .session import Session, UnavailableSession
from .signing import encode_cookie_value, read_cookie, unsign
from .stores.base import Store

if TYPE_CHECKING:
    from quart import Quart
    from quart.wrappers import BaseRequestWebsocket, Response
    from werkzeug.wrappers import Response as WerkzeugResponse

__all__ = ["Policy", "SessionEngine"]

logger = logging.getLogger("sessions")
_MISSING = object()
_MAX_MERGES = 8


class OutOfScopeSession(NullSession):
    """The session of a request outside the cookie's path: there is none."""

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "no session here: this request's path is outside the session cookie's path"
        )

    __setitem__ = __delitem__ = clear = pop = popitem = update = setdefault = _fail  # type: ignore[assignment,unused-ignore]


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything decided once at start-up; the per-request path only applies it."""

    name: str
    secrets: tuple[bytes, ...]
    cookie: Mapping[str, Any] | Callable[[BaseRequestWebsocket], Mapping[str, Any]]
    resave: bool
    rolling: bool
    save_uninitialized: bool
    unset: str
    proxy: bool | None
    genid: Callable[[BaseRequestWebsocket], str]
    max_size: int
    permanent_lifetime: timedelta
    retry_after: int


class SessionEngine(SessionInterface):
    """Quart's SessionInterface with express-session's rules (reference §4)."""

    null_session_class = OutOfScopeSession

    def __init__(self, policy: Policy, store: Store) -> None:
        self.policy = policy
        self.store = store
        self.permanent_lifetime = policy.permanent_lifetime

    def _cookie_options(self, request: BaseRequestWebsocket) -> Mapping[str, Any]:
        options = self.policy.cookie
        return normalize_cookie_options(options(request)) if callable(options) else options

    def _is_secure(self, request: BaseRequestWebsocket) -> bool:
        if request.scheme in ("https", "wss"):
            return True
        if self.policy.proxy:
            forwarded = request.headers.get("X-Forwarded-Proto", "")
            return forwarded.split(",", 1)[0].strip().lower() == "https"
        return False

    @staticmethod
    def _in_scope(path: str, cookie_path: str) -> bool:
        # A segment boundary, unlike express's plain prefix test that lets /app match /application.
        if path == cookie_path or cookie_path in ("", "/"):
            return True
        prefix = cookie_path if cookie_path.endswith("/") else cookie_path + "/"
        return path.startswith(prefix)

    async def open_session(self, app: Quart, request: BaseRequestWebsocket) -> Session | None:
        options = self._cookie_options(request)
        if not self._in_scope(request.path, options.get("path") or "/"):
            return None
        secure = self._is_secure(request)
        cookie_id = None
        header = request.headers.get("Cookie")
        if header:
            value = read_cookie(header, self.policy.name)
            if value is not None:
                cookie_id = unsign(value, self.policy.secrets)
        if cookie_id is not None:
            try:
                raw = await self.store.read(cookie_id)
            except StoreUnavailable as error:
                logger.warning("session store unavailable while loading a session: %s", error)
                return UnavailableSession(
                    self, request, cookie_id, Cookie(), cookie_id=cookie_id, secure_request=secure
                )
            if raw is not None:
                record = load_record(raw)
                if record is not None:
                    return self._loaded(request, cookie_id, record, raw, secure)
                logger.warning(
                    "session record %s… is corrupt; starting a new session", cookie_id[:6]
                )
        return self._generate(request, cookie_id, secure, options)

    def _loaded(
        self,
        request: BaseRequestWebsocket,
        sid: str,
        record: dict[str, Any],
        raw: bytes,
        secure: bool,
    ) -> Session:
        try:
            cookie = Cookie.from_json(record.pop("cookie"))
        except (TypeError, ValueError):
            logger.warning(
                "session record %s… has an unreadable cookie; starting a new session", sid[:6]
            )
            return self._generate(request, sid, secure)
        owner = record.pop(OWNER_KEY, None)
        session = Session(
            self,
            request,
            sid,
            cookie,
            cookie_id=sid,
            secure_request=secure,
            data=record,
            owner=owner if isinstance(owner, str) else None,
            raw=raw,
        )
        if not self.policy.resave:
            session._mark_saved(session._original_data)
        return session

    def _new_id(self, request: BaseRequestWebsocket) -> str:
        sid = self.policy.genid(request)
        if not isinstance(sid, str) or not sid:
            raise TypeError(f"genid must return a non-empty str, not {sid!r}")
        return sid

    def _generate(
        self,
        request: BaseRequestWebsocket,
        cookie_id: str | None,
        secure: bool,
        options: Mapping[str, Any] | None = None,
    ) -> Session:
        cookie = Cookie.from_options(
            options or self._cookie_options(request), secure_request=secure
        )
        return Session(
            self, request, self._new_id(request), cookie, cookie_id=cookie_id, secure_request=secure
        )

    def _reset(self, session: Session) -> None:
        """Turn `session` into a brand-new empty session with a fresh id and cookie."""
        options = self._cookie_options(session.request)
        dict.clear(session)
        session.id = self._new_id(session.request)
        session.cookie = Cookie.from_options(options, secure_request=session.secure_request)
        session._owner = None
        session._raw, session._saved, session._indexed_owner, session._base = None, None, None, "{}"

    async def _forget(self, session: Session) -> None:
        """Delete the stored record of `session`, if it has one, and its owner-index entry."""
        if session._raw is not None or session._saved is not None:
            await self.store.remove(session.id)
            if session._indexed_owner is not None:
                await self.store.index_remove(session._indexed_owner, session.id)

    async def regenerate(self, session: Session, keep_data: bool = False) -> None:
        await self._forget(session)
        if not keep_data:
            self._reset(session)
            return
        data, owner = dict(session), session.owner
        self._reset(session)
        dict.update(session, data)
        session._owner = owner

    async def destroy(self, session: Session) -> None:
        await self._forget(session)
        self._reset(session)
        session._mark_original()
        session._forced = False
        session._destroyed = True
        session._clear_cookie = session._cookie_id is not None

    async def reload(self, session: Session) -> None:
        raw = (await self.store.read_many([session.id]))[0]
        record = None if raw is None else load_record(raw)
        if raw is None or record is None:
            raise SessionNotFound("failed to load session: its record is gone from the store")
        session.cookie = Cookie.from_json(record.pop("cookie"))
        owner = record.pop(OWNER_KEY, None)
        dict.clear(session)
        dict.update(session, record)
        session._owner = session._indexed_owner = owner if isinstance(owner, str) else None
        session._raw = raw
        session._mark_original()
        session._base = session._original_data
        if not self.policy.resave:
            session._mark_saved(session._original_data)

    async def save(self, session: Session) -> None:
        await self._commit(session, dump_data(session))
        session._explicitly_saved = True

    async def save_session(
        self, app: Quart, session: Any, response: Response | WerkzeugResponse | None
    ) -> None:
        if isinstance(session, UnavailableSession):
            if response is not None and response.status_code == 503:
                response.headers.setdefault("Retry-After", str(self.policy.retry_after))
            return
        if not isinstance(session, Session) or session._finished:
            return
        session._finished = True  # Quart calls this again on its error path; do the work once.
        try:
            await self._finish(session, response)
        except StoreUnavailable as error:
            logger.warning(
                "session store unavailable while saving session %s…: %s", session.id[:6], error
            )
            if response is not None:
                await self._respond_unavailable(app, response)

    async def _finish(self, session: Session, response: Response | WerkzeugResponse | None) -> None:
        policy = self.policy
        if session._unset:
            if policy.unset == "destroy":
                await self._forget(session)
            return
        if response is not None and response.status_code >= 500 and not session._explicitly_saved:
            return
        data_json = dump_data(session)
        modified = session._is_modified(data_json)
        if session._destroyed and not modified:
            # Destroyed and left alone: nothing to save, only the old cookie to clear.
            if response is not None and session._clear_cookie:
                response.headers.add("Set-Cookie", session.cookie.clear_header(policy.name))
                response.vary.add("Cookie")
            return
        is_new = session.new
        if not policy.save_uninitialized and is_new and session._saved is None:
            should_save = modified
        else:
            should_save = not session._is_saved(data_json)
        cookie = session.cookie
        if is_new:
            should_set_cookie = policy.save_uninitialized or modified
        else:
            should_set_cookie = policy.rolling or (cookie.expires is not None and modified)
        cookie.reset_max_age()
        if cookie.secure and not session.secure_request:
            # The browser would never send this cookie back: a new record would only be an orphan.
            should_set_cookie = False
            should_save = should_save and not is_new
        if should_save:
            await self._commit(session, data_json)
        elif not is_new:
            await self._touch(session, data_json)
        if response is None:
            return
        if should_set_cookie:
            value = encode_cookie_value(session.id, policy.secrets[0])
            response.headers.add("Set-Cookie", cookie.header(policy.name, value))
        elif session._clear_cookie:
            response.headers.add("Set-Cookie", cookie.clear_header(policy.name))
        if session._cookie_id is not None or should_set_cookie or session._clear_cookie:
            response.vary.add("Cookie")

    def _record(self, session: Session, data_json: str) -> bytes:
        for reserved in ("cookie", OWNER_KEY):
            if reserved in session:
                raise KeyError(f"session[{reserved!r}] is reserved for the stored record")
        raw = dump_record(session.cookie.to_json(), data_json, session.owner).encode()
        if len(raw) > self.policy.max_size:
            raise SessionTooLarge(
                f"session {session.id[:6]}… is {len(raw)} bytes serialized, over max_size="
                f"{self.policy.max_size}; keep large data elsewhere and store a reference"
            )
        return raw

    async def _touch(self, session: Session, data_json: str) -> None:
        store, cookie = self.store, session.cookie
        if store.disable_touch or store.disable_ttl:
            return
        if store.touches_on_read and session._original_sliding == (
            cookie.original_max_age_ms,
            cookie.expires is None,
        ):
            return  # the read already slid the expiry by the same amount
        raw = self._record(session, data_json) if callable(store.ttl) else b"{}"
        ttl = store.ttl_for_cookie(cookie.expires, lambda: load_record(raw) or {})
        if ttl is not None and ttl <= 0:
            await store.remove(session.id)
        else:
            await store.expire(session.id, ttl)

    async def _commit(self, session: Session, data_json: str) -> None:
        store = self.store
        raw = self._record(session, data_json)
        ttl = store.ttl_for_cookie(session.cookie.expires, lambda: load_record(raw) or {})
        if ttl is not None and ttl <= 0:
            await self._forget(session)
            session._raw = None
            session._mark_saved(data_json)
            return
        if session._raw is None:
            await store.write(session.id, raw, ttl)
        else:
            expected = session._raw
            for _ in range(_MAX_MERGES):
                outcome = await store.replace(session.id, expected, raw, ttl)
                if outcome is True:
                    break
                if outcome is None or outcome is False:
                    # Destroyed (logout elsewhere) or expired mid-request: never resurrect it.
                    logger.info(
                        "session %s… vanished during the request; not saved", session.id[:6]
                    )
                    session._raw = None
                    session._mark_saved(data_json)
                    return
                expected = outcome
                data_json = self._merge(session, data_json, outcome)
                raw = self._record(session, data_json)
            else:
                await store.write(session.id, raw, ttl)
        session._raw, session._base = raw, data_json
        if session.owner != session._indexed_owner:
            if session._indexed_owner is not None:
                await store.index_remove(session._indexed_owner, session.id)
            if session.owner is not None:
                await store.index_add(session.owner, session.id)
            session._indexed_owner = session.owner
        session._mark_saved(data_json)

    @staticmethod
    def _merge(session: Session, data_json: str, current_raw: bytes) -> str:
        """Apply this request's changes (against what it loaded) on top of the newer stored record."""
        current = load_record(current_raw) or {"cookie": {}}
        base, ours = json.loads(session._base), json.loads(data_json)
        merged = {k: v for k, v in current.items() if k not in ("cookie", OWNER_KEY)}
        for key in base.keys() | ours.keys():
            if base.get(key, _MISSING) != ours.get(key, _MISSING):
                if key in ours:
                    merged[key] = ours[key]
                else:
                    merged.pop(key, None)
        if session.owner == session._indexed_owner and isinstance(current.get(OWNER_KEY), str):
            session._owner = session._indexed_owner = current[OWNER_KEY]
        dict.clear(session)
        dict.update(session, merged)
        session._base = dump_data(
            {k: v for k, v in current.items() if k not in ("cookie", OWNER_KEY)}
        )
        return dump_data(session)

    async def _respond_unavailable(self, app: Quart, response: Response | WerkzeugResponse) -> None:
        """Turn the finished response into the app's 503 page: its data was never saved."""
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
