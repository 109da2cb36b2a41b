"""The promises through real ASGI servers: worker processes sharing a store, and every byte a client can send.

The app (tests/sessions/served/app.py) runs under granian (what deploy/ runs) and hypercorn, as
separate processes on a free loopback port, stopped by PID.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.processes import free_port, terminate, wait_for_port
from deploy.servers import MAX_REQUEST_HEAD
from sessions.signing import encode_cookie_value
from tests.raw_http import RawResponse, raw_request

SECRET = "served secret"
APP = "tests.sessions.behaviour.served.app:app"


@dataclass
class Served:
    """Worker processes on ports of their own; requests go to them in turn (as nginx would send them)."""

    ports: list[int]
    turn: int = 0

    def _next(self) -> int:
        self.turn += 1
        return self.ports[self.turn % len(self.ports)]

    async def get(self, path: str, cookie: bytes | None = None) -> RawResponse:
        headers = [] if cookie is None else [(b"Cookie", cookie)]
        return await raw_request(self._next(), path, headers=headers)

    async def post(self, path: str, cookie: bytes | None = None) -> RawResponse:
        headers = [] if cookie is None else [(b"Cookie", cookie)]
        return await raw_request(self._next(), path, method="POST", headers=headers)


def command(server: str, port: int) -> list[str]:
    python = sys.executable
    if server == "granian":
        return [python, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--loop", "uvloop",
                "--http1-buffer-size", str(MAX_REQUEST_HEAD), APP]  # fmt: skip
    return [python, "-m", "hypercorn", "--workers", "0", "--worker-class", "uvloop",
            "--bind", f"127.0.0.1:{port}", APP]  # fmt: skip


@contextmanager
def serving(server: str, store: str, workers: int, prefix: str) -> Iterator[Served]:
    """`workers` processes of `server` sharing `store`, each on its own free port."""
    env = {
        **os.environ,
        "SESSIONS_STORE": store,
        "SESSIONS_SECRET": SECRET,
        "SESSIONS_PREFIX": prefix,
        "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
    }
    ports = [free_port() for _ in range(workers)]
    processes = [
        subprocess.Popen(
            command(server, port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for port in ports
    ]
    try:
        for port, process in zip(ports, processes, strict=True):
            wait_for_port(port, process, timeout=30)
        yield Served(ports)
    finally:
        for process in processes:
            terminate(process)
        for process in processes:
            errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
            assert "Traceback" not in errors, errors[-3000:]


@pytest.fixture
def store_spec(tmp_path: Path, redis_url: str, postgres_database: str) -> Callable[[str], str]:
    """SESSIONS_STORE for a store kind: a folder of this test's, the suite's Redis, a database."""
    specs = {
        "file": f"file:{tmp_path / 'sessions'}",
        "redis": redis_url,
        "postgres": postgres_database,
    }
    return specs.__getitem__


@pytest.fixture
async def cleanup_redis(key_prefix: str, redis_url: str) -> AsyncIterator[str]:
    yield key_prefix
    client = aioredis.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match=key_prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def cookie_of(response: RawResponse) -> bytes:
    [value] = [v for v in response.all("set-cookie") if v.startswith("connect.sid=")]
    return value.split(";", 1)[0].encode()


# ---------------------------------------------------------------- parallel edits across workers


@pytest.mark.parametrize("kind", ["file", "redis", "postgres"])
async def test_parallel_edits_through_three_granian_workers_all_persist(
    kind: str, store_spec: Callable[[str], str], cleanup_redis: str
) -> None:
    with serving("granian", store_spec(kind), 3, cleanup_redis) as served:
        first = await served.get("/set?key=start")
        cookie = cookie_of(first)
        for parallel in (10, 50, 100):
            prefix = f"p{parallel}-"
            replies = await asyncio.gather(
                *(served.get(f"/set?key={prefix}{n}&delay=0.3", cookie) for n in range(parallel))
            )
            assert [r.status for r in replies] == [200] * parallel
            assert len({r.json()["pid"] for r in replies}) == 3, "all three workers took part"
            data = (await served.get("/read", cookie)).json()["data"]
            kept = {key for key in data if key.startswith(prefix)}
            assert len(kept) == parallel, f"lost {parallel - len(kept)} of {parallel}"
        assert "start" in data


async def test_parallel_edits_through_one_granian_worker_on_memory_all_persist() -> None:
    """A MemoryStore lives in one process: one worker, the same promise."""
    with serving("granian", "memory", 1, "") as served:
        cookie = cookie_of(await served.get("/set?key=start"))
        replies = await asyncio.gather(
            *(served.get(f"/set?key=k{n}&delay=0.2", cookie) for n in range(100))
        )
        assert {r.status for r in replies} == {200}
        data = (await served.get("/read", cookie)).json()["data"]
        assert {f"k{n}" for n in range(100)} <= set(data)


@pytest.mark.parametrize("kind", ["file", "redis", "postgres"])
async def test_a_logout_racing_fifty_writers_across_workers_is_final(
    kind: str, store_spec: Callable[[str], str], cleanup_redis: str
) -> None:
    with serving("granian", store_spec(kind), 3, cleanup_redis) as served:
        for _ in range(10):
            first = await served.get("/set?key=start")
            cookie, sid = cookie_of(first), first.json()["id"]
            writers = [served.get(f"/set?key=w{n}&delay=0.{n % 5}", cookie) for n in range(50)]
            await asyncio.gather(served.post("/logout?delay=0.2", cookie), *writers)
            after = (await served.get("/read", cookie)).json()
            assert after["id"] != sid and after["data"] == {}, "the logged-out session came back"


# ---------------------------------------------------------------- hostile bytes


def is_clean(response: RawResponse) -> bool:
    """A client error or a page, never a server error; never a traceback."""
    return response.status < 500 and b"Traceback" not in response.body


# Cookie values an attacker sends: any bytes, any text, signed-looking values with anything in the
# signature, percent-escapes of every byte (invalid UTF-8 included).
hostile_cookie_values = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.tuples(st.text(max_size=40), st.binary(max_size=40)).map(
        lambda parts: b"s%3A" + quote(parts[0], safe="").encode() + b"." + parts[1]
    ),
    st.binary(max_size=40).map(lambda raw: "".join(f"%{b:02X}" for b in raw).encode()),
)


@pytest.mark.parametrize("server", ["granian", "hypercorn"])
@pytest.mark.parametrize("kind", ["file", "redis"])
async def test_every_single_byte_in_a_cookie_is_input_not_an_exception(
    server: str, kind: str, store_spec: Callable[[str], str], cleanup_redis: str
) -> None:
    with serving(server, store_spec(kind), 1, cleanup_redis) as served:
        valid = encode_cookie_value("abc", SECRET.encode()).encode()
        for byte in range(256):
            b = bytes([byte])
            for cookie in (
                b"connect.sid=" + b,
                b"connect.sid=s%3Aabc." + b,
                b"connect.sid=" + valid + b,
                b"connect.sid=s%3Aab" + b + b"c.sig",
                b"connect.sid=%" + b"%02X" % byte + b"; connect.sid=" + valid,
            ):
                for path in ("/read", "/", "/set?key=x"):
                    response = await served.get(path, cookie)
                    assert is_clean(response), (server, cookie, path, response.status)


@pytest.mark.parametrize("server", ["granian", "hypercorn"])
def test_fuzzed_cookie_headers_never_give_a_server_error(
    server: str, tmp_path: Path, key_prefix: str
) -> None:
    with serving(server, "file:" + str(tmp_path / "sessions"), 1, key_prefix) as served:

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(value=hostile_cookie_values, path=st.sampled_from(["/read", "/", "/set?key=x"]))
        def check(value: bytes, path: str) -> None:
            # A header value cannot hold CR or LF (the request would be a different request).
            value = value.replace(b"\r", b"").replace(b"\n", b"")
            response = asyncio.run(served.get(path, b"connect.sid=" + value))
            assert is_clean(response), (value, path, response.status)

        check()


async def test_a_valid_cookie_with_trailing_garbage_is_a_new_session_not_the_old_one(
    tmp_path: Path,
) -> None:
    """What a hostile value gets is a fresh session, never someone else's (and nothing is stored)."""
    with serving("granian", f"file:{tmp_path / 'sessions'}", 1, "") as served:
        owner = await served.get("/set?key=secret&value=mine")
        cookie = cookie_of(owner)
        for garbage in (b"\x00", b"\xff", b"%C3%A9", b"\xc3\xa9", b"'", b"\x7f"):
            response = await served.get("/read", cookie + garbage)
            assert response.status in (200, 400)
            if response.status == 200:
                assert response.json()["data"] == {}
        assert sorted(p.name for p in (tmp_path / "sessions").glob("*.json")) == [
            owner.json()["id"] + ".json"
        ]
        assert secrets.compare_digest(cookie_of(owner), cookie)
