"""Slow clients through nginx: a slowloris from one address does not take the site down."""

from __future__ import annotations

import socket
import time

from attacks import Prober, Slowloris, ensure_open_files, percentile, summary

from deploy.cluster import Cluster

SLOW_SOCKETS = 2500
ATTACKER = "127.0.0.3"  # not on the fixture's list of unlimited addresses
VISITOR = "127.0.0.2"
HEADER_TIMEOUT = 10.0  # client_header_timeout and client_body_timeout in the template
UNDER_ATTACK = 2.5 * HEADER_TIMEOUT  # long enough for nginx to cut every slow socket twice


def test_2500_slow_sockets_from_one_address_leave_healthz_answering_another(
    cluster: Cluster,
) -> None:
    ensure_open_files(SLOW_SOCKETS + 1000)
    attack = Slowloris(
        cluster.port, sockets=SLOW_SOCKETS, source=ATTACKER, duration=UNDER_ATTACK + 40
    )
    prober = Prober(cluster.port, "/healthz", source=VISITOR, every=0.1, timeout=5.0)
    attack.start()
    try:
        # Full strength first (or what the server lets the attacker reach in 30 s).
        deadline = time.monotonic() + 30
        while attack.holding < SLOW_SOCKETS and time.monotonic() < deadline:
            time.sleep(0.1)
        prober.start()
        time.sleep(UNDER_ATTACK)
        probes = prober.stop()
    finally:
        report = attack.stop()

    failed = [(round(p.sent, 2), p.status, p.error) for p in probes if p.status != 200]
    assert failed == [], f"/healthz from {VISITOR} failed under the attack: {failed[:10]}"
    assert len(probes) >= UNDER_ATTACK / 0.1 / 2, f"too few probes got through: {summary(probes)}"
    assert report.most_open >= SLOW_SOCKETS, f"the attack held only {report.most_open} sockets"
    # nginx cut the slow heads at its header timeout, not at its default of 60 s; the attacker
    # kept reopening them, so the pressure never let up.
    lifetimes = report.closed_by_server
    assert len(lifetimes) >= SLOW_SOCKETS, f"nginx closed only {len(lifetimes)} slow sockets"
    assert percentile(lifetimes, 0.99) < HEADER_TIMEOUT + 3, percentile(lifetimes, 0.99)
    print(
        f"{SLOW_SOCKETS} slow sockets from {ATTACKER}: /healthz from {VISITOR}: {summary(probes)}"
    )


def answered_or_closed(sock: socket.socket) -> bool:
    """True once the server sent anything (its 408) or closed or reset the connection.

    sock must be non-blocking.
    """
    try:
        return sock.recv(4096) is not None  # b"" on a close
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_a_trickled_request_head_and_a_stalled_body_are_cut_off_after_10_s(
    cluster: Cluster,
) -> None:
    # A head sent a line a second and never finished; a POST whose body stops after 4 bytes.
    trickle = socket.create_connection(("127.0.0.1", cluster.port), timeout=5)
    stall = socket.create_connection(("127.0.0.1", cluster.port), timeout=5)
    started = time.monotonic()
    cut_after: dict[str, float] = {}
    try:
        trickle.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        stall.sendall(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\nuser"
        )
        trickle.setblocking(False)
        stall.setblocking(False)
        next_line = started + 1
        while len(cut_after) < 2 and time.monotonic() - started < 3 * HEADER_TIMEOUT:
            time.sleep(0.1)
            for name, sock in (("head", trickle), ("body", stall)):
                if name not in cut_after and answered_or_closed(sock):
                    cut_after[name] = time.monotonic() - started
            if "head" not in cut_after and time.monotonic() >= next_line:
                next_line += 1
                try:
                    trickle.send(b"X-Slow: a\r\n")
                except OSError:
                    cut_after["head"] = time.monotonic() - started
    finally:
        trickle.close()
        stall.close()
    # nginx's defaults would hold both for 60 s.
    assert set(cut_after) == {"head", "body"}, f"still open after {3 * HEADER_TIMEOUT} s"
    assert all(
        HEADER_TIMEOUT - 1 <= after <= HEADER_TIMEOUT + 1.5 for after in cut_after.values()
    ), cut_after
