"""The ASGI entry every server runs: the demo app behind the proxies in TRUSTED_PROXIES."""

from __future__ import annotations

from app import create_app
from deploy.proxies import from_environment

# Forwarded headers count only on a connection from a trusted proxy (TRUSTED_PROXIES: nginx's
# address; loopback by default), and then only the right-most value, the one nginx wrote: so
# request.scheme is "https" behind TLS termination (secure="auto" cookies work), while neither
# a client going through nginx nor one reaching a worker's port directly can claim another
# address, scheme or host.
app = from_environment(create_app())
