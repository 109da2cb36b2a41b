"""Oversized request heads and bodies get a 4xx from nginx and from each app server alone."""

from __future__ import annotations

import http.client
import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import create_app
from deploy.cluster import ROOT, Cluster, Worker
from deploy.processes import free_port
from deploy.servers import MAX_REQUEST_HEAD, server_command

TIMEOUT = 10.0
KIB = 1024

# Each case is (request target, extra header lines).
HEADS: dict[str, tuple[str, list[str]]] = {
    "64 KiB cookie": ("/", ["Cookie: connect.sid=" + "c" * (64 * KIB)]),
    "100 KiB header": ("/", ["X-Padding: " + "p" * (100 * KIB)]),
    "200 headers": ("/", [f"X-Header-{i}: {i}" for i in range(200)]),
    "100 KiB URL": ("/?q=" + "u" * (100 * KIB), []),
}

# What each layer answers. nginx (large_client_header_buffers 4 8k): a header line over 8 KiB
# is 400 "Request Header Or Cookie Too Large", a URL over 8 KiB 414; it counts no headers, so
# 200 short ones reach granian, whose 431 it passes on. granian (hyper) answers 431 past
# MAX_REQUEST_HEAD bytes or past 100 headers. hypercorn (h11) answers 431 past 16 KiB and
# counts no headers: 200 short ones (2 KiB) are served, so that case is not listed for it.
EXPECTED: dict[str, dict[str, int]] = {
    "nginx": {"64 KiB cookie": 400, "100 KiB header": 400, "200 headers": 431, "100 KiB URL": 414},
    "granian": dict.fromkeys(HEADS, 431),
    "hypercorn": {"64 KiB cookie": 431, "100 KiB header": 431, "100 KiB URL": 431},
}
LAYER_CASES = [(layer, case) for layer, cases in EXPECTED.items() for case in cases]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def exchange(port: int, raw: bytes) -> Answer:
    """Send one raw HTTP/1.1 request on a fresh connection and read the answer.

    A server may answer before it has read all of an oversized request and close; the send
    then fails, but the answer is already on its way and is what a client sees.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = http.client.HTTPResponse(sock)
        response.begin()
        headers = {name.lower(): value for name, value in response.getheaders()}
        try:
            body = response.read()
        except ConnectionResetError:
            body = b""
        return Answer(response.status, headers, body)


def request(method: str, target: str, headers: list[str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += headers or []
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def form_post(size: int) -> bytes:
    body = b"username=" + b"u" * size + b"&password=x"
    return request("POST", "/login", ["Content-Type: application/x-www-form-urlencoded"], body)


def assert_still_serving(port: int) -> None:
    answer = exchange(port, request("GET", "/healthz"))
    assert answer.status == 200, answer.body[:300]


@pytest.fixture(scope="module")
def granian_cluster() -> Iterator[Cluster]:
    """nginx in front of one granian worker (the default server), as deploy runs them."""
    with Cluster(workers=1, port=0, server="granian") as cluster:
        yield cluster
        print(cluster.diagnostics())


@pytest.fixture(scope="module")
def hypercorn_port() -> Iterator[int]:
    """One hypercorn worker alone, sessions in files (no nginx, no Redis)."""
    with tempfile.TemporaryDirectory(prefix="oversized-hypercorn-") as directory:
        env = dict(os.environ)
        env.pop("REDIS_URL", None)
        env.update(
            INSTANCE_PATH=str(Path(directory) / "instance"),
            SECRET_KEY=secrets.token_urlsafe(32),
            PYTHONPATH=str(ROOT),
        )
        port = free_port()
        worker = Worker(
            0, port, server_command("hypercorn", port), env, Path(directory) / "worker.log"
        )
        worker.start()
        try:
            worker.wait_healthy()
            yield port
            print(worker.log_tail())
        finally:
            worker.stop()


@pytest.fixture
def port_of(request: pytest.FixtureRequest) -> dict[str, int]:
    """The loopback port of a layer, starting only the servers a test needs."""

    class Ports(dict[str, int]):
        def __missing__(self, layer: str) -> int:
            if layer == "hypercorn":
                port: int = request.getfixturevalue("hypercorn_port")
            else:
                cluster: Cluster = request.getfixturevalue("granian_cluster")
                port = cluster.port if layer == "nginx" else cluster.workers[0].port
            self[layer] = port
            return port

    return Ports()


@pytest.mark.parametrize(("layer", "case"), LAYER_CASES)
def test_an_oversized_request_head_gets_a_4xx_and_the_server_keeps_serving(
    port_of: dict[str, int], layer: str, case: str
) -> None:
    target, headers = HEADS[case]
    answer = exchange(port_of[layer], request("GET", target, headers))

    assert answer.status == EXPECTED[layer][case], answer.body[:300]
    assert_still_serving(port_of[layer])


@pytest.mark.parametrize("case", ["64 KiB cookie", "100 KiB header"])
def test_nginx_names_the_oversized_header_in_its_answer(port_of: dict[str, int], case: str) -> None:
    target, headers = HEADS[case]
    answer = exchange(port_of["nginx"], request("GET", target, headers))

    assert answer.status == 400
    assert b"Request Header Or Cookie Too Large" in answer.body


@pytest.mark.parametrize("layer", ["nginx", "granian", "hypercorn"])
def test_an_ordinary_large_head_is_still_served(port_of: dict[str, int], layer: str) -> None:
    # A browser's big cookie jar and a long tracking URL, each just under nginx's 8 KiB a line.
    headers = ["Cookie: " + "; ".join(f"c{i}=" + "v" * 700 for i in range(10))]
    answer = exchange(port_of[layer], request("GET", "/?q=" + "u" * (7 * KIB), headers))

    assert answer.status == 200, answer.body[:300]


def test_granian_reads_a_head_up_to_what_nginx_accepts(port_of: dict[str, int]) -> None:
    # Four 7 KiB headers: 28 KiB, which nginx accepts in its four 8 KiB buffers and forwards.
    headers = [f"X-Pad-{i}: " + "p" * (7 * KIB) for i in range(4)]
    assert 28 * KIB < MAX_REQUEST_HEAD
    for layer in ("nginx", "granian"):
        answer = exchange(port_of[layer], request("GET", "/healthz", headers))
        assert answer.status == 200, (layer, answer.body[:300])


@pytest.mark.parametrize("layer", ["granian", "hypercorn"])
@pytest.mark.parametrize("size", [100 * KIB, 2 * KIB * KIB])
def test_a_body_over_max_content_length_sent_to_the_app_server_alone_gets_the_apps_413(
    port_of: dict[str, int], layer: str, size: int
) -> None:
    answer = exchange(port_of[layer], form_post(size))

    assert answer.status == 413, answer.body[:300]
    assert "x-served-by" in answer.headers
    assert_still_serving(port_of[layer])


def test_nginx_refuses_a_body_over_max_content_length_itself_every_time(
    port_of: dict[str, int],
) -> None:
    # Forwarded (client_max_body_size 1m), such a body got a 502 in 14-36% of tries: the app
    # server answered 413 and closed while nginx was still writing the body to it.
    for _ in range(40):
        answer = exchange(port_of["nginx"], form_post(100 * KIB))
        assert answer.status == 413, answer.body[:300]
        assert "x-served-by" not in answer.headers
        assert exchange(port_of["nginx"], form_post(10)).status == 400


def test_nginx_forwards_a_body_of_exactly_max_content_length_to_the_app(
    port_of: dict[str, int], tmp_path: Path
) -> None:
    limit = int(create_app({"INSTANCE_PATH": str(tmp_path)}).config["MAX_CONTENT_LENGTH"])
    overhead = len(form_post(0).partition(b"\r\n\r\n")[2])

    at_limit = exchange(port_of["nginx"], form_post(limit - overhead))
    over = exchange(port_of["nginx"], form_post(limit - overhead + 1))

    assert at_limit.status == 400 and "x-served-by" in at_limit.headers  # the app: no CSRF token
    assert over.status == 413 and "x-served-by" not in over.headers


@pytest.mark.parametrize("layer", ["nginx", "granian", "hypercorn"])
def test_a_chunked_body_over_max_content_length_gets_413(
    port_of: dict[str, int], layer: str
) -> None:
    body = b"username=" + b"u" * (100 * KIB) + b"&password=x"
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    head = request(
        "POST",
        "/login",
        ["Content-Type: application/x-www-form-urlencoded", "Transfer-Encoding: chunked"],
    )
    answer = exchange(port_of[layer], head + chunked)

    assert answer.status == 413, answer.body[:300]
    assert_still_serving(port_of[layer])
