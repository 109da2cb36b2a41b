"""The auth blueprint: register, login, logout, account, password change, session revocation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from quart import (
    Blueprint,
    ResponseReturnValue,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)

from sessions import session

from .csrf import UNSAFE_METHODS, validate_csrf
from .errors import StaleSignIn, Throttled
from .flashes import flash
from .globals import (
    current_user,
    login_required,
    login_user,
    logout_user,
    signed_in_user,
    signins,
)
from .passwords import normalize
from .rules import USERNAME_RULE, password_errors, username_errors
from .signins import CREATED, REMEMBER, USER_AGENT
from .users import User, UsernameTaken

if TYPE_CHECKING:  # the extension imports this module to register the blueprint
    from .extension import Auth

__all__ = ["blueprint", "safe_next"]

blueprint = Blueprint("auth", __name__)

LOGIN_FAILED = "Wrong username or password."
SIGNED_OUT = "You are signed out."
FIELD_LIMIT = 1024  # longest username we look at; passwords have their own limit


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else ``None``: ``safe_next("//evil.example")``
    is ``None``, ``safe_next("/account?tab=1")`` is ``"/account?tab=1"``."""
    if not target or len(target) > 2048 or not target.startswith("/") or target.startswith("//"):
        return None
    # Browsers read "\" as "/" and drop tabs and newlines, so "/\evil" or "/\t/evil" would leave.
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _auth() -> Auth:
    return cast("Auth", current_app.extensions["auth"])


async def _form() -> dict[str, str]:
    form = await request.form
    return {key: form.get(key, "") for key in form}


@blueprint.app_template_filter("when")
def when(value: datetime | str | None) -> str:
    """A time for people: ``21 Nov 2025, 21:04 UTC``; a dash when unknown."""
    moment = value if isinstance(value, datetime) else _parse_time(value)
    if moment is None:
        return "—"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%d %b %Y, %H:%M UTC")


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


@blueprint.app_template_filter("browser")
def browser(user_agent: str) -> str:
    """A short name for a User-Agent: ``Firefox on Linux``."""
    name = next((label for token, label in _BROWSERS if token in user_agent), None)
    system = next((label for token, label in _SYSTEMS if token in user_agent), None)
    if "Headless" in user_agent and name:
        name = f"Headless {name}"
    if name and system:
        return f"{name} on {system}"
    return name or system or (user_agent[:60] if user_agent else "Unknown browser")


@blueprint.before_request
async def _check_csrf() -> None:
    if request.method in UNSAFE_METHODS:
        await validate_csrf()


@blueprint.route("/register", methods=["GET", "POST"])
async def register() -> ResponseReturnValue:
    """Create an account; the form keeps what was typed except the passwords."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(_auth().home)
    if request.method == "GET":
        return await _register_page({}, {})

    ext = _auth()
    form = await _form()
    username = form.get("username", "").strip()[:FIELD_LIMIT]
    password = form.get("password", "")
    confirm = form.get("confirm", "")
    # The checks that read only the form come first and are free; the rest is counted.
    errors: dict[str, list[str]] = {}
    if problems := username_errors(username):
        errors["username"] = problems
    if normalize(password) != normalize(confirm):
        errors["confirm"] = ["The two passwords differ."]
    if errors:
        return await _register_page({"username": username}, errors, 400)

    # Counted before the name is looked up, taken or free: no unthrottled username oracle.
    try:
        await ext.throttle.begin_registration(request.remote_addr)
    except Throttled as error:
        return await _register_page(
            {"username": username}, {"form": [str(error.description)]}, 429, error
        )
    if problems := await _password_problems(password, username):
        errors["password"] = problems
    if await ext.users.by_username(username) is not None:
        errors["username"] = ["That username is taken."]
    if errors:
        return await _register_page({"username": username}, errors, 400)
    try:
        user = await ext.users.create(username, await ext.passwords.hash(password))
    except UsernameTaken:
        taken = {"username": ["That username is taken."]}
        return await _register_page({"username": username}, taken, 400)
    # They just typed the password twice: asking for it a third time proves nothing.
    await login_user(user)
    await flash(
        f"Welcome, {user.username}. Your account is ready and you are signed in.", "success"
    )
    return redirect(ext.home)


async def _password_problems(password: str, username: str) -> list[str]:
    """``password_errors`` with this app's limits, off the event loop (the estimate costs CPU)."""
    ext = _auth()
    return await asyncio.to_thread(
        password_errors,
        password,
        username,
        min_length=ext.password_min_length,
        max_length=ext.password_max_length,
        min_score=ext.password_min_score,
    )


