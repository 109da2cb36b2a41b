"""The app the real-server tests run in worker processes: a few session routes, its store from the environment.

``SESSIONS_STORE`` is ``memory``, ``file:<folder>``, a ``redis://`` or a ``postgresql://`` URL;
``SESSIONS_SECRET`` signs.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from quart import Quart, jsonify, request, session

from sessions import FileStore, MemoryStore, PostgresStore, RedisStore, Sessions, Store


def _store(spec: str) -> Store:
    if spec == "memory":
        return MemoryStore()
    if spec.startswith("file:"):
        return FileStore(spec[len("file:") :])
    if spec.startswith("postgresql:"):
        return PostgresStore.from_url(spec)
    return RedisStore.from_url(spec, prefix=os.environ.get("SESSIONS_PREFIX", "sess:"))


def create_app() -> Quart:
    app = Quart(__name__)
    Sessions(app, secret=os.environ["SESSIONS_SECRET"], store=_store(os.environ["SESSIONS_STORE"]))

    @app.get("/")
    async def untouched() -> str:
        return "hello"

    @app.get("/set")
    async def set_key() -> Any:
        """Load the session, wait `delay` seconds (so that parallel requests overlap), set one key."""
        await asyncio.sleep(float(request.args.get("delay", 0)))
        session[request.args["key"]] = request.args.get("value", 1)
        return jsonify(id=session.id, pid=os.getpid())

    @app.get("/read")
    async def read() -> Any:
        return jsonify(id=session.id, data=dict(session), pid=os.getpid())

    @app.post("/logout")
    async def logout() -> Any:
        await asyncio.sleep(float(request.args.get("delay", 0)))
        await session.destroy()
        return jsonify(ok=True)

    return app


app = create_app()
