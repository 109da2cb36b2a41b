"""Concurrent logins against the site: `python -m bench.login_load` (run pinned by bench.logins).

Each worker, until the deadline: GET /login as a fresh visitor (session cookie + csrf_token
from the form), then POST /login with username, password and csrf_token. A 302/303 redirect
counts as a login. Prints one JSON line with the totals.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

from bench.net import HOST

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def login_once(port: int, username: str, password: str) -> tuple[int, float]:
    """One fresh visitor logging in; returns (POST status, seconds for the POST)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", "/login")
        form = connection.getresponse()
        body = form.read().decode(errors="replace")
        match = CSRF.search(body)
        if form.status != 200 or match is None:
            raise RuntimeError(f"GET /login gave {form.status} without a csrf_token field")
        token = match.group(1) or match.group(2)
        cookies = [
            header.split(";", 1)[0]
            for name, header in form.getheaders()
            if name.lower() == "set-cookie"
        ]
        fields = urllib.parse.urlencode(
            {"username": username, "password": password, "csrf_token": token}
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(cookies),
        }
        started = time.perf_counter()
        connection.request("POST", "/login", body=fields, headers=headers)
        answer = connection.getresponse()
        answer.read()
        return answer.status, time.perf_counter() - started
    finally:
        connection.close()


def worker(port: int, username: str, password: str, deadline: float, tally: Tally) -> None:
    while time.monotonic() < deadline:
        try:
            status, seconds = login_once(port, username, password)
        except (OSError, RuntimeError, http.client.HTTPException) as error:
            with tally.lock:
                tally.errors[type(error).__name__ + ": " + str(error)[:80]] += 1
            time.sleep(0.05)
            continue
        with tally.lock:
            tally.statuses[status] += 1
            tally.seconds.append(seconds)


def run(
    port: int, users: list[tuple[str, str]], concurrency: int, duration: float
) -> dict[str, object]:
    tally = Tally()
    deadline = time.monotonic() + duration
    threads = [
        threading.Thread(target=worker, args=(port, *users[i % len(users)], deadline, tally))
        for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 60)
    seconds = sorted(tally.seconds)
    return {
        "attempts": sum(tally.statuses.values()),
        "logged_in": sum(count for status, count in tally.statuses.items() if status in (302, 303)),
        "statuses": {str(status): count for status, count in sorted(tally.statuses.items())},
        "errors": dict(tally.errors),
        "p50_ms": 1000 * statistics.median(seconds) if seconds else None,
        "p99_ms": 1000 * seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))]
        if seconds
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", required=True, help='JSON list of ["username", "password"]')
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--duration", type=float, required=True)
    args = parser.parse_args()
    users = [(str(name), str(password)) for name, password in json.loads(args.users)]
    print(json.dumps(run(args.port, users, args.concurrency, args.duration)), flush=True)


if __name__ == "__main__":
    main()
