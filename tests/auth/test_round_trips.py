"""Redis round trips of a signed-in visitor, as the server saw them (MONITOR).

The user has one session, so every pipeline the store sends holds one command and the
number of commands clients sent is the number of round trips.
"""

from __future__ import annotations

import queue
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis

from auth import current_user, owner_key
from tests.round_trip_proxy import round_trip_proxy

from .support import Browser, Site, site_settings, start_site


class CommandLog:
    """The commands clients send to a private redis-server, as MONITOR reports them; the
    commands a script runs inside Redis are left out (a script is one round trip)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.seen: queue.Queue[str] = queue.Queue()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)

    def __enter__(self) -> CommandLog:
        self.thread.start()
        assert self.ready.wait(10), "MONITOR did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.echo(STOP)
        self.thread.join(10)
        self.client.close()

    def _listen(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            for entry in monitor.listen():
                if entry.get("client_type") != "lua":
                    self.seen.put(str(entry["command"]))
                if entry["command"] == f"ECHO {STOP}":
                    return

    def since_last_call(self) -> list[str]:
        """The commands run since the previous call (in order, ended by a marker we send)."""
        marker = f"ECHO mark-{secrets.token_hex(8)}"
        self.client.echo(marker.removeprefix("ECHO "))
        commands = []
        while (command := self.seen.get(timeout=10)) != marker:
            commands.append(command)
        return [c for c in commands if not c.startswith("ECHO mark-")]


STOP = "stop-monitoring"


@pytest.fixture
async def site(tmp_path: Path, private_redis: Any) -> AsyncIterator[Site]:
    settings = site_settings("redis", tmp_path / "instance", "demo:", private_redis.url)
    async with AsyncExitStack() as stack:
        site = await start_site(stack, "redis", settings)

        @site.app.get("/about")
        async def about() -> str:
            """A read-only page of the application that greets the signed-in user."""
            return f"About this site, {current_user.username}"

        yield site


async def round_trips(private_redis: Any, browser: Browser, path: str) -> list[str]:
    """The commands one request of ``browser`` to ``path`` sends to Redis."""
    for _ in range(2):  # warm: connections made, scripts loaded
        assert (await browser.get(path)).status_code == 200
    with CommandLog(private_redis.url) as log:
        log.since_last_call()
        assert (await browser.get(path)).status_code == 200
        return log.since_last_call()


def names(commands: list[str]) -> list[str]:
    return [command.split(" ", 1)[0].strip('"').upper() for command in commands]


async def test_a_signed_in_read_only_page_costs_one_round_trip(
    site: Site, private_redis: Any
) -> None:
    browser = await site.user("alice")
    commands = await round_trips(private_redis, browser, "/about")
    assert names(commands) == ["EVALSHA"], commands  # the session read, which slides the expiry


async def test_the_signed_in_counter_costs_two_round_trips(site: Site, private_redis: Any) -> None:
    browser = await site.user("alice")
    commands = await round_trips(private_redis, browser, "/")
    assert names(commands) == ["EVALSHA", "EVALSHA"], commands  # read, compare-and-set write


async def test_the_account_page_costs_its_session_read_and_one_listing(
    site: Site, private_redis: Any
) -> None:
    """The session read, then ``store.owned`` for the list: auth adds nothing of its own."""
    browser = await site.user("alice")
    user = await site.auth.users.by_username("alice")
    assert user is not None
    with CommandLog(private_redis.url) as log:
        log.since_last_call()
        await site.store.owned(owner_key(user.id))
        listing = log.since_last_call()

    commands = await round_trips(private_redis, browser, "/account")

    assert names(commands) == ["EVALSHA", *names(listing)], (commands, listing)


@pytest.mark.parametrize(("path", "expected"), [("/about", 1), ("/", 2), ("/account", 3)])
async def test_round_trips_a_signed_in_visitor_waits_for(
    tmp_path: Path, private_redis: Any, path: str, expected: int
) -> None:
    """Counted on the wire by a proxy: what a request waits for, pipelined commands as one."""
    async with round_trip_proxy(private_redis.port) as proxy:
        settings = site_settings("redis", tmp_path / "instance", "demo:", proxy.url())
        async with AsyncExitStack() as stack:
            site = await start_site(stack, "redis", settings)

            @site.app.get("/about")
            async def about() -> str:
                return f"About this site, {current_user.username}"

            browser = await site.user("alice")
            for _ in range(2):  # warm: connections made, scripts loaded
                assert (await browser.get(path)).status_code == 200
            assert await proxy.count(browser.get(path)) == expected
