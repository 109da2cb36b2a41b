"""Forwarded headers count only when the proxy sent them: an allow-list of proxy addresses."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from typing import Any, cast

from hypercorn.middleware import ProxyFixMiddleware
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Who may set the client address, scheme and host when TRUSTED_PROXIES is not set: this
#: machine only (nginx on loopback, as deploy.cluster runs it).
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1", "::1")

# The headers a proxy speaks through. hypercorn reads the X-Forwarded-* ones ("legacy" mode);
# Forwarded (RFC 7239) and X-Real-IP are dropped too, so that nothing behind this middleware
# can be led to read a client's claim as the proxy's.
_FORWARDED = re.compile(rb"^(x-forwarded-[a-z-]+|forwarded|x-real-ip)$")


def parse_networks(value: str | Iterable[str]) -> list[Network]:
    """Addresses or CIDR blocks, from a list or a comma- or space-separated string.

    Example: ``parse_networks("127.0.0.1, 172.30.89.0/24")`` -> two networks.
    """
    items = re.split(r"[\s,]+", value) if isinstance(value, str) else list(value)
    networks = []
    for item in (item.strip() for item in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as error:
            raise ValueError(f"TRUSTED_PROXIES: {item!r} is not an address or network") from error
    return networks


class TrustedProxies:
    """An ASGI middleware: X-Forwarded-For/-Proto/-Host decide the client address, scheme and
    host only on a connection from a trusted proxy, and then only its own (right-most) value.

    From any other peer (someone who reached a worker's port directly) every forwarded header
    is removed before the app sees the request: a spoofed X-Forwarded-For no longer buys a
    fresh throttle counter, a spoofed X-Forwarded-Proto no longer makes cookies Secure.

    Example: ``app = TrustedProxies(create_app(), proxies=["127.0.0.1"], hops=1)``
    """

    def __init__(self, app: ASGIFramework, proxies: str | Iterable[str], hops: int = 1) -> None:
        self.app = app
        self.networks = parse_networks(proxies)
        self._from_proxy = ProxyFixMiddleware(app, mode="legacy", trusted_hops=hops)

    def trusts(self, client: Any) -> bool:
        """True when the peer (the ASGI scope's client) is on the allow-list."""
        if not client:
            return False  # no peer address (a unix socket): nothing to check it against
        try:
            address = ipaddress.ip_address(str(client[0]))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
        elif self.trusts(scope.get("client")):
            await self._from_proxy(scope, receive, send)
        else:
            headers = [
                (name, value)
                for name, value in scope["headers"]
                if not _FORWARDED.match(name.lower())
            ]
            await self.app(cast(Scope, {**scope, "headers": headers}), receive, send)


def from_environment(app: ASGIFramework) -> TrustedProxies:
    """Wrap app with the proxies named in TRUSTED_PROXIES (default: loopback), one hop."""
    configured = os.environ.get("TRUSTED_PROXIES", "").strip()
    return TrustedProxies(app, configured or DEFAULT_TRUSTED_PROXIES, hops=1)
