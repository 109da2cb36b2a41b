"""The floor probe: the least any server-side session in Quart can do, as one more stack.

A minimal Quart SessionInterface with express's signed cookie (`s:<id>.<HMAC-SHA256>`,
percent-encoded): it parses the Cookie header, checks the HMAC, looks the id up in a dict and
`json.loads` the record; at the end it `json.dumps` the data to see whether anything changed and
writes it back only if so (setting the cookie for a new session). No expiry, no store interface,
none of express's rules: a session layer that costs more than this spends it on something else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import quote, unquote

from quart import Quart
from quart.sessions import SessionInterface, SessionMixin

from bench.apps.settings import SECRET, add_pages

COOKIE = "connect.sid"  # express-session's name: the same cookie bytes as ours on the wire
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class FloorSession(dict[str, Any], SessionMixin):
    """The data, the id it was loaded under (None: new) and the JSON text it was loaded from."""

    def __init__(self, sid: str | None, data: dict[str, Any], loaded: str) -> None:
        super().__init__(data)
        self.sid = sid
        self.loaded = loaded


class FloorInterface(SessionInterface):
    """Sessions in a dict, one JSON text per id."""

    def __init__(self, secret: str) -> None:
        self.key = secret.encode()
        self.records: dict[str, str] = {}

    def _mac(self, sid: str) -> str:
        digest = hmac.new(self.key, sid.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode().rstrip("=")

    def _sid(self, header: str) -> str | None:
        for pair in header.split(";"):
            name, _, value = pair.partition("=")
            if name.strip() == COOKIE:
                value = unquote(value.strip())
                if not value.startswith("s:"):
                    return None
                sid, _, mac = value[2:].rpartition(".")
                # As bytes: a hostile cookie may decode to any code point.
                given = mac.encode("utf-8", "surrogatepass")
                return sid if hmac.compare_digest(self._mac(sid).encode(), given) else None
        return None

    async def open_session(self, app: Quart, request: Any) -> FloorSession:
        header = request.headers.get("Cookie")
        sid = self._sid(header) if header else None
        loaded = self.records.get(sid) if sid is not None else None
        if loaded is None:
            return FloorSession(None, {}, "{}")
        return FloorSession(sid, json.loads(loaded), loaded)

    async def save_session(self, app: Quart, session: Any, response: Any) -> None:
        text = _dumps(session)
        if text == session.loaded:
            return
        sid = session.sid
        if sid is None:
            sid = secrets.token_urlsafe(24)
            value = quote(f"s:{sid}.{self._mac(sid)}", safe="")
            response.headers.add("Set-Cookie", f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax")
        self.records[sid] = text


app = Quart(__name__)
app.session_interface = FloorInterface(SECRET)  # type: ignore[assignment]

add_pages(app)
