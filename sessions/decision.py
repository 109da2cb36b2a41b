"""The end-of-request decision: what to do with the store and the cookie, as a value.

`decide` is a pure function of the policy's rules and a request's facts, so the whole of
express-session's logic (and our deviations) can be read, and tested, as a table.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

__all__ = ["CookieAction", "Decision", "Facts", "Rules", "StoreAction", "decide"]


class StoreAction(Enum):
    """What happens to the stored record."""

    NOTHING = "nothing"
    WRITE = "write"  # a new record, or this request's changes merged into the stored one
    RENEW = "renew"  # slide the expiry only (express's store.touch)
    DELETE = "delete"


class CookieAction(Enum):
    """What the response says to the browser."""

    NOTHING = "nothing"
    SET = "set"
    CLEAR = "clear"


class Rules(NamedTuple):
    """The options that shape the decision (see `Policy`)."""

    resave: bool = False
    rolling: bool = False
    save_uninitialized: bool = False
    unset_destroys: bool = False


class Facts(NamedTuple):
    """What one request did to its session, as seen at the end of it."""

    status: int | None = 200  # None: a websocket, which has no response to carry a cookie
    new: bool = False  # the browser did not send this id (minted, or regenerated, this request)
    modified: bool = False  # id, owner or data changed (express's isModified), or `modified = True`
    saved: bool = (
        False  # the store holds the session exactly as it is now (cookie settings included)
    )
    written: bool = False  # save() stored it during this request
    cookie_changed: bool = False  # max_age or an attribute differs from the stored cookie
    destroyed: bool = False  # destroy() was called and the session left alone afterwards
    unset: bool = False  # session.unset() (express's `req.session = null`)
    has_expiry: bool = False  # a persistent cookie (cookie.expires set)
    sendable: bool = True  # a response can carry it (not a websocket; not Secure on plain HTTP)
    had_cookie: bool = False  # the browser sent a valid cookie for some session
    resign: bool = False  # that cookie was verified by a fallback secret
    renewed: bool = False  # the read already slid the expiry
    can_renew: bool = True  # the store slides expiries (not disable_touch/disable_ttl)


class Decision(NamedTuple):
    """The store action, the cookie action, and whether a failed store action must fail the response."""

    store: StoreAction = StoreAction.NOTHING
    cookie: CookieAction = CookieAction.NOTHING
    essential: bool = False


NOTHING = Decision()


def decide(rules: Rules, facts: Facts) -> Decision:
    """express-session's shouldDestroy / shouldSave / shouldTouch / shouldSetCookie, and our deviations."""
    if facts.unset:
        # express: `unset: 'destroy'` deletes the record, `keep` leaves it; no cookie either way.
        return Decision(StoreAction.DELETE) if rules.unset_destroys else NOTHING
    if facts.status is not None and facts.status >= 500 and not facts.written:
        return NOTHING  # ours: a failed request does not half-commit (as Django)
    if facts.destroyed and not facts.modified:
        # ours: destroy() also clears the browser's cookie (express #507).
        return Decision(cookie=CookieAction.CLEAR if facts.had_cookie else CookieAction.NOTHING)

    if not rules.save_uninitialized and facts.new and not facts.written:
        save = facts.modified
    else:
        # express's isSaved: a loaded session counts as saved unless resave asks to write it anyway.
        save = not (facts.saved and (facts.written or not rules.resave))
    if facts.new:
        set_cookie = rules.save_uninitialized or facts.modified
    else:
        set_cookie = rules.rolling or (facts.has_expiry and facts.modified) or facts.resign
    if not facts.sendable:
        # ours: a new session whose cookie the browser would never return is not stored either.
        set_cookie = False
        save = save and not facts.new

    if save:
        store = StoreAction.WRITE
    elif not facts.new and facts.can_renew and not (facts.renewed or facts.written):
        store = StoreAction.RENEW
    else:
        store = StoreAction.NOTHING
    # A write only because of saveUninitialized or resave may fail quietly (express reports it
    # out of band); losing the request's own changes may not.
    essential = save and (facts.modified or facts.cookie_changed)
    return Decision(store, CookieAction.SET if set_cookie else CookieAction.NOTHING, essential)
