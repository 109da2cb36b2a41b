"""Sign-ins: who is signed in lives in the session; revocation destroys session records.

A signed-in request reads nothing but its session: the username and the rest a page shows
were copied into the session at sign-in.  Nothing in the session vouches for the password,
so everything that must end a sign-in (a password change, "sign out other sessions",
"revoke") destroys the session records themselves, through the sessions store's owner index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sessions import Session, SessionInfo, Store

from .errors import StaleSignIn, unavailable_as_503
from .users import User, UserStore, owner_key

__all__ = [
    "CREATED",
    "REMEMBER",
    "USER_AGENT",
    "SessionUser",
    "SignIns",
    "user_in",
]

# Session keys; the leading underscore keeps them apart from the application's own data.
USER_ID = "_auth_user_id"
USERNAME = "_auth_username"
MEMBER_SINCE = "_auth_member_since"
CREATED = "_auth_created"
USER_AGENT = "_auth_user_agent"
REMEMBER = "_auth_remember"
USER_AGENT_LENGTH = 200
SESSIONS_STORE = "the session store"


@dataclass(frozen=True)
class SessionUser:
    """The signed-in user as the session remembers them (no password hash: look that up)."""

    id: str
    username: str
    created: str

    @property
    def is_authenticated(self) -> bool:
        """Always true: templates test ``current_user.is_authenticated``."""
        return True


def user_in(session: Session) -> SessionUser | None:
    """The user ``session`` is signed in as, or ``None``; reads only the session's data."""
    user_id, username = session.get(USER_ID), session.get(USERNAME)
    if not isinstance(user_id, str) or not isinstance(username, str):
        return None  # anonymous, or a sign-in from before usernames were kept in the session
    return SessionUser(user_id, username, str(session.get(MEMBER_SINCE) or ""))


class SignIns:
    """Signs users in and out, lists and ends their sessions, keeps each user under a cap.

    Example::

        signins = SignIns(users, app.extensions["sessions"].store, remember_duration=30 * 86400)
        await signins.sign_in(session, user, remember=True, user_agent="curl/8")
    """

    def __init__(
        self, users: UserStore, store: Store, *, remember_duration: float, max_sessions: int
    ) -> None:
        if max_sessions < 1:
            raise ValueError("AUTH_MAX_SESSIONS must be at least 1")
        self.users = users
        self.store = store
        self.remember_duration = remember_duration
        self.max_sessions = max_sessions

    async def sign_in(
        self, session: Session, user: User, *, remember: bool, user_agent: str
    ) -> SessionUser:
        """Sign ``user`` (as read before their password was checked) in on ``session``.

        The session gets a new id (no fixation), the user's name and details, and is written at
        once.  Then the user's generation is read again: if the password changed since ``user``
        was read, that change's ``destroy_owned`` may have run before this session existed, so
        the session is destroyed here and ``StaleSignIn`` raised.  Either the change's
        ``destroy_owned`` saw this session in the owner index, or it ran before the session
        was written, and then the re-read comes after the new generation was stored.
        """
        signed_in = SessionUser(user.id, user.username, user.created)
        with unavailable_as_503(SESSIONS_STORE):
            # Like Django's login(): the visitor's data (a count, a cart) stays under the new id,
            # unless the session was another user's, whose data must not pass to this one.
            previous = session.get(USER_ID)
            await session.regenerate(keep_data=previous is None or previous == user.id)
            session[USER_ID] = user.id
            session[USERNAME] = user.username
            session[MEMBER_SINCE] = user.created
            # Microseconds: the order of sign-ins decides which session the cap ends first.
            session[CREATED] = datetime.now(UTC).isoformat()
            session[USER_AGENT] = user_agent[:USER_AGENT_LENGTH]
            session[REMEMBER] = remember
            session.owner = owner_key(user.id)
            session.cookie.max_age = self.remember_duration if remember else None
            await session.save()
        current = await self.users.get(user.id)
        if current is None or current.generation != user.generation:
            with unavailable_as_503(SESSIONS_STORE):
                await session.destroy()
            raise StaleSignIn(user.id)
        await self._keep_under_cap(user.id, keep=session.id)
        return signed_in

    async def sign_out(self, session: Session) -> None:
        """Destroy ``session``'s record now; its cookie is cleared with the response."""
        with unavailable_as_503(SESSIONS_STORE):
            await session.destroy()

    async def sessions_of(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions, most recently seen first."""
        with unavailable_as_503(SESSIONS_STORE):
            return await self.store.owned(owner_key(user_id))

    async def end_session(self, session_id: str) -> None:
        """Destroy one session record: its cookie is anonymous from its next request on."""
        with unavailable_as_503(SESSIONS_STORE):
            await self.store.destroy(session_id)

    async def end_other_sessions(self, user_id: str, keep: str | None) -> int:
        """Destroy every session of the user but ``keep``; how many there were."""
        with unavailable_as_503(SESSIONS_STORE):
            return await self.store.destroy_owned(owner_key(user_id), keep=keep)

    async def _keep_under_cap(self, user_id: str, keep: str) -> None:
        """End the least recently seen sessions beyond ``max_sessions`` (never ``keep``)."""
        live = await self.sessions_of(user_id)
        excess = len(live) - self.max_sessions
        if excess <= 0:
            return
        others = sorted((info for info in live if info.id != keep), key=_staleness)
        for info in others[:excess]:
            await self.end_session(info.id)


_EPOCH = datetime.fromtimestamp(0, UTC)


def _staleness(info: SessionInfo) -> tuple[datetime, str]:
    """Least recently seen first; among equals, the earliest sign-in."""
    created: Any = info.data.get(CREATED)
    return (info.last_seen or _EPOCH, str(created or ""))
