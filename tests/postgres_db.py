"""PostgreSQL for tests: one place that says which server, a scratch database per test, and a
wire-level counter of round trips.

Every test that needs PostgreSQL goes through `postgres_url` (a database of its own, dropped
afterwards), so the server behind it can be switched in this one place: `TEST_POSTGRES_URL`,
else the machine's PostgreSQL at 127.0.0.1:5432 (user postgres, trust authentication).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

__all__ = ["SERVER_URL", "RoundTrips", "count_round_trips", "postgres_url", "scratch_database"]

SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@asynccontextmanager
async def scratch_database(server_url: str = SERVER_URL) -> AsyncIterator[str]:
    """A new, empty database on the server; dropped (its connections closed) afterwards."""
    name = f"test_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(server_url, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"PostgreSQL at {server_url} does not answer: {error}", pytrace=False)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(server_url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """The URL of a database this test owns (created empty, dropped afterwards)."""
    async with scratch_database() as url:
        yield url


@dataclass
class RoundTrips:
    """Round trips on the wire: each time a client sends after the server has answered (or first).

    Counting bursts rather than Sync messages also counts a prepare that waits on a Flush.
    """

    count: int = 0
    statements: list[str] = field(default_factory=list)
    _answered: dict[int, bool] = field(default_factory=dict)

    def take(self) -> int:
        """The round trips since the last call."""
        count, self.count = self.count, 0
        self.statements.clear()
        return count

    def client_sent(self, link: int, kind: bytes, body: bytes) -> None:
        if self._answered.get(link, True):
            self.count += 1
            self._answered[link] = False
        if kind in (b"P", b"Q"):  # Parse and Query carry the statement text
            text = body.split(b"\x00", 2)[1 if kind == b"P" else 0]
            self.statements.append(text.decode(errors="replace"))

    def server_sent(self, link: int) -> None:
        self._answered[link] = True


async def _client_to_server(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trips: RoundTrips, link: int
) -> None:
    """Forward the client's messages, telling `trips` about each."""
    startup = await reader.readexactly(4)
    length = struct.unpack("!I", startup)[0]
    writer.write(startup + await reader.readexactly(length - 4))
    while True:
        head = await reader.readexactly(5)
        body = await reader.readexactly(struct.unpack("!I", head[1:])[0] - 4)
        trips.client_sent(link, head[:1], body)
        writer.write(head + body)
        await writer.drain()


async def _server_to_client(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trips: RoundTrips, link: int
) -> None:
    while chunk := await reader.read(65536):
        trips.server_sent(link)
        writer.write(chunk)
        await writer.drain()


@asynccontextmanager
async def count_round_trips(url: str) -> AsyncIterator[tuple[str, RoundTrips]]:
    """A TCP proxy in front of the server at `url` that counts round trips on the wire.

    Yields the URL to connect through (TLS off, so the messages can be read) and the counter.
    """
    target = urlsplit(url)
    trips = RoundTrips()
    tasks: set[asyncio.Task[None]] = set()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(
            target.hostname or "127.0.0.1", target.port or 5432
        )
        link = id(client_writer)
        both = [
            asyncio.ensure_future(_client_to_server(client_reader, server_writer, trips, link)),
            asyncio.ensure_future(_server_to_client(server_reader, client_writer, trips, link)),
        ]
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        for task in both:
            task.cancel()
        for stream in (server_writer, client_writer):
            stream.close()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(serve(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    credentials = target.netloc.rpartition("@")[0]
    proxied = urlunsplit(target._replace(netloc=f"{credentials}@127.0.0.1:{port}"))
    try:
        yield proxied + ("&" if target.query else "?") + "sslmode=disable", trips
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
