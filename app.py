"""The demo site: a visit counter with sign-up, sign-in and an account page.

The counter page also shows the visitor's session: its short id, the store and where it lives,
the cookie, the record as stored, and the workers that served it lately.

Run it with ``python app.py`` (http://127.0.0.1:5000; ``HOST``/``PORT`` override).  Where
sessions, users and throttle counters live:

- neither ``REDIS_URL`` nor ``DATABASE_URL``: files in the instance folder;
- ``REDIS_URL``: everything in Redis;
- ``DATABASE_URL=postgresql://…``: everything in PostgreSQL (tables ``session``, connect-pg-simple's,
  ``auth_users`` and ``auth_throttle``), on one pool;
- both: sessions in Redis, users and throttle counters in PostgreSQL (durable, never evicted).

``AUTH_REDIS_URL`` or ``AUTH_DATABASE_URL`` put users and counters elsewhere.  For an ASGI
server use ``app:app``, e.g. ``hypercorn app:app``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import signal
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from quart import Quart, Response, abort, get_flashed_messages, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.utils import host_is_trusted

from auth import Auth, AuthUnavailable, csrf_token, current_user, safe_next
from sessions import (
    DEFAULTS as SESSION_DEFAULTS,
)
from sessions import (
    FileStore,
    PostgresStore,
    RedisStore,
    Session,
    Sessions,
    SessionUnavailable,
    Store,
    session,
    skip_session,
)

__all__ = ["create_app"]

logger = logging.getLogger("demo")

HERE = Path(__file__).resolve().parent
SERVED_BY = f"{socket.gethostname()}:{os.getpid()}"
WORKERS_KEY = "workers"  # the session's own history of who served it, newest last
WORKER_HISTORY = 6

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
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
    ``DATABASE_URL`` (PostgreSQL), ``AUTH_REDIS_URL`` / ``AUTH_DATABASE_URL`` (users and
    throttle counters; default: ``DATABASE_URL``, else ``REDIS_URL``), ``TRUSTED_HOSTS``,
    ``INSTANCE_PATH``, and any Quart, ``SESSION_*`` or ``AUTH_*`` key.  Example::

        app = create_app({"DATABASE_URL": "postgresql://demo@127.0.0.1/demo"})
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
        # A visitor nobody signed in keeps the counter for 30 idle minutes, not a day: a flood
        # of cookieless visits cannot keep millions of records alive (signed-in ones keep 24 h).
        SESSION_ANONYMOUS_TTL=30 * 60,
    )
    for key in (
        "SECRET_KEY",
        "REDIS_URL",
        "REDIS_PREFIX",
        "DATABASE_URL",
        "AUTH_REDIS_URL",
        "AUTH_DATABASE_URL",
        "TRUSTED_HOSTS",
    ):
        if os.environ.get(key):
            app.config[key] = os.environ[key]
    app.config.update(config)
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(instance / "secret_key")

    _refuse_untrusted_hosts(app)
    cookie_name = _cookie_name(app)
    Sessions(app, store=_session_store(app), name=cookie_name)
    auth = Auth(app)
    _register_pages(app, auth, cookie_name)
    return app


def _cookie_name(app: Quart) -> str:
    """``SESSION_COOKIE_NAME`` when the config sets one, else express's ``connect.sid``.

    The demo passes it to ``Sessions`` explicitly so the session panel names the real cookie.
    """
    configured = app.config.get("SESSION_COOKIE_NAME")
    if configured and configured != app.default_config.get("SESSION_COOKIE_NAME"):
        return str(configured)
    return str(SESSION_DEFAULTS["name"])


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
    """Sessions in Redis (``REDIS_URL``), else PostgreSQL (``DATABASE_URL``), else files.

    With both URLs the users and throttle counters go to PostgreSQL (unless ``AUTH_*_URL``
    says otherwise): an account must outlive any memory bound the sessions' Redis has.
    """
    redis_url, database_url = app.config.get("REDIS_URL"), app.config.get("DATABASE_URL")
    if redis_url:
        prefix = str(app.config.get("REDIS_PREFIX") or "demo:")
        app.config.setdefault("AUTH_KEY_PREFIX", f"{prefix}auth:")
        if database_url and not (
            app.config.get("AUTH_REDIS_URL") or app.config.get("AUTH_DATABASE_URL")
        ):
            app.config["AUTH_DATABASE_URL"] = database_url
        return RedisStore.from_url(redis_url, prefix=f"{prefix}sess:")
    if database_url:
        return PostgresStore.from_url(database_url)
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


def _register_pages(app: Quart, auth: Auth, cookie_name: str) -> None:
    @app.get("/")
    async def index() -> str:
        """The visit counter and what the session holds, as the store will hold it."""
        visits = int(session.get("visits", 0)) + 1
        session["visits"] = visits
        session[WORKERS_KEY] = worker_history(session.get(WORKERS_KEY), SERVED_BY)
        store = app.extensions["sessions"].store
        panel = _session_panel(store, cookie_name, app.config.get("DATABASE_URL"))
        return await render_template("index.html", visits=visits, panel=panel)

    @app.get("/healthz")
    @skip_session
    async def healthz() -> tuple[dict[str, Any], int]:
        """JSON health: 200 when the session store and the accounts store answer and accept
        writes, else 503 "degraded" (a Redis out of memory, read-only or failing its disk)."""
        store = app.extensions["sessions"].store
        reachable, accounts = await asyncio.gather(_reachable(store), _writable(auth))
        healthy = reachable and accounts
        body = {"status": "ok" if healthy else "degraded", "store": reachable, "accounts": accounts}
        return body, 200 if healthy else 503

    @app.errorhandler(SessionUnavailable)
    @app.errorhandler(AuthUnavailable)
    async def unavailable(error: HTTPException) -> Response:
        """A friendly page while the store is down; it must not touch the session."""
        retry = str(getattr(error, "retry_after", None) or 5)
        body = await render_template("unavailable.html", retry_after=retry, retry_url=_retry_url())
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

    app.add_template_filter(countdown)


def countdown(seconds: float | None) -> str:
    """``countdown(2591999) == "29 d 23:59:59"``; static/session.js ticks on in the same format."""
    total = max(0, int(seconds or 0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, rest = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{rest:02d}"
    return f"{days} d {clock}" if days else clock


def worker_history(history: Any, served_by: str) -> list[str]:
    """The last few workers that served a session, ``served_by`` last, no repeats in a row.

    ``worker_history(["a:1", "b:2"], "b:2") == ["a:1", "b:2"]``; anything but a list of
    strings (an old or tampered record) starts the history afresh.
    """
    workers = [w for w in history if isinstance(w, str)] if isinstance(history, list) else []
    if not workers or workers[-1] != served_by:
        workers.append(served_by)
    return workers[-WORKER_HISTORY:]


@dataclass(frozen=True)
class SessionPanel:
    """What the counter page shows about the visitor's session."""

    short_id: str
    store: str
    location: str
    key: str | None
    cookie_name: str
    same_site: str
    expires: datetime | None
    remaining: float | None
    owner: str | None
    record: str
    workers: list[str]


