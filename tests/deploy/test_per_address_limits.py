"""nginx's per-address limits: one address that floods is refused (429), the others are served."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.parse

from site_http import Browser

from deploy.cluster import Cluster

RATE = 30  # limit_req_zone ... rate=30r/s
BURST = 90  # limit_req ... burst=90 nodelay
IN_PROGRESS = 32  # limit_conn per_address_connections 32


def hammer(port: int, source: str, path: str, count: int) -> tuple[list[int], float]:
    """GET path `count` times, one after another on kept-alive connections: (statuses, seconds)."""
    statuses: list[int] = []
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                            source_address=(source, 0))  # fmt: skip
    try:
        while len(statuses) < count:
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
            except (OSError, http.client.HTTPException):
                connection.close()  # reconnect; the next attempt counts as usual
    finally:
        connection.close()
    return statuses, time.monotonic() - started


def test_one_address_over_30_requests_a_second_gets_429_while_another_is_served(
    cluster: Cluster,
) -> None:
    statuses, seconds = hammer(cluster.port, "127.0.0.5", "/healthz", 400)
    served = statuses.count(200)

    assert set(statuses) == {200, 429}, sorted(set(statuses))
    # The burst at once, then 30 a second: never more (one for the first request's own slot,
    # one for nginx's millisecond rounding).
    assert BURST <= served <= BURST + 2 + RATE * seconds, (served, seconds)
    # Another address is untouched by the first one's flood.
    elsewhere, _ = hammer(cluster.port, "127.0.0.6", "/healthz", 20)
    assert elsewhere == [200] * 20


def slow_upload(port: int, source: str) -> socket.socket:
    """A sign-in POST whose head is complete and whose body has only begun."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.sendall(
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\nusername="
    )
    return sock


def sign_in_attempt(url: str, source: str) -> int:
    """One complete sign-in POST (without a form token: the app refuses it, but answers)."""
    body = urllib.parse.urlencode({"username": "someone", "password": "not-the-password"})
    reply = Browser(url, source=source).request(
        "POST", "/login", body.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert reply.status == 429 or "x-served-by" in reply.headers, reply
    return reply.status


def test_the_33rd_upload_in_progress_from_one_address_gets_429_at_once(cluster: Cluster) -> None:
    slow = [slow_upload(cluster.port, "127.0.0.7") for _ in range(IN_PROGRESS)]
    try:
        time.sleep(0.5)  # nginx has read every head (and counted it) well within this
        started = time.monotonic()
        assert sign_in_attempt(cluster.url, "127.0.0.7") == 429
        assert time.monotonic() - started < 2, "refused at once, not after a timeout"
        assert sign_in_attempt(cluster.url, "127.0.0.8") != 429, "another address is served"
    finally:
        for sock in slow:
            sock.close()
    # Closed uploads no longer count.
    deadline = time.monotonic() + 5
    while sign_in_attempt(cluster.url, "127.0.0.7") == 429:
        assert time.monotonic() < deadline, "the address stayed refused after its uploads closed"
        time.sleep(0.2)
