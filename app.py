"""The demo site: a visit counter with sign-up, sign-in and an account page.

Run it with ``python app.py`` (http://127.0.0.1:5000; ``HOST``/``PORT`` override).  Without
``REDIS_URL`` sessions, users and throttle counters live in files in the instance folder; with
``REDIS_URL`` everything lives in Redis.  For an ASGI server use ``app:app``, e.g.
``hypercorn app:app``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quart import Quart, Response, abort, render_template, request, session
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.utils import host_is_trusted

from auth import Auth, AuthUnavailable
from sessions import FileStore, RedisStore, Sessions, SessionUnavailable, Store

__all__ = ["create_app"]

logger = logging.getLogger("demo")

HERE = Path(__file__).resolve().parent
SERVED_BY = f"{socket.gethostname()}:{os.getpid()}"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


def create_app(config: Mapping[str, Any] | None = None) -> Quart:
    """Build the demo app; ``config`` overrides the environment.

    Keys read: ``SECRET_KEY``, ``REDIS_URL``, ``REDIS_PREFIX`` (default ``"demo:"``),
    ``AUTH_REDIS_URL``, ``TRUSTED_HOSTS``, ``INSTANCE_PATH``, and any Quart, ``SESSION_*`` or
    ``AUTH_*`` key.  Example::

        app = create_app({"REDIS_URL": "redis://127.0.0.1:6379/0"})
    """
    config = dict(config or {})
    instance_path = config.pop("INSTANCE_PATH", None) or os.environ.get("INSTANCE_PATH")
    app = Quart(
        __name__,
        instance_path=str(Path(instance_path).resolve()) if instance_path else None,
        template_folder=str(HERE / "templates"),
        static_folder=str(HERE / "static"),
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.config.update(
        MAX_CONTENT_LENGTH=64 * 1024,
        MAX_FORM_MEMORY_SIZE=16 * 1024,
        MAX_FORM_PARTS=20,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    for key in ("SECRET_KEY", "REDIS_URL", "REDIS_PREFIX", "AUTH_REDIS_URL", "TRUSTED_HOSTS"):
        if os.environ.get(key):
            app.config[key] = os.environ[key]
    app.config.update(config)
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(instance / "secret_key")

    _refuse_untrusted_hosts(app)
    Sessions(app, store=_session_store(app))
    auth = Auth(app)
    _register_pages(app, auth)
    return app


def _refuse_untrusted_hosts(app: Quart) -> None:
    """TRUSTED_HOSTS (a list, or names separated by spaces or commas): any other Host is a 400.

    Checked before anything else runs, so no URL is ever built from an attacker's Host header
    (Werkzeug's slash-merging redirect builds an absolute one). Unset: every host is accepted.
    """
    configured = app.config.get("TRUSTED_HOSTS")
    if isinstance(configured, str):
        configured = configured.replace(",", " ").split()
    trusted = [str(name) for name in configured or ()]
    if not trusted:
        return

    async def check_host() -> None:
        if not host_is_trusted(request.host, trusted):
            abort(400, description="This site does not answer to that host name.")

    app.before_request_funcs.setdefault(None, []).insert(0, check_host)


def _session_store(app: Quart) -> Store:
    redis_url = app.config.get("REDIS_URL")
    if redis_url:
        prefix = str(app.config.get("REDIS_PREFIX") or "demo:")
        app.config.setdefault("AUTH_KEY_PREFIX", f"{prefix}auth:")
        return RedisStore.from_url(redis_url, prefix=f"{prefix}sess:")
    return FileStore(Path(app.instance_path) / "sessions")


def _instance_secret(path: Path) -> str:
    """The secret kept in the instance folder, made on first start (mode 0600)."""
    if not path.exists():
        # Written aside, then hard-linked into place: of several workers starting at once,
        # exactly one wins and the others never see a half-written file.
        fd, tmp = tempfile.mkstemp(prefix=".secret_key.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
            os.link(tmp, path)
            logger.warning(
                "SECRET_KEY is not set: generated a random one in %s. Set SECRET_KEY in the "
                "environment when several machines serve this site.",
                path,
            )
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} holds no usable secret; delete it or set SECRET_KEY")
    return secret


def _register_pages(app: Quart, auth: Auth) -> None:
    @app.get("/")
    async def index() -> str:
        """The visit counter."""
        visits = int(session.get("visits", 0)) + 1
        session["visits"] = visits
        return await render_template("index.html", visits=visits)

    @app.get("/healthz")
    @auth.exempt
    async def healthz() -> tuple[dict[str, Any], int]:
        """JSON health: 200 when the session store answers, 503 when it does not."""
        store = app.extensions["sessions"].store
        reachable = await _reachable(store)
        status = 200 if reachable else 503
        return {"status": "ok" if reachable else "degraded", "store": reachable}, status

    @app.errorhandler(SessionUnavailable)
    @app.errorhandler(AuthUnavailable)
    async def unavailable(error: HTTPException) -> Response:
        """A friendly page while the store is down; it must not touch the session."""
        retry = str(getattr(error, "retry_after", None) or 5)
        body = await render_template("unavailable.html", retry_after=retry)
        response = Response(body, 503)
        response.headers["Retry-After"] = retry
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        """Plain pages for 4xx/5xx without touching the session."""
        body = await render_template("error.html", error=error)
        response = Response(body, error.code or 500)
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.after_request
    async def security_headers(response: Response) -> Response:
        """Headers every response carries, including which worker answered."""
        response.headers["X-Served-By"] = SERVED_BY
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.context_processor
    def served_by() -> dict[str, str]:
        return {"served_by": SERVED_BY}


async def _reachable(store: Store) -> bool:
    try:
        await asyncio.wait_for(store.ping(), timeout=2)
    except Exception:  # any failure (refused, timeout, disk) means "not reachable"
        return False
    return True


_app: Quart | None = None


def __getattr__(name: str) -> Any:
    # `app:app` for ASGI servers, made on first access so importing create_app has no effects.
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(name)


async def _serve() -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"]
    config.accesslog = "-"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(create_app(), config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_serve())