async def _register_page(
    values: dict[str, str],
    errors: dict[str, list[str]],
    status: int = 200,
    throttled: Throttled | None = None,
) -> ResponseReturnValue:
    body = await render_template(
        "auth/register.html",
        values=values,
        errors=errors,
        username_rule=USERNAME_RULE,
        password_min=_auth().password_min_length,
    )
    return body, status, _retry_after(throttled)


@blueprint.route("/login", methods=["GET", "POST"])
async def login() -> ResponseReturnValue:
    """Sign in; ``next`` is followed only when it is a path on this site."""
    if request.method == "GET":
        values = {"username": request.args.get("username", "")[:FIELD_LIMIT]}
        next_url = safe_next(request.args.get("next"))
        return await _login_page(values, next_url, notice=_why_sign_in(next_url))

    ext = _auth()
    form = await _form()
    username = form.get("username", "").strip()[:FIELD_LIMIT]
    password = form.get("password", "")
    remember = form.get("remember", "") in {"on", "1", "true", "yes"}
    next_url = safe_next(form.get("next") or request.args.get("next"))
    values = {"username": username, "remember": "on" if remember else ""}
    if not username or not password:
        return await _login_page(values, next_url, "Enter your username and password.", 400)

    try:
        await ext.throttle.begin_login(username, request.remote_addr)
    except Throttled as error:
        return await _login_page(values, next_url, str(error.description), 429, error)

    user = await _authenticate(username, password)
    if user is None:
        return await _login_page(values, next_url, LOGIN_FAILED, 401)
    try:
        await login_user(user, remember=remember)
    except StaleSignIn:  # the password changed while this one was checked: it is wrong now
        return await _login_page(values, next_url, LOGIN_FAILED, 401)
    await ext.throttle.login_succeeded(username, request.remote_addr)
    await flash(f"Welcome back, {user.username}.", "success")
    return redirect(next_url or ext.home)


async def _authenticate(username: str, password: str) -> User | None:
    """The user if the password is right; hashes it anew when the parameters changed or it was
    hashed before passwords were normalised (never over a password changed meanwhile)."""
    ext = _auth()
    if len(password) > ext.password_max_length:
        password = ""  # cannot match; still verified below so the time spent is the same
    user = await ext.users.by_username(username)
    verified = await ext.passwords.verify(user.password_hash if user else None, password)
    if user is None or not verified:
        return None
    if ext.passwords.needs_rehash(user.password_hash, verified):
        new_hash = await ext.passwords.hash(password)
        upgraded = await ext.users.upgrade_password_hash(user.id, user.password_hash, new_hash)
        user = upgraded or user
    return user


async def _login_page(
    values: dict[str, str],
    next_url: str | None,
    error: str | None = None,
    status: int = 200,
    throttled: Throttled | None = None,
    notice: str | None = None,
) -> ResponseReturnValue:
    body = await render_template(
        "auth/login.html", values=values, next=next_url, error=error, notice=notice
    )
    return body, status, _retry_after(throttled)


def _why_sign_in(next_url: str | None) -> str | None:
    """Why the login form is shown when ``login_required`` sent the visitor here."""
    if next_url is None:
        return None
    if urlsplit(next_url).path == url_for("auth.account"):
        return "Please sign in to see your account."
    return "Please sign in to continue."


def _retry_after(throttled: Throttled | None) -> dict[str, str]:
    if throttled is None or throttled.retry_after is None:
        return {}
    return {"Retry-After": str(throttled.retry_after)}


@blueprint.post("/logout")
async def logout() -> ResponseReturnValue:
    """Sign out (POST only): the session is destroyed server-side; a fresh one carries the notice."""
    await logout_user()
    await flash(SIGNED_OUT, "info")
    return redirect(_auth().home)


