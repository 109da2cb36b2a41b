"""The public helpers for views: `skip_session` marks a view and changes nothing else about it."""

from __future__ import annotations

from sessions import skip_session
from sessions.helpers import SKIP_ATTRIBUTE


def test_skip_session_marks_the_view_and_returns_it_unchanged() -> None:
    async def healthz() -> str:
        return "ok"

    marked = skip_session(healthz)
    assert marked is healthz
    assert getattr(healthz, SKIP_ATTRIBUTE) is True
