"""The project's own site (app.py create_app(): sessions + auth) for the login scenario.

Points it at the benchmark's private Redis and registers the benchmark's users
(BENCH_USERS: JSON list of [username, password]) before it serves.
"""

from __future__ import annotations

try:
    from app import create_app
except ImportError as error:  # pragma: no cover - depends on the project's progress
    raise RuntimeError(
        "the login scenario needs app.py with create_app() and the auth blueprint"
    ) from error

app = create_app()
