"""Interop fixtures: the reference express app (Node) and our Quart app on one shared Redis."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis.asyncio as aioredis
from quart import Quart, abort, request, session

from deploy.processes import free_port, terminate
from sessions import RedisStore, Sessions, Store

NODE_DIR = Path(__file__).parent / "node"
SETUP_HINT = "run `bash scripts/setup --test` (it runs `npm ci` in tests/interop/node)"
# encodeURIComponent leaves these unescaped besides letters and digits (quote keeps _.-~ anyway).
URI_COMPONENT_SAFE = "!~*'()"


def express_cookie_value(sid: str, secret: str) -> str:
    """The cookie value express-session sends for sid: s:<sid>.<b64 HMAC-SHA256>, URI-encoded."""
    mac = hmac.new(secret.encode(), sid.encode(), hashlib.sha256).digest()
    signature = base64.b64encode(mac).decode().rstrip("=")
    return urllib.parse.quote(f"s:{sid}.{signature}", safe=URI_COMPONENT_SAFE)


@dataclass
class SetCookie:
    """One parsed Set-Cookie header."""

    name: str
    value: str
    attributes: dict[str, str]

    @classmethod
    def parse(cls, header: str) -> SetCookie:
        pair, *attrs = (part.strip() for part in header.split(";"))
        name, _, value = pair.partition("=")
        attributes = {}
        for attr in attrs:
            key, _, attr_value = attr.partition("=")
            attributes[key.strip().lower()] = attr_value.strip()
        return cls(name.strip(), value.strip(), attributes)

    @property
    def expires(self) -> datetime | None:
        raw = self.attributes.get("expires")
        return email.utils.parsedate_to_datetime(raw) if raw else None

    @property
    def clears(self) -> bool:
        """Whether a browser would drop the cookie on receiving this header."""
        if self.value in ("", '""'):
            return True
        max_age = self.attributes.get("max-age", "")
        if max_age.lstrip("-").isdigit() and int(max_age) <= 0:
            return True
        expires = self.expires
        return expires is not None and expires <= datetime.now(UTC)


@dataclass
class Reply:
    """What a browser sees of one response."""

    status: int
    body: Any
    set_cookies: list[SetCookie]

    def cookie(self, name: str) -> SetCookie | None:
        found = [c for c in self.set_cookies if c.name == name]
        return found[-1] if found else None


class Side(Protocol):
    """One of the two servers sharing the secret and the Redis."""

    label: str

    async def send(self, method: str, path: str, cookie_header: str | None) -> Reply: ...


def _node_request(url: str, method: str, cookie_header: str | None) -> tuple[int, bytes, list[str]]:
    """A blocking HTTP request that ignores any proxy settings of the environment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    headers = {"Cookie": cookie_header} if cookie_header else {}
    body = b"" if method == "POST" else None
    req = urllib.request.Request(url, method=method, headers=headers, data=body)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers.get_all("Set-Cookie") or []
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get_all("Set-Cookie") or []


