"""Fixtures for the deploy tests: a real 3-worker cluster (nginx + ASGI workers + Redis)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from site_http import Browser

from deploy.cluster import Cluster

#: The suite's visitors come from 127.0.0.1, up to 50 at once in the load test, like many
#: people behind one NAT: that address is on nginx's list of addresses exempt from the
#: per-address limits. Tests of those limits and of attacks use other loopback addresses.
SUITE_ADDRESS = "127.0.0.1"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """Three workers behind the system nginx; sessions and users on two private redis-servers."""
    with Cluster(workers=3, port=0, unlimited_addresses=[SUITE_ADDRESS]) as running:
        yield running
        # pytest shows this only when the test failed: what the workers and nginx logged.
        print(running.diagnostics())


@pytest.fixture
def browser(cluster: Cluster) -> Browser:
    """A client that talks to the cluster only through nginx."""
    return Browser(cluster.url)


@pytest.fixture
def credentials() -> dict[str, str]:
    """A fresh user name and a strong password."""
    return {"username": f"user{secrets.token_hex(4)}", "password": secrets.token_urlsafe(18)}
