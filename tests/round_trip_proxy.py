"""A TCP proxy in front of a server that counts round trips: each time a client speaks after hearing.

A client that writes several commands before reading their replies (a pipeline, or one write
carrying many requests' commands) makes one round trip; MONITOR cannot tell that from several.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["RoundTripProxy", "round_trip_proxy"]


class RoundTripProxy:
    """Forwards 127.0.0.1:<port> to a server; `round_trips` counts client turns on every connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.round_trips = 0
        self._server: asyncio.Server | None = None

    async def _connection(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        heard = True  # a new connection's first words start a round trip

        async def upstream() -> None:
            nonlocal heard
            while data := await client_in.read(65536):
                if heard:
                    self.round_trips += 1
                    heard = False
                server_out.write(data)
                await server_out.drain()
            server_out.close()

        async def downstream() -> None:
            nonlocal heard
            while data := await server_in.read(65536):
                heard = True
                client_out.write(data)
                await client_out.drain()
            client_out.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    async def count(self, action: object) -> int:
        """Round trips made while awaiting `action` (settled for a moment after)."""
        await asyncio.sleep(0.05)
        before = self.round_trips
        await action  # type: ignore[misc]
        await asyncio.sleep(0.05)
        return self.round_trips - before


@asynccontextmanager
async def round_trip_proxy(target_port: int) -> AsyncIterator[RoundTripProxy]:
    proxy = RoundTripProxy(target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
