"""TRUSTED_PROXIES: which peers may speak for the client, read from a list or the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deploy.cluster import ROOT
from deploy.proxies import TrustedProxies, parse_networks


async def echo(scope: object, receive: object, send: object) -> None:
    """An ASGI app that never runs: these tests only ask whom the middleware trusts."""


def test_addresses_and_networks_may_be_separated_by_commas_or_spaces() -> None:
    networks = parse_networks("127.0.0.1, 172.30.89.0/24  ::1,")
    assert [str(n) for n in networks] == ["127.0.0.1/32", "172.30.89.0/24", "::1/128"]


def test_a_peer_is_trusted_only_inside_the_list_ipv4_mapped_or_not() -> None:
    proxies = TrustedProxies(echo, "172.30.89.10")
    assert proxies.trusts(("172.30.89.10", 51234))
    assert proxies.trusts(("::ffff:172.30.89.10", 51234))
    assert not proxies.trusts(("172.30.89.11", 51234))
    assert not proxies.trusts(None), "a unix-socket peer has no address to check"
    assert not proxies.trusts(("not-an-address", 0))


def test_a_mistyped_trusted_proxy_is_a_clear_error_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'nginx' is not an address or network"):
        parse_networks("127.0.0.1, nginx")
    # The ASGI entry itself refuses to load with it, naming the setting.
    done = subprocess.run(
        [sys.executable, "-c", "import deploy.asgi"], cwd=ROOT, capture_output=True, text=True,
        env={"PATH": "", "TRUSTED_PROXIES": "172.30.89.300", "SECRET_KEY": "x" * 40,
             "INSTANCE_PATH": str(tmp_path)},
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "TRUSTED_PROXIES: '172.30.89.300' is not an address or network" in done.stderr
