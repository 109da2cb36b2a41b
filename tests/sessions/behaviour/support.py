"""Helpers for the cross-store behaviour suite."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import socket
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import pytest
from quart import Quart, jsonify, session

from sessions import Store
from sessions.expiry import now_ms
from tests.sessions.conftest import SECRET, Browser, make_app, set_cookies

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}")
ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
EXPRESS_VECTORS = [
    ("apple", "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"),
    ("%", "s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g"),
    ("/foo", "s%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ"),
]


def signed(sid: str, secret: str = SECRET) -> str:
    """A cookie value as express-session writes it, computed independently of sessions/."""
    digest = hmac.new(secret.encode(), sid.encode(), hashlib.sha256).digest()
    mac = base64.b64encode(digest).decode().rstrip("=")
    return quote(f"s:{sid}.{mac}", safe="-_.!~*'()")


def browser(app: Quart) -> Browser:
    return Browser(app.test_client(use_cookies=False))


def only_cookie(response: Any) -> str:
    """The one session Set-Cookie header of a response."""
    headers = set_cookies(response)
    assert len(headers) == 1, headers
    return headers[0]


def attribute_names(header: str) -> list[str]:
    return [part.split("=", 1)[0] for part in header.split("; ")[1:]]


def expires_of(header: str) -> datetime:
    match = re.search(r"; Expires=([^;]+)", header)
    assert match, header
    return parsedate_to_datetime(match.group(1))


def stored_expires(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["cookie"]["expires"])


async def raw_of(store: Store, sid: str) -> bytes | None:
    """The stored bytes, read without sliding the record's expiry."""
    return (await store.load_many([sid]))[0]


async def remaining_of(store: Store, sid: str) -> float:
    deadline = (await store.deadlines([sid]))[0]
    assert deadline is not None
    return (deadline - now_ms()) / 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def warnings_from_sessions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "sessions" and record.levelno == logging.WARNING
    ]


def app_with_login(store: Store) -> Quart:
    """The test app with `POST /login/<name>`: a new id, owned by `user:<name>`, one-hour cookie."""
    app = make_app(store, cookie={"max_age": 3600})

    @app.post("/login/<name>")
    async def login(name: str) -> Any:
        await session.regenerate()
        session.owner = f"user:{name}"
        session["agent"] = name
        return jsonify(id=session.id)

    return app
