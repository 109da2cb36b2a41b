"""Everything decided once at start-up, and the small questions a request asks of it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .cookie import normalize_cookie_options
from .decision import Rules
from .helpers import SKIP_ATTRIBUTE
from .signing import read_cookie, verify

if TYPE_CHECKING:
    from quart.wrappers import BaseRequestWebsocket

__all__ = ["Policy"]

CookieOptions = Mapping[str, Any] | Callable[["BaseRequestWebsocket"], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Policy:
    """The resolved options of `Sessions` (see its docstring for the config keys and defaults)."""

    #: The cookie's name (express's `name`).
    name: str
    #: Signing secrets: the first signs, every one verifies (rotation).
    secrets: tuple[bytes, ...]
    #: Cookie attributes, or a function of the request returning them (express 1.19).
    cookie: CookieOptions
    #: Write a loaded session back even when unchanged.
    resave: bool
    #: Send the cookie on every response of a loaded session.
    rolling: bool
    #: Store and send a new session even when the request left it untouched.
    save_uninitialized: bool
    #: What `session.unset()` does to the stored record: "keep" or "destroy".
    unset: str
    #: Trust X-Forwarded-Proto (True), only TLS seen by the server (False), or the framework (None).
    proxy: bool | None
    #: Makes a new session id from the request.
    genid: Callable[[BaseRequestWebsocket], str]
    #: Largest serialized record, in bytes; a larger one is a SessionTooLarge.
    max_size: int
    #: What `session.permanent = True` sets as max_age (Quart's PERMANENT_SESSION_LIFETIME).
    permanent_lifetime: timedelta
    #: Seconds a client is told to wait (Retry-After) while the store is down.
    retry_after: int
    #: Idle life (seconds) of a stored session with no owner and a browser-session cookie; None: the store's ttl.
    anonymous_ttl: int | None = None
    #: Endpoints that use no session ("static"); "name." stands for every endpoint of a blueprint.
    skip: frozenset[str] = frozenset({"static"})
    #: Requests no route matches (404, 405) use no session.
    skip_not_found: bool = True
    rules: Rules = field(init=False)

    def __post_init__(self) -> None:
        rules = Rules(self.resave, self.rolling, self.save_uninitialized, self.unset == "destroy")
        object.__setattr__(self, "rules", rules)

    def skips(self, endpoint: str | None, view: object) -> bool:
        """Whether requests for `endpoint` (served by `view`) go without a session."""
        if endpoint is None:
            return self.skip_not_found
        if endpoint in self.skip or getattr(view, SKIP_ATTRIBUTE, False):
            return True
        blueprint, dot, _ = endpoint.rpartition(".")
        return bool(dot) and any(
            blueprint == name[:-1] or blueprint.startswith(name)
            for name in self.skip
            if name.endswith(".")
        )

    def cookie_options(self, request: BaseRequestWebsocket) -> Mapping[str, Any]:
        options = self.cookie
        return normalize_cookie_options(options(request)) if callable(options) else options

    @staticmethod
    def in_scope(request: BaseRequestWebsocket, options: Mapping[str, Any]) -> bool:
        """Whether the request's full path (a mounted app's root path included) is under the cookie's."""
        cookie_path = options.get("path") or "/"
        if cookie_path == "/":
            return True
        # ASGI's scope path includes the mount point (root_path); Quart's request.path does not.
        path, root = request.scope.get("path") or request.path, request.root_path
        if root and not path.startswith(root):
            path = root + path
        # A segment boundary, unlike express's plain prefix test that lets /app match /application.
        prefix = cookie_path if cookie_path.endswith("/") else cookie_path + "/"
        return path == cookie_path or path.startswith(prefix)

    def is_secure(self, request: BaseRequestWebsocket) -> bool:
        """express's issecure: TLS, or with `proxy` the first X-Forwarded-Proto value."""
        if self.proxy:
            forwarded = request.headers.get("X-Forwarded-Proto", "")
            return forwarded.split(",", 1)[0].strip().lower() == "https"
        if self.proxy is None:
            return request.scheme in ("https", "wss")
        # proxy=False: ignore what a proxy middleware derived. ASGI servers that terminate TLS say
        # so in the "tls" extension; without it, a scheme that came with forwarding headers is
        # taken as derived from them.
        scope = request.scope
        if "tls" in (scope.get("extensions") or {}):
            return True
        derived = "X-Forwarded-Proto" in request.headers or "Forwarded" in request.headers
        return not derived and scope.get("scheme") in ("https", "wss")

    def read_cookie(self, request: BaseRequestWebsocket) -> tuple[str, int] | None:
        """The verified session id the request carries and which secret verified it."""
        # HTTP/2 (and some clients) may send a Cookie header per cookie: they form one list.
        header = "; ".join(request.headers.getlist("Cookie"))
        if not header:
            return None
        value = read_cookie(header, self.name)
        return None if value is None else verify(value, self.secrets)
