"""The project's own site (app.py create_app(): sessions + auth) for the login scenario.

Points it at the benchmark's private Redis and registers the benchmark's users
(BENCH_USERS: JSON list of [username, password]) before it serves.
"""

from __future__ import annotations

import json
import os

from app import create_app
from auth import Auth, UsernameTaken
from bench.apps.settings import FILE_DIR, PREFIX, SECRET, require_redis_url

if not FILE_DIR:
    raise RuntimeError("BENCH_FILE_DIR must name an instance folder for the site")

app = create_app(
    {
        "SECRET_KEY": SECRET,
        "REDIS_URL": require_redis_url(),
        "REDIS_PREFIX": PREFIX,
        "INSTANCE_PATH": FILE_DIR,
    }
)


@app.before_serving
async def register_bench_users() -> None:
    auth: Auth = app.extensions["auth"]
    for username, password in json.loads(os.environ.get("BENCH_USERS", "[]")):
        try:
            await auth.users.create(username, await auth.passwords.hash(password))
        except UsernameTaken:
            pass