@dataclass
class NodeSide:
    """The express-session + connect-redis reference server, run by `node server.js`."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    label: str = "node"

    async def send(self, method: str, path: str, cookie_header: str | None) -> Reply:
        url = f"http://127.0.0.1:{self.port}{path}"
        status, raw, headers = await asyncio.to_thread(_node_request, url, method, cookie_header)
        body = json.loads(raw) if raw else None
        return Reply(status, body, [SetCookie.parse(h) for h in headers])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        terminate(self.process)


@dataclass
class QuartSide:
    """A Quart app with our extension, driven through its test client (cookies set by hand)."""

    app: Quart
    label: str = "quart"

    async def send(self, method: str, path: str, cookie_header: str | None) -> Reply:
        client = self.app.test_client(use_cookies=False)
        headers = {"Cookie": cookie_header} if cookie_header else {}
        response = await client.open(path, method=method, headers=headers)
        body = await response.get_json(force=True, silent=True)
        cookies = [SetCookie.parse(h) for h in response.headers.getlist("Set-Cookie")]
        return Reply(response.status_code, body, cookies)


@dataclass
class Browser:
    """One browser cookie jar shared by both sides, as a user moving between the two apps."""

    name: str
    jar: dict[str, str] = field(default_factory=dict)

    @property
    def cookie(self) -> str | None:
        return self.jar.get(self.name)

    def header(self) -> str | None:
        return "; ".join(f"{k}={v}" for k, v in self.jar.items()) or None

    async def visit(self, side: Side, method: str, path: str) -> Reply:
        reply = await side.send(method, path, self.header())
        assert reply.status < 500, f"{side.label} {method} {path} answered {reply.status}"
        for set_cookie in reply.set_cookies:
            if set_cookie.clears:
                self.jar.pop(set_cookie.name, None)
            else:
                self.jar[set_cookie.name] = set_cookie.value
        return reply


def _wait_for_listening(node: NodeSide, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            pytest.fail(f"node server.js exited with {node.process.returncode}:\n{node.log()}")
        if "listening" in node.log():
            return
        time.sleep(0.05)
    node.stop()
    pytest.fail(f"node server.js did not print 'listening' within {timeout}s:\n{node.log()}")


StartNode = Callable[..., NodeSide]
StartQuart = Callable[..., Awaitable[QuartSide]]


@pytest.fixture
def start_node(redis_url: str, key_prefix: str) -> Iterator[StartNode]:
    """Start the express reference app on a free port; every server is stopped by PID afterwards."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not installed: {SETUP_HINT}")
    for package in (
        "express",
        "express-session",
        "connect-redis",
        "redis",
        "connect-pg-simple",
        "pg",
    ):
        if not (NODE_DIR / "node_modules" / package / "package.json").is_file():
            pytest.fail(f"tests/interop/node/node_modules/{package} is missing: {SETUP_HINT}")
    started: list[NodeSide] = []
    logs = tempfile.TemporaryDirectory(prefix="interop-node-")

    def start(
        secrets: list[str], max_age_ms: int | None = None, name: str = "connect.sid", **store: str
    ) -> NodeSide:
        """`store` overrides server.js's store settings (STORE="postgres", DATABASE_URL=…)."""
        port = free_port()
        env = {
            **os.environ,
            "PORT": str(port),
            "REDIS_URL": redis_url,
            "PREFIX": key_prefix,
            "SECRET": ",".join(secrets),
            "NAME": name,
            **store,
        }
        env.pop("COOKIE_MAX_AGE_MS", None)
        if max_age_ms is not None:
            env["COOKIE_MAX_AGE_MS"] = str(max_age_ms)
        log_path = Path(logs.name) / f"node-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [node, "server.js"], cwd=NODE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        side = NodeSide(port, process, log_path)
        started.append(side)
        _wait_for_listening(side)
        return side

    try:
        yield start
    finally:
        for side in started:
            side.stop()
        logs.cleanup()


def build_quart_app(store: Store, secrets: list[str], max_age: int | None, name: str) -> Quart:
    """The Quart twin of server.js: same routes, same session semantics."""
    app = Quart(__name__)
    Sessions(app, secret=secrets, store=store, name=name, cookie={"max_age": max_age})

    def data() -> dict[str, Any]:
        return dict(session)

    @app.get("/count")
    async def count() -> dict[str, Any]:
        session["views"] = session.get("views", 0) + 1
        return {"id": session.id, "views": session["views"]}

    @app.get("/read")
    async def read() -> dict[str, Any]:
        return {"id": session.id, "data": data()}

    @app.post("/set")
    async def set_value() -> dict[str, Any]:
        key = request.args.get("key", "")
        raw = request.args.get("value")
        if not key or key == "cookie" or raw is None:
            abort(400)
        try:
            session[key] = json.loads(raw)
        except ValueError:
            abort(400)
        return {"id": session.id, "data": data()}

    @app.post("/destroy")
    async def destroy() -> dict[str, Any]:
        sid = session.id
        await session.destroy()
        return {"destroyed": sid}

    # Quart-only: the owner index (what a login and "sign out other devices" use).
    @app.post("/own")
    async def own() -> dict[str, Any]:
        session.owner = request.args.get("owner") or abort(400)
        return {"id": session.id, "owner": session.owner}

    @app.get("/owner")
    async def owner() -> dict[str, Any]:
        return {"id": session.id, "owner": session.owner, "data": data()}

    @app.get("/owned")
    async def owned() -> dict[str, Any]:
        infos = await app.extensions["sessions"].store.owned(request.args.get("owner", ""))
        return {"sessions": {info.id: info.data for info in infos}}

    @app.post("/sign-out-others")
    async def sign_out_others() -> dict[str, Any]:
        if session.owner is None:
            abort(400)
        store = app.extensions["sessions"].store
        return {"signed_out": await store.destroy_owned(session.owner, keep=session.id)}

    return app


@pytest.fixture
async def start_quart(redis_client: aioredis.Redis, key_prefix: str) -> AsyncIterator[StartQuart]:
    """Build and start Quart apps on the suite's Redis under this test's key prefix."""
    async with AsyncExitStack() as stack:

        async def start(
            secrets: list[str], max_age: int | None = None, name: str = "connect.sid"
        ) -> QuartSide:
            store = RedisStore(redis_client, prefix=key_prefix)
            app = build_quart_app(store, secrets, max_age, name)
            await stack.enter_async_context(app.test_app())
            return QuartSide(app)

        yield start
