"""Public helpers for views: imported by applications, importing nothing of the engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["SKIP_ATTRIBUTE", "skip_session"]

F = TypeVar("F", bound=Callable[..., object])

#: The attribute `skip_session` sets on a view function.
SKIP_ATTRIBUTE = "_sessions_skip"


def skip_session(view: F) -> F:
    """Declare that a view does not use the session: no store work, no cookie, for its requests.

    The view sees an empty, read-only session; writing to it raises a clear error. Static files
    and requests no route matches (404, 405) are skipped by default; see ``Sessions(skip=...)``
    for whole blueprints. Example::

        @app.get("/healthz")
        @skip_session
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}
    """
    setattr(view, SKIP_ATTRIBUTE, True)
    return view
