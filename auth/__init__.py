"""Sign-up, sign-in and account pages for Quart on top of ``sessions``.

Example::

    from auth import Auth, current_user, login_required

    Sessions(app, store=FileStore("instance/sessions"))
    Auth(app)
"""

from .csrf import CSRF_FIELD, CSRF_HEADER, CSRFError, csrf_protect, csrf_token, validate_csrf
from .errors import AuthUnavailable, StaleSignIn, Throttled
from .extension import DEFAULTS, Auth
from .flashes import flash
from .globals import current_user, login_required, login_user, logout_user, signed_in_user
from .passwords import Passwords, Verified
from .signins import SessionUser
from .throttle import (
    Counters,
    FileCounters,
    MemoryCounters,
    PostgresCounters,
    RedisCounters,
    Throttle,
)
from .users import (
    AnonymousUser,
    FileUserStore,
    PostgresUserStore,
    RedisUserStore,
    User,
    UsernameTaken,
    UserStore,
    owner_key,
)
from .views import safe_next

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "DEFAULTS",
    "AnonymousUser",
    "Auth",
    "AuthUnavailable",
    "CSRFError",
    "Counters",
    "FileCounters",
    "FileUserStore",
    "MemoryCounters",
    "Passwords",
    "PostgresCounters",
    "PostgresUserStore",
    "RedisCounters",
    "RedisUserStore",
    "SessionUser",
    "StaleSignIn",
    "Throttle",
    "Throttled",
    "User",
    "UserStore",
    "UsernameTaken",
    "Verified",
    "csrf_protect",
    "csrf_token",
    "current_user",
    "flash",
    "login_required",
    "login_user",
    "logout_user",
    "owner_key",
    "safe_next",
    "signed_in_user",
    "validate_csrf",
]
