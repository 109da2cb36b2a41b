"""Attacks on the cluster, as tests and the README's figures use them: slow sockets, a prober.

Run as a script to print the figures of the README's security section (each run starts its own
cluster and stops it)::

    .venv/bin/python tests/deploy/attacks.py slowloris      # 2,500 slow sockets, /healthz latency
    .venv/bin/python tests/deploy/attacks.py hung-worker    # 12 visitors, one worker SIGSTOPped

Everything here sends traffic only to 127.0.0.0/8 and is bounded in sockets and time.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import resource
import selectors
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field


def ensure_open_files(needed: int) -> None:
    """Raise this process's descriptor limit to `needed` (children inherit it), or fail clearly.

    The soft limit can be raised up to the hard one by anybody, the hard one only by root.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return
        except (ValueError, OSError) as error:
            raise RuntimeError(
                f"this test holds {needed} sockets but the open-files limit is {hard} "
                f"(ulimit -Hn); raise it, e.g. ulimit -n {needed}: {error}"
            ) from error
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of values lie (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class SlowlorisReport:
    """What the attacker saw."""

    opened: int = 0  # connections established
    refused: int = 0  # connection attempts that failed
    most_open: int = 0  # the largest number held open at the same moment
    closed_by_server: list[float] = field(default_factory=list)  # lifetimes, seconds


class Slowloris:
    """Holds `sockets` connections to 127.0.0.1:port from `source`, each sending a request head
    one header line every `line_every` seconds and never finishing it; reopens any the server
    closes, as a slowloris does, at most `opens_per_second`. One thread, non-blocking sockets;
    bounded by `duration`, and so in connections: sockets + opens_per_second x duration.

    Example::

        attack = Slowloris(port, sockets=2500, source="127.0.0.1")
        attack.start(); ...; report = attack.stop()
    """

    _OPENING, _HOLDING = 0, 1

    def __init__(
        self,
        port: int,
        *,
        sockets: int,
        source: str,
        duration: float = 60.0,
        line_every: float = 2.0,
        opens_per_second: int = 500,
    ) -> None:
        self.port = port
        self.sockets = sockets
        self.source = source
        self.duration = duration
        self.line_every = line_every
        self.opens_per_second = opens_per_second
        self.report = SlowlorisReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)
        self._error: BaseException | None = None
        self.holding = 0

    def start(self) -> None:
        """Begin in a background thread."""
        self._thread.start()

    def wait_holding(self, count: int, timeout: float) -> None:
        """Block until `count` connections are held at once."""
        deadline = time.monotonic() + timeout
        while self.holding < count:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the attack stopped early: {self._error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"held only {self.holding} of {count} slow sockets")
            time.sleep(0.05)

    def stop(self) -> SlowlorisReport:
        """Close every socket and return the report."""
        self._stop.set()
        self._thread.join(30)
        if self._error is not None:
            raise RuntimeError("the slowloris thread failed") from self._error
        return self.report

    def _run(self) -> None:
        try:
            self._attack()
        except BaseException as error:  # reported by stop() / wait_holding()
            self._error = error

    def _attack(self) -> None:
        selector = selectors.DefaultSelector()
        opened_at: dict[socket.socket, float] = {}
        due: deque[tuple[float, socket.socket]] = deque()  # next header line, oldest first
        started = time.monotonic()
        end = started + self.duration
        attempts = 0
        line = b"X-Slow: " + b"a" * 20 + b"\r\n"

        def close(sock: socket.socket, by_server: bool) -> None:
            if sock in opened_at:
                opened = opened_at.pop(sock)
                if by_server:
                    self.report.closed_by_server.append(time.monotonic() - opened)
            with contextlib.suppress(KeyError):
                selector.unregister(sock)
            sock.close()

        try:
            while not self._stop.is_set() and time.monotonic() < end:
                # Open what is missing, no faster than opens_per_second.
                allowed = self.sockets + int((time.monotonic() - started) * self.opens_per_second)
                missing = self.sockets - len(selector.get_map())
                for _ in range(max(0, min(missing, allowed - attempts))):
                    attempts += 1
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    sock.bind((self.source, 0))
                    code = sock.connect_ex(("127.0.0.1", self.port))
                    if code not in (0, errno.EINPROGRESS):
                        self.report.refused += 1
                        sock.close()
                        continue
                    selector.register(sock, selectors.EVENT_WRITE, self._OPENING)
                for key, _ in selector.select(timeout=0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if key.data == self._OPENING:
                        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                            self.report.refused += 1
                            close(sock, by_server=False)
                            continue
                        try:
                            sock.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                        except OSError:
                            close(sock, by_server=False)
                            continue
                        opened_at[sock] = time.monotonic()
                        self.report.opened += 1
                        selector.modify(sock, selectors.EVENT_READ, self._HOLDING)
                        due.append((time.monotonic() + self.line_every, sock))
                    else:  # readable: the server answered (408) or closed or reset
                        try:
                            sock.recv(4096)
                        except OSError:
                            pass
                        close(sock, by_server=True)
                self.holding = len(opened_at)
                self.report.most_open = max(self.report.most_open, self.holding)
                now = time.monotonic()
                while due and due[0][0] <= now:
                    _, sock = due.popleft()
                    if sock not in opened_at:
                        continue  # closed meanwhile
                    try:
                        sock.send(line)
                    except OSError:
                        close(sock, by_server=True)
                        continue
                    due.append((now + self.line_every, sock))
        finally:
            for key in list(selector.get_map().values()):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                sock.close()
            selector.close()
            self.holding = 0


@dataclass
class Probe:
    """One request of the prober: when, how long, and what came back (0: no HTTP answer)."""

    sent: float
    seconds: float
    status: int
    error: str = ""


class Prober:
    """GETs `path` on a fresh connection from `source` every `every` seconds, in a thread, as a
    health checker or a newly arriving visitor would; records every outcome.

    Example: ``prober = Prober(port, "/healthz", source="127.0.0.2"); prober.start(); ...;
    probes = prober.stop()``
    """

    def __init__(
        self, port: int, path: str, *, source: str, every: float = 0.1, timeout: float = 5.0
    ) -> None:
        self.port = port
        self.path = path
        self.source = source
        self.every = every
        self.timeout = timeout
        self.probes: list[Probe] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)

    def start(self) -> None:
        """Begin probing in a background thread."""
        self._thread.start()

    def stop(self) -> list[Probe]:
        """Stop after the request in flight; return every probe."""
        self._stop.set()
        self._thread.join(self.timeout + 5)
        return self.probes

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            self.probes.append(self.once(sent))
            self._stop.wait(max(0.0, sent + self.every - time.monotonic()))

    def once(self, sent: float) -> Probe:
        """One GET on a new connection."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=self.timeout, source_address=(self.source, 0)
        )
        try:
            connection.request("GET", self.path)
            response = connection.getresponse()
            response.read()
            return Probe(sent, time.monotonic() - sent, response.status)
        except (OSError, http.client.HTTPException) as error:
            return Probe(sent, time.monotonic() - sent, 0, f"{type(error).__name__}: {error}")
        finally:
            connection.close()


def summary(probes: list[Probe]) -> str:
    """Count, failures and latency percentiles of a probe run, in milliseconds."""
    ok = [p.seconds * 1000 for p in probes if p.status == 200]
    failed = [p for p in probes if p.status != 200]
    return (
        f"{len(probes)} probes, {len(failed)} failed; latency ms p50 {percentile(ok, 0.5):.1f} "
        f"p99 {percentile(ok, 0.99):.1f} max {max(ok, default=float('nan')):.1f}"
    )


# ----- the README's figures ------------------------------------------------------------------


def _measure_slowloris(sockets: int = 2500, seconds: float = 30.0) -> None:
    from deploy.cluster import Cluster

    ensure_open_files(sockets + 1000)
    with Cluster(workers=3, port=0) as cluster:
        baseline = Prober(cluster.port, "/healthz", source="127.0.0.2")
        baseline.start()
        time.sleep(5)
        print("before the attack:", summary(baseline.stop()))
        attack = Slowloris(cluster.port, sockets=sockets, source="127.0.0.1", duration=seconds + 30)
        prober = Prober(cluster.port, "/healthz", source="127.0.0.2")
        attack.start()
        attack.wait_holding(sockets, timeout=30)
        prober.start()
        time.sleep(seconds)
        probes = prober.stop()
        report = attack.stop()
        lifetimes = report.closed_by_server
        print(
            f"slowloris from 127.0.0.1: {sockets} sockets held (most at once {report.most_open}), "
            f"{report.opened} opened in all, {report.refused} refused; nginx closed "
            f"{len(lifetimes)} after p50 {percentile(lifetimes, 0.5):.1f} s "
            f"(max {max(lifetimes, default=0):.1f} s)"
        )
        print(f"/healthz from 127.0.0.2 during {seconds:.0f} s of it:", summary(probes))


def _measure_hung_worker(visitors: int = 12, seconds: float = 40.0) -> None:
    import asyncio

    from keepalive_client import KeepAliveClient

    from deploy.cluster import Cluster

    async def visit(url: str, stop: float, results: list[tuple[float, int]]) -> None:
        client = KeepAliveClient(url, timeout=60)
        try:
            while time.monotonic() < stop:
                sent = time.monotonic()
                try:
                    status = (await client.get("/")).status
                except (OSError, TimeoutError, ValueError) as error:
                    status = 0
                    print("visitor error:", error)
                    await client.close()
                results.append((time.monotonic() - sent, status))
        finally:
            await client.close()

    async def run(cluster: Cluster) -> list[tuple[float, int]]:
        results: list[tuple[float, int]] = []
        stop = time.monotonic() + seconds
        await asyncio.gather(*(visit(cluster.url, stop, results) for _ in range(visitors)))
        return results

    with Cluster(workers=3, port=0, unlimited_addresses=["127.0.0.1"]) as cluster:
        hung = cluster.worker_pids[1]
        cluster.pause_worker(1)
        try:
            results = asyncio.run(run(cluster))
        finally:
            cluster.resume_worker(1)
        ok = [seconds for seconds, status in results if status == 200]
        slow = sorted((s for s in ok if s > 1.0), reverse=True)
        print(
            f"{visitors} visitors for {seconds:.0f} s, worker PID {hung} SIGSTOPped throughout: "
            f"{len(ok)} of {len(results)} requests succeeded; {len(slow)} took over 1 s "
            f"({', '.join(f'{s:.2f}' for s in slow[:10])} s); p50 {percentile(ok, 0.5) * 1000:.1f} "
            f"ms, p99 {percentile(ok, 0.99) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path[:0] = [root, os.path.dirname(os.path.abspath(__file__))]
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "slowloris":
        _measure_slowloris()
    elif what == "hung-worker":
        _measure_hung_worker()
    else:
        raise SystemExit("usage: attacks.py slowloris|hung-worker")
