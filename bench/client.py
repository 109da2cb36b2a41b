"""A plain HTTP/1.1 client for priming session cookies and checking what a page answers."""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass

from bench.net import HOST

VIEWS = re.compile(r"views=(\d+)")


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    cookie: str | None  # "name=value" of the first Set-Cookie, if any


def get(port: int, path: str, cookie: str | None = None, timeout: float = 10.0) -> Answer:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
        set_cookie = response.getheader("Set-Cookie")
        return Answer(
            response.status, body, set_cookie.split(";", 1)[0].strip() if set_cookie else None
        )
    finally:
        connection.close()


def views(answer: Answer) -> int:
    match = VIEWS.search(answer.body)
    if answer.status != 200 or match is None:
        raise RuntimeError(f"unexpected answer {answer.status}: {answer.body[:200]!r}")
    return int(match.group(1))


def prime(port: int, count: int) -> list[str]:
    """`count` returning visitors: each gets a session with views=1 via one GET /count."""
    cookies = []
    for _ in range(count):
        answer = get(port, "/count")
        if views(answer) != 1 or answer.cookie is None:
            raise RuntimeError(
                f"priming GET /count gave {answer.status} {answer.body[:80]!r}"
                f" and cookie {answer.cookie!r}: the session was not created"
            )
        cookies.append(answer.cookie)
    return cookies
