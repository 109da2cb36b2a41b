"""SessionState: what a request's session was, is and did, as the decision sees it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from quart import Quart

from sessions.cookie import Cookie
from sessions.state import SessionState


class NoEngine:
    """The state's methods that reach the engine are not used here."""

    permanent_lifetime = timedelta(days=1)


def loaded(data: dict[str, Any], **kw: Any) -> SessionState:
    raw = b'{"cookie":{},"a":1}'
    return SessionState.loaded(
        NoEngine(), None, "sid", raw, Cookie(), None, data,  # type: ignore[arg-type]
        secure=False, resign=kw.get("resign", False), renewed=True,
    )  # fmt: skip


def test_a_loaded_state_is_saved_unmodified_and_not_new() -> None:
    facts = loaded({"a": 1}).facts(200, '{"a":1}', can_renew=True)
    assert (facts.new, facts.modified, facts.saved, facts.had_cookie, facts.renewed) == (
        False, False, True, True, True,
    )  # fmt: skip


def test_changing_data_owner_or_cookie_shows_in_the_facts() -> None:
    state = loaded({"a": 1})
    assert state.facts(200, '{"a":2}', can_renew=True).modified
    state.session.owner = "user:1"
    assert state.facts(200, '{"a":1}', can_renew=True).modified
    state.session.owner = None
    state.session.cookie.max_age = 60
    changed = state.facts(200, '{"a":1}', can_renew=True)
    assert changed.cookie_changed and not changed.modified and not changed.saved


def test_starting_over_keeps_the_data_only_when_asked() -> None:
    state = loaded({"a": 1})
    state.session.owner = "user:1"
    state.start_over("new-id", Cookie(), keep_data=True)
    assert (dict(state.session), state.session.owner, state.stored) == ({"a": 1}, "user:1", None)
    facts = state.facts(200, '{"a":1}', can_renew=True)
    assert facts.new and facts.modified  # a new id is always a change, as in express
    state.start_over("newer", Cookie(), keep_data=False)
    assert (dict(state.session), state.session.owner) == ({}, None)


def test_a_destroyed_session_left_alone_is_untouched() -> None:
    state = loaded({"a": 1})
    state.start_over("new-id", Cookie(), keep_data=False)
    state.mark_destroyed()
    facts = state.facts(200, "{}", can_renew=True)
    assert facts.destroyed and not facts.modified


def test_a_merged_write_during_the_request_brings_other_requests_keys_in() -> None:
    state = loaded({"a": 1})
    state.session["mine"] = True
    state.mark_stored(b'{"cookie":{},"a":1,"mine":true,"theirs":2}', b"ours", '{"a":1,"mine":true}')
    assert dict(state.session) == {"a": 1, "mine": True, "theirs": 2}
    assert state.facts(200, '{"a":1,"mine":true,"theirs":2}', can_renew=True).saved


def test_a_vanished_record_is_never_written_again() -> None:
    state = loaded({"a": 1})
    state.mark_gone()
    assert state.gone and state.stored is None


def test_a_new_state_for_a_request() -> None:
    app = Quart(__name__)
    state = SessionState.new(NoEngine(), app, "fresh", Cookie(), secure=True, cookie_id="sent")  # type: ignore[arg-type]
    facts = state.facts(200, "{}", can_renew=True)
    assert facts.new and facts.had_cookie and not facts.modified and not facts.saved