def _session_panel(store: Store, cookie_name: str, database_url: str | None) -> SessionPanel:
    """The panel of this request's session; call it last in the view, after every change.

    ``database_url`` is where a ``PostgresStore`` connects (its pool does not say).
    """
    # The page itself changes the session while it renders (the flashed messages are taken out,
    # the logout form needs a CSRF token): do it now, so the record shown is the one stored.
    get_flashed_messages()
    if current_user.is_authenticated:
        csrf_token()
    # The expiry slides when the session is saved, milliseconds from now; slide it here already.
    session.touch()
    cookie = session.cookie
    kind, location, key = _store_location(store, session, database_url)
    return SessionPanel(
        short_id=session.id[:8],
        store=kind,
        location=location,
        key=key,
        cookie_name=cookie_name,
        same_site=_same_site_label(cookie.same_site),
        expires=cookie.expires,
        # Whole milliseconds, rounded down: the page must not show a second more than is left.
        remaining=None if cookie.max_age is None else math.floor(cookie.max_age * 1000) / 1000,
        owner=session.owner,
        record=json.dumps(_shown(_stored_record(session)), indent=2, ensure_ascii=False),
        workers=list(session.get(WORKERS_KEY, [])),
    )


def _stored_record(current: Session) -> dict[str, Any]:
    """The record the store holds for ``current`` once this request ends (express's layout)."""
    record: dict[str, Any] = {"cookie": current.cookie.to_json()}
    if current.owner is not None:
        record["_owner"] = current.owner
    record.update(current)
    return record


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    """The record for the page: secret tokens (``*_token``) cut to their first 6 characters."""
    return {
        name: f"{value[:6]}…" if name.endswith("_token") and isinstance(value, str) else value
        for name, value in record.items()
    }


