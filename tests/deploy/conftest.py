"""Fixtures for the deploy tests: a real 3-worker cluster (nginx + ASGI workers + Redis)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from site_http import Browser

from deploy.cluster import Cluster


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """Three workers behind the system nginx, sharing a private append-only redis-server."""
    with Cluster(workers=3, port=0) as running:
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
