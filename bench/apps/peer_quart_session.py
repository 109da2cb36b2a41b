"""quart-session 3.0.0 with its Redis interface (its defaults: permanent, unsigned ids)."""

from __future__ import annotations

from quart import Quart
from quart_session import Session

from bench.apps.settings import PREFIX, SECRET, add_pages, require_redis_url

app = Quart(__name__)
app.secret_key = SECRET
app.config.update(
    SESSION_TYPE="redis",
    SESSION_URI=require_redis_url(),
    SESSION_KEY_PREFIX=PREFIX,
)
Session(app)

add_pages(app)
