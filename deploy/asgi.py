"""The ASGI entry every server runs: the demo app, trusting exactly one proxy hop (nginx)."""

from __future__ import annotations

from hypercorn.middleware import ProxyFixMiddleware

from app import create_app

# One hop: the right-most X-Forwarded-For/-Proto/-Host value is the one nginx wrote, so
# request.scheme is "https" behind TLS termination (secure="auto" cookies work) and a client
# cannot spoof its address by sending its own X-Forwarded-For. Behind two proxies, raise it.
app = ProxyFixMiddleware(create_app(), mode="legacy", trusted_hops=1)