def _store_location(
    store: Store, current: Session, database_url: str | None
) -> tuple[str, str, str | None]:
    """The store's kind, where it keeps records (never a password), and this session's key."""
    short = current.id[:8]
    if isinstance(store, RedisStore):
        pool = getattr(store.client, "connection_pool", None)
        options: dict[str, Any] = getattr(pool, "connection_kwargs", {})
        if options.get("path"):
            where = f"unix:{options['path']}"
        else:
            where = f"{options.get('host', '?')}:{options.get('port', 6379)}"
        return "RedisStore", f"{where}/{options.get('db', 0)}", f"{store.prefix}{short}…"
    if isinstance(store, FileStore):
        return "FileStore", str(store.path), f"{short}….json"
    if isinstance(store, PostgresStore):
        where = _database_location(database_url) if database_url else ""
        return "PostgresStore", where, f"{store.sql.name} row {short}…"
    return type(store).__name__, "", None


def _database_location(url: str) -> str:
    """``host:port/dbname`` of a libpq URL, without the user or password.

    ``_database_location("postgresql://app:pw@db:5433/shop") == "db:5433/shop"``; a unix
    socket (``postgresql:///shop?host=/run/postgresql``) is ``unix:/run/postgresql/shop``.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    hosts = unquote(parts.netloc.rpartition("@")[2]) or query.get("host", [""])[0]
    user = unquote(parts.netloc.rpartition("@")[0].partition(":")[0])
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", [user or "postgres"])[0]
    if not hosts:
        return f"(default host)/{database}"
    if hosts.startswith("/"):
        return f"unix:{hosts}/{database}"
    if "," not in hosts and not hosts.rpartition("]")[2].count(":"):
        hosts += f":{query.get('port', ['5432'])[0]}"
    return f"{hosts}/{database}"


def _same_site_label(same_site: Any) -> str:
    """The SameSite attribute as the Set-Cookie header spells it."""
    labels = {True: "Strict", "strict": "Strict", "lax": "Lax", "none": "None"}
    return labels.get(same_site, "not set")


def _retry_url() -> str:
    """Where the 503 page's retry link goes: this page again, or home after a form post."""
    if request.method in ("GET", "HEAD"):
        return safe_next(request.full_path.removesuffix("?")) or url_for("index")
    return url_for("index")


async def _reachable(store: Store) -> bool:
    try:
        await asyncio.wait_for(store.ping(), timeout=2)
    except Exception:  # any failure (refused, timeout, disk) means "not reachable"
        return False
    return True


async def _writable(auth: Auth) -> bool:
    try:
        return await asyncio.wait_for(auth.ping(), timeout=2)
    except Exception:  # a timeout, or a store that fails in a way of its own
        return False


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