@dataclass(frozen=True)
class SessionRow:
    """One line of the account page's session list."""

    handle: str
    created: datetime | None
    last_seen: datetime | None
    expires: datetime | None
    user_agent: str
    current: bool


async def _session_rows() -> list[SessionRow]:
    ext = _auth()
    rows = []
    for info in await signins().sessions_of(signed_in_user().id):
        rows.append(
            SessionRow(
                handle=ext.tokens.handle(info.id),
                created=_parse_time(info.data.get(CREATED)),
                last_seen=info.last_seen,
                expires=info.expires,
                user_agent=str(info.data.get(USER_AGENT) or ""),
                current=info.id == session.id,
            )
        )
    rows.sort(key=lambda row: (not row.current, -(row.last_seen or _EPOCH).timestamp()))
    return rows


_EPOCH = datetime.fromtimestamp(0, UTC)


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


@blueprint.get("/account")
@login_required
async def account() -> ResponseReturnValue:
    """The signed-in user's page: sessions (revocable) and a password form."""
    return await _account_page()


async def _account_page(
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
    throttled: Throttled | None = None,
) -> ResponseReturnValue:
    body = await render_template(
        "auth/account.html",
        sessions=await _session_rows(),
        errors=errors or {},
        password_min=_auth().password_min_length,
    )
    return body, status, _retry_after(throttled)


@blueprint.post("/account/password")
@login_required
async def change_password() -> ResponseReturnValue:
    """Change the password: every other session ends, this one continues under a new id."""
    ext = _auth()
    form = await _form()
    current = form.get("current_password", "")
    new = form.get("new_password", "")
    address = request.remote_addr
    user = await ext.users.get(signed_in_user().id)
    if user is None:  # the account is gone
        await logout_user()
        return redirect(url_for("auth.login"))

    try:
        await ext.throttle.begin_login(user.username, address)
    except Throttled as error:
        return await _account_page({"current_password": [str(error.description)]}, 429, error)
    if not await ext.passwords.verify(user.password_hash, current[: ext.password_max_length + 1]):
        wrong = {"current_password": ["That is not your current password."]}
        return await _account_page(wrong, 400)
    await ext.throttle.login_succeeded(user.username, address)

    if problems := await _password_problems(new, user.username):
        return await _account_page({"new_password": problems}, 400)
    if normalize(new) == normalize(current):
        return await _account_page({"new_password": ["Choose a new password."]}, 400)

    # The new generation is stored before the other sessions are destroyed: a sign-in that
    # checked the old password and writes its session after destroy_owned sees it (login_user).
    updated = await ext.users.set_password_hash(user.id, await ext.passwords.hash(new))
    if updated is None:
        await logout_user()
        return redirect(url_for("auth.login"))
    await signins().end_other_sessions(user.id, keep=session.id)
    keep = {k: v for k, v in session.items() if not k.startswith("_")}
    try:
        await login_user(updated, remember=bool(session.get(REMEMBER)))
    except StaleSignIn:  # changed again meanwhile, elsewhere: this session ended too
        return redirect(url_for("auth.login"))
    session.update(keep)
    await flash("Password changed. Every other session has been signed out.", "success")
    return redirect(url_for("auth.account"))


@blueprint.post("/account/sessions/revoke")
@login_required
async def revoke_session() -> ResponseReturnValue:
    """Sign out one of the user's sessions, named by its handle from the account page."""
    ext = _auth()
    handle = (await _form()).get("session", "")
    for info in await signins().sessions_of(signed_in_user().id):
        if ext.tokens.handle(info.id) == handle:
            if info.id == session.id:
                await logout_user()
                await flash(SIGNED_OUT, "info")
                return redirect(ext.home)
            await signins().end_session(info.id)
            await flash("That session has been signed out.", "success")
            break
    else:
        await flash("That session had already ended.", "info")
    return redirect(url_for("auth.account"))


@blueprint.post("/account/sessions/revoke-others")
@login_required
async def revoke_other_sessions() -> ResponseReturnValue:
    """Sign out every session of the user except this one."""
    count = await signins().end_other_sessions(signed_in_user().id, keep=session.id)
    noun = "session" if count == 1 else "sessions"
    await flash(f"Signed out {count} other {noun}.", "success")
    return redirect(url_for("auth.account"))
