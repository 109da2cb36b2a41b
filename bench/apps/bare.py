"""Bare Quart: the same two pages with no session at all (the baseline for every Quart stack)."""

from __future__ import annotations

from quart import Quart

from bench.apps.settings import body

app = Quart(__name__)


@app.get("/count")
async def count() -> str:
    return body(1)


@app.get("/read")
async def read() -> str:
    return body(1)
