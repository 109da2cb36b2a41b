"""The errors sessions/ raises: one base class, and a 503 that says when to come back."""

from __future__ import annotations

from quart import Quart

from sessions import (
    SessionError,
    SessionNotFound,
    SessionTooLarge,
    SessionUnavailable,
    StoreUnavailable,
)


def test_every_error_of_the_package_is_a_session_error() -> None:
    for error in (SessionNotFound, SessionTooLarge, StoreUnavailable):
        assert issubclass(error, SessionError)
    assert issubclass(SessionNotFound, LookupError) and issubclass(SessionTooLarge, ValueError)


async def test_session_unavailable_is_a_503_with_retry_after_that_an_app_can_render() -> None:
    app = Quart(__name__)

    @app.get("/")
    async def index() -> str:
        raise SessionUnavailable(retry_after=7)

    response = await app.test_client().get("/")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert "try again" in (await response.get_data(as_text=True)).lower()
