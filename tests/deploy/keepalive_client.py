"""A minimal keep-alive HTTP/1.1 client over asyncio streams, for the load test."""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie


@dataclass
class Answer:
    """Status, lower-case headers (last value wins) and body of one response."""

    status: int
    headers: dict[str, str]
    set_cookies: list[str]
    body: bytes


@dataclass
class KeepAliveClient:
    """One visitor: one connection to the server, reused; cookies kept by name."""

    base_url: str
    timeout: float = 10.0
    cookies: dict[str, str] = field(default_factory=dict)
    source: str | None = None  # the loopback address to connect from
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            url = urllib.parse.urlsplit(self.base_url)
            local = (self.source, 0) if self.source else None
            self._reader, self._writer = await asyncio.open_connection(
                url.hostname, url.port, local_addr=local
            )
        return self._reader, self._writer

    async def close(self) -> None:
        """Close the connection."""
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._reader = self._writer = None

    async def get(self, path: str = "/") -> Answer:
        """GET path on the kept-alive connection (bounded by timeout)."""
        return await asyncio.wait_for(self._get(path), self.timeout)

    async def _get(self, path: str) -> Answer:
        reader, writer = await self._connect()
        url = urllib.parse.urlsplit(self.base_url)
        lines = [f"GET {path} HTTP/1.1", f"Host: {url.netloc}", "Accept: text/html"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()

        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection before answering")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        set_cookies: list[str] = []
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
            if name.strip().lower() == "set-cookie":
                set_cookies.append(value.strip())
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked(reader)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        for header in set_cookies:
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                self.cookies[name] = morsel.value
        return Answer(status, headers, set_cookies, body)

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return body
            body += await reader.readexactly(size)
            await reader.readexactly(2)
