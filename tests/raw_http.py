"""A bare HTTP/1.1 client over asyncio streams: any bytes in any header, one request per connection."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["RawResponse", "raw_request"]


@dataclass
class RawResponse:
    """Status, headers (lower-case names, in order, repeats kept) and body of one response."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    port: int,
    path: str = "/",
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    host: str = "127.0.0.1",
    timeout: float = 30.0,
) -> RawResponse:
    """Send one request exactly as given (header bytes are not checked) and read the whole reply."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        head = [f"{method} {path} HTTP/1.1".encode(), f"Host: {host}:{port}".encode()]
        head += [name + b": " + value for name, value in headers or []]
        head += [b"Content-Length: %d" % len(body), b"Connection: close"]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    parsed = []
    for line in header_block.split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        if name:
            parsed.append((name.strip().lower(), value.strip()))
    response = RawResponse(int(status_line.split()[1]), parsed, payload)
    if (response.header("transfer-encoding") or "").lower() == "chunked":
        response.body = _unchunk(payload)
    return response


def _unchunk(payload: bytes) -> bytes:
    out, rest = b"", payload
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out
