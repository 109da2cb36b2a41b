"""quart-session 3.0.0 with its Redis interface (its defaults: permanent, unsigned ids)."""

from __future__ import annotations

from quart import Quart, session
from quart_session import Session

from bench.apps.settings import PREFIX, SECRET, body, require_redis_url

app = Quart(__name__)
app.secret_key = SECRET
app.config.update(
    SESSION_TYPE="redis",
    SESSION_URI=require_redis_url(),
    SESSION_KEY_PREFIX=PREFIX,
)
Session(app)


@app.get("/count")
async def count() -> str:
    session["views"] = session.get("views", 0) + 1
    return body(session["views"])


@app.get("/read")
async def read() -> str:
    return body(session.get("views", 0))
