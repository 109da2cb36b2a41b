"""Round trips per request: MONITOR on the private Redis during a few sequential requests.

INFO commandstats also counts the commands a Lua script runs inside Redis, so it cannot tell
one EVALSHA round trip carrying GET + EXPIRE from three round trips. MONITOR marks script-inner
commands with "lua", so a short untimed pass separates the two.
"""

from __future__ import annotations

import re
import socket
import threading
from collections import Counter
from collections.abc import Callable

import redis

from bench.store_cost import Traffic

__all__ = ["Traffic", "traffic"]

SENTINEL = "bench-monitor-end"
# Sent once per new pooled connection, not per request: left out of the per-request counts.
CONNECTION_SETUP = frozenset({"hello", "client", "select", "auth"})
LINE = re.compile(r'^\+?\d+\.\d+ \[\d+ (?P<source>[^\]]+)\] "(?P<command>[^"]+)"')


def _read_until_sentinel(sock: socket.socket, lines: list[str], done: threading.Event) -> None:
    buffer = b""
    try:
        while not done.is_set():
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\r\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                if SENTINEL in line:
                    done.set()
                    return
                lines.append(line)
    except OSError:
        return


def traffic(port: int, client: redis.Redis, requests: int, send: Callable[[], object]) -> Traffic:
    """Run `send` `requests` times while MONITOR records what reached Redis."""
    lines: list[str] = []
    done = threading.Event()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"MONITOR\r\n")
        if not sock.recv(5).startswith(b"+OK"):
            raise RuntimeError("redis-server refused MONITOR")
        reader = threading.Thread(target=_read_until_sentinel, args=(sock, lines, done))
        reader.start()
        for _ in range(requests):
            send()
        client.echo(SENTINEL)
        reader.join(timeout=10)
        done.set()
    sent: Counter[str] = Counter()
    scripted: Counter[str] = Counter()
    for line in lines:
        match = LINE.match(line)
        if match is None:
            continue
        command = match.group("command").lower()
        if command in CONNECTION_SETUP:
            continue
        (scripted if match.group("source") == "lua" else sent)[command] += 1
    return Traffic(
        requests,
        {name: count / requests for name, count in sorted(sent.items())},
        {name: count / requests for name, count in sorted(scripted.items())},
    )
