"""Fixtures: the demo site under the Quart test client, on the embedded default, Redis and
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from .support import BACKENDS, Site, SiteFactory, database_for, site_settings, start_site


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every test of the demo runs on the embedded default (files), on Redis and on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """The "postgres" backend's database, this test's own; None for the other backends."""
    return database_for(backend, request)


@pytest.fixture
async def make_site(
    backend: str,
    tmp_path: Path,
    key_prefix: str,
    redis_url: str,
    redis_client: Any,
    database_url: str | None,
) -> AsyncIterator[SiteFactory]:
    """Build demo sites with extra config; each is shut down after the test."""
    async with AsyncExitStack() as stack:
        count = 0

        async def make(**config: Any) -> Site:
            nonlocal count
            count += 1
            prefix = key_prefix.removesuffix("sess:") + f"{count}:"
            instance = tmp_path / f"instance{count}"
            settings = site_settings(
                backend, instance, prefix, redis_url, database_url=database_url, **config
            )
            return await start_site(stack, backend, settings)

        yield make


@pytest.fixture
async def site(make_site: SiteFactory) -> Site:
    return await make_site()
