"""The end-of-request decision as a table: express-session's rules, our deviations, unset and destroy.

Each row: the options, what the request did, and what must happen to the store and the cookie.
No store and no app: `decide` is a pure function.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessions.decision import CookieAction, Decision, Facts, Rules, StoreAction, decide

WRITE, RENEW, DELETE, NO_STORE = (
    StoreAction.WRITE,
    StoreAction.RENEW,
    StoreAction.DELETE,
    StoreAction.NOTHING,
)
SET, CLEAR, NO_COOKIE = CookieAction.SET, CookieAction.CLEAR, CookieAction.NOTHING

DEFAULT = Rules()  # resave False, rolling False, save_uninitialized False, unset keep
NEW = Facts(new=True)  # a request without a (valid) cookie, nothing done to its session
LOADED = Facts(new=False, saved=True, had_cookie=True)


def _replace(facts: Facts, **changes: object) -> Facts:
    return facts._replace(**changes)


# a session read from the store, untouched
LOADED_RENEWED = _replace(LOADED, renewed=True)  # ... whose read already slid its expiry


ROWS: list[tuple[str, Rules, Facts, Decision]] = [
    # express: shouldSave / shouldSetCookie for a new session
    ("new, untouched: nothing stored, no cookie (10.6)", DEFAULT, NEW, Decision()),
    ("new, given data: stored and sent (10.7)", DEFAULT, _replace(NEW, modified=True),
     Decision(WRITE, SET, essential=True)),
    ("new, untouched, saveUninitialized: stored and sent, quietly (10.8)",
     Rules(save_uninitialized=True), NEW, Decision(WRITE, SET, essential=False)),
    ("new, untouched, rolling without saveUninitialized: nothing (10.13)",
     Rules(rolling=True), NEW, Decision()),
    # express: a loaded session
    ("loaded, unchanged: touched, no cookie (10.9)", DEFAULT, LOADED, Decision(RENEW)),
    ("loaded, unchanged, read already renewed it: nothing more", DEFAULT, LOADED_RENEWED,
     Decision()),
    ("loaded, unchanged, resave: written again, quietly (10.9)", Rules(resave=True), LOADED,
     Decision(WRITE, NO_COOKIE, essential=False)),
    ("loaded, changed, persistent cookie: stored and re-sent (10.10)", DEFAULT,
     _replace(LOADED, saved=False, modified=True, has_expiry=True),
     Decision(WRITE, SET, essential=True)),
    ("loaded, changed, browser-session cookie: stored, not re-sent (10.11)", DEFAULT,
     _replace(LOADED, saved=False, modified=True), Decision(WRITE, NO_COOKIE, essential=True)),
    ("loaded, unchanged, rolling: cookie on every response (10.12)", Rules(rolling=True),
     LOADED_RENEWED, Decision(NO_STORE, SET)),
    ("loaded, only max_age changed: stored cookie kept in step, no Set-Cookie (express probe)",
     DEFAULT, _replace(LOADED_RENEWED, saved=False, cookie_changed=True, has_expiry=True),
     Decision(WRITE, NO_COOKIE, essential=True)),
    ("loaded, store cannot renew (disable_touch): nothing", DEFAULT,
     _replace(LOADED, can_renew=False), Decision()),
    # save() during the request
    ("new, save() called, unchanged after: no second write, cookie sent (10.28)", DEFAULT,
     _replace(NEW, modified=True, saved=True, written=True), Decision(NO_STORE, SET)),
    ("new, save() called, changed after: the later change is stored too", DEFAULT,
     _replace(NEW, modified=True, written=True), Decision(WRITE, SET, essential=True)),
    ("loaded, save() called, resave: the save counts", Rules(resave=True),
     _replace(LOADED, saved=True, written=True), Decision(NO_STORE)),
    # regenerate: a new id is always modified (express), so stored and sent
    ("regenerated, empty: stored and sent (10.25)", DEFAULT,
     Facts(new=True, modified=True, had_cookie=True), Decision(WRITE, SET, essential=True)),
    # destroy (ours: the browser's cookie is cleared too, express #507)
    ("destroyed, left alone: cookie cleared, nothing stored (10.26)", DEFAULT,
     Facts(new=True, destroyed=True, had_cookie=True), Decision(cookie=CLEAR)),
    ("destroyed on a cookieless request: nothing at all", DEFAULT,
     Facts(new=True, destroyed=True), Decision()),
    ("destroyed, then given data: a new session stored and sent", DEFAULT,
     Facts(new=True, destroyed=True, modified=True, had_cookie=True),
     Decision(WRITE, SET, essential=True)),
    # unset (express's req.session = null)
    ("unset, keep: the record stays, no cookie (10.27)", DEFAULT,
     _replace(LOADED, unset=True, modified=True), Decision()),
    ("unset, destroy: the record is deleted, no cookie (10.27)", Rules(unset_destroys=True),
     _replace(LOADED, unset=True, modified=True), Decision(DELETE)),
    # ours: a failed request does not half-commit
    ("a 5xx discards the request's changes", DEFAULT,
     _replace(LOADED, saved=False, modified=True, has_expiry=True, status=500), Decision()),
    ("a 5xx after save(): the saved part stands, the cookie is sent", DEFAULT,
     _replace(NEW, modified=True, saved=True, written=True, status=503), Decision(NO_STORE, SET)),
    ("a 4xx saves as usual", DEFAULT, _replace(NEW, modified=True, status=404),
     Decision(WRITE, SET, essential=True)),
    # ours: a Secure cookie on plain HTTP
    ("secure cookie on HTTP, new: neither stored nor sent (no orphans)", DEFAULT,
     _replace(NEW, modified=True, sendable=False), Decision()),
    ("secure cookie on HTTP, loaded: still stored, not sent (10.22)", DEFAULT,
     _replace(LOADED, saved=False, modified=True, has_expiry=True, sendable=False),
     Decision(WRITE, NO_COOKIE, essential=True)),
    # ours: a cookie verified by a fallback secret is signed again with the current one
    ("loaded with an old secret: re-signed", DEFAULT, _replace(LOADED_RENEWED, resign=True),
     Decision(NO_STORE, SET)),
    ("loaded with an old secret, insecure Secure cookie: not sent", DEFAULT,
     _replace(LOADED_RENEWED, resign=True, sendable=False), Decision()),
    # a websocket has no response: the same store decision, the cookie is the engine's business
    ("websocket, loaded and changed: stored", DEFAULT,
     _replace(LOADED, saved=False, modified=True, status=None, sendable=False),
     Decision(WRITE, NO_COOKIE, essential=True)),
    ("websocket, new and changed: nothing (no cookie could name it)", DEFAULT,
     _replace(NEW, modified=True, status=None, sendable=False), Decision()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rules", "facts", "expected"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_the_decision_follows_the_table(rules: Rules, facts: Facts, expected: Decision) -> None:
    assert decide(rules, facts) == expected


def test_every_store_action_and_cookie_action_appears_in_the_table() -> None:
    decisions = [row[3] for row in ROWS]
    assert {d.store for d in decisions} == set(StoreAction)
    assert {d.cookie for d in decisions} == set(CookieAction)


@given(
    status=st.sampled_from([None, 200, 302, 404, 500]),
    has_expiry=st.booleans(),
    sendable=st.booleans(),
    can_renew=st.booleans(),
    save_uninitialized=st.booleans(),
    unset_destroys=st.booleans(),
)
def test_the_engines_shortcut_for_an_untouched_session_is_what_decide_says(
    status: int | None,
    has_expiry: bool,
    sendable: bool,
    can_renew: bool,
    save_uninitialized: bool,
    unset_destroys: bool,
) -> None:
    """SessionState.untouched() lets the engine skip decide(): loaded, renewed by its read, not
    new, not forced, destroyed, unset, written or re-signed, stored exactly as it is; neither
    rolling nor resave. For every such request decide() must say: nothing, no cookie."""
    rules = Rules(save_uninitialized=save_uninitialized, unset_destroys=unset_destroys)
    facts = Facts(
        status=status, new=False, modified=False, saved=True, had_cookie=True, renewed=True,
        has_expiry=has_expiry, sendable=sendable, can_renew=can_renew,
    )  # fmt: skip
    assert decide(rules, facts) == Decision()
