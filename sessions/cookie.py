"""The session cookie: its attributes, its express JSON form, and its Set-Cookie header."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal

__all__ = ["Cookie", "normalize_cookie_options"]

SameSite = bool | Literal["lax", "strict", "none", "auto"] | None
Secure = bool | Literal["auto"] | None
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SAME_SITE = {True: "Strict", "strict": "Strict", "lax": "Lax", "none": "None"}
_PRIORITY = {"low": "Low", "medium": "Medium", "high": "High"}
_OPTION_KEYS = (
    "max_age",
    "expires",
    "path",
    "domain",
    "http_only",
    "secure",
    "same_site",
    "partitioned",
    "priority",
)


def _to_ms(value: float | timedelta) -> int | float:
    if isinstance(value, timedelta):
        ms: int | float = (value.days * 86400 + value.seconds) * 1000 + value.microseconds / 1000
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"cookie max_age must be seconds (int or float) or a timedelta, not {value!r}"
        )
    else:
        ms = round(value * 1000, 3)  # microsecond precision, without float noise like 1004.9999
    return int(ms) if float(ms).is_integer() else ms


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"stored cookie field {key!r} has a wrong type: {value!r}")
    return value


def normalize_cookie_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate cookie options once, so a typo is an error at start-up rather than per request."""
    unknown = set(options) - set(_OPTION_KEYS)
    if unknown:
        raise TypeError(f"unknown cookie option(s) {sorted(unknown)}; known: {list(_OPTION_KEYS)}")
    result = dict(options)
    same_site = result.get("same_site")
    if isinstance(same_site, str):
        result["same_site"] = same_site = same_site.lower()
    if same_site not in (None, True, False, "lax", "strict", "none", "auto"):
        raise ValueError(
            f"cookie same_site must be True, False, 'lax', 'strict', 'none' or 'auto', not {same_site!r}"
        )
    if result.get("secure") not in (None, True, False, "auto"):
        raise ValueError(f"cookie secure must be True, False or 'auto', not {result['secure']!r}")
    priority = result.get("priority")
    if priority is not None and str(priority).lower() not in _PRIORITY:
        raise ValueError(f"cookie priority must be 'low', 'medium' or 'high', not {priority!r}")
    if result.get("max_age") is not None:
        _to_ms(result["max_age"])
    expires = result.get("expires")
    if expires is not None and not (isinstance(expires, datetime) and expires.tzinfo is not None):
        raise ValueError(f"cookie expires must be a timezone-aware datetime, not {expires!r}")
    return result


class Cookie:
    """The session cookie's attributes; `max_age` is the remaining lifetime in seconds."""

    __slots__ = (
        "path",
        "domain",
        "http_only",
        "secure",
        "same_site",
        "partitioned",
        "priority",
        "_expires",
        "_original_max_age",
    )

    def __init__(self) -> None:
        self.path = "/"
        self.domain: str | None = None
        self.http_only = True
        self.secure: Secure = None
        self.same_site: SameSite = None
        self.partitioned: bool | None = None
        self.priority: str | None = None
        self._expires: datetime | None = None
        self._original_max_age: int | float | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, secure_request: bool) -> Cookie:
        """A new session's cookie, with the 'auto' values resolved against this request."""
        cookie = cls()
        for key, value in options.items():  # in order: whichever of max_age/expires comes last wins
            setattr(cookie, key, value)
        if cookie.secure == "auto":
            cookie.secure = secure_request
        if cookie.same_site == "auto":
            cookie.same_site = "none" if secure_request else "lax"
        return cookie

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cookie:
        """The cookie of a stored record (express layout); ValueError when a field has a wrong type."""
        cookie = cls()
        cookie.path = _field(data, "path", str) or "/"
        cookie.domain = _field(data, "domain", str)
        cookie.http_only = _field(data, "httpOnly", bool) is not False
        cookie.secure = _field(data, "secure", bool)
        same_site = _field(data, "sameSite", (str, bool))
        cookie.same_site = same_site.lower() if isinstance(same_site, str) else same_site  # type: ignore[assignment]
        if cookie.same_site not in (None, True, False, "lax", "strict", "none"):
            raise ValueError(f"stored cookie has an invalid sameSite: {same_site!r}")
        cookie.partitioned = _field(data, "partitioned", bool)
        priority = _field(data, "priority", str)
        if priority is not None and priority.lower() not in _PRIORITY:
            raise ValueError(f"stored cookie has an invalid priority: {priority!r}")
        cookie.priority = priority
        expires = _field(data, "expires", str)
        if expires is not None:
            moment = datetime.fromisoformat(expires)
            cookie._expires = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        original = _field(data, "originalMaxAge", (int, float))
        cookie._original_max_age = None if isinstance(original, bool) else original
        return cookie

    def to_json(self) -> dict[str, Any]:
        """The express JSON form, key order included; unset attributes are left out."""
        data: dict[str, Any] = {"originalMaxAge": self._original_max_age}
        if self.partitioned is not None:
            data["partitioned"] = self.partitioned
        if self.priority is not None:
            data["priority"] = self.priority
        data["expires"] = _iso(self._expires) if self._expires is not None else None
        if self.secure is not None:
            data["secure"] = self.secure
        data["httpOnly"] = self.http_only
        if self.domain is not None:
            data["domain"] = self.domain
        data["path"] = self.path
        if self.same_site is not None:
            data["sameSite"] = self.same_site
        return data

    @property
    def expires(self) -> datetime | None:
        return self._expires

    @expires.setter
    def expires(self, value: datetime | None) -> None:
        self._expires = value
        self._original_max_age = None if value is None else _to_ms(self._remaining(value))

    @property
    def max_age(self) -> float | None:
        """Seconds until the cookie expires; None for a browser-session cookie."""
        return None if self._expires is None else self._remaining(self._expires)

    @max_age.setter
    def max_age(self, value: float | timedelta | None) -> None:
        if value is None:
            self._expires = None
            self._original_max_age = None
            return
        ms = _to_ms(value)
        self._original_max_age = ms
        self._expires = datetime.now(UTC) + timedelta(milliseconds=ms)

    @property
    def original_max_age(self) -> float | None:
        """The max_age the cookie was given, in seconds (kept exact across requests)."""
        return None if self._original_max_age is None else self._original_max_age / 1000

    @property
    def original_max_age_ms(self) -> int | float | None:
        return self._original_max_age

    def settings(self) -> tuple[Any, ...]:
        """Everything a handler can change but the sliding expiry: what a store must keep in step."""
        return (
            self._original_max_age,
            self._expires is None,
            self.path,
            self.domain,
            self.http_only,
            self.secure,
            self.same_site,
            self.partitioned,
            self.priority,
        )

    @property
    def expires_ms(self) -> int | None:
        """`expires` in epoch milliseconds, the unit stores use."""
        if self._expires is None:
            return None
        since = self._expires - _EPOCH
        return since.days * 86_400_000 + since.seconds * 1000 + since.microseconds // 1000

    def reset_max_age(self) -> None:
        """Slide the expiry: expires = now + original_max_age (express's touch)."""
        if self._original_max_age is not None:
            self._expires = datetime.now(UTC) + timedelta(milliseconds=self._original_max_age)

    @staticmethod
    def _remaining(moment: datetime) -> float:
        return (moment - datetime.now(UTC)).total_seconds()

    def header(self, name: str, value: str) -> str:
        """The Set-Cookie value, attributes in express order; never a Max-Age attribute."""
        parts = [f"{name}={value}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.path:
            parts.append(f"Path={self.path}")
        if self._expires is not None:
            parts.append(f"Expires={format_datetime(self._expires.astimezone(UTC), usegmt=True)}")
        if self.http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        if self.partitioned:
            parts.append("Partitioned")
        if self.priority:
            parts.append(f"Priority={_PRIORITY[self.priority.lower()]}")
        same_site = _SAME_SITE.get(self.same_site) if self.same_site is not False else None
        if same_site:
            parts.append(f"SameSite={same_site}")
        return "; ".join(parts)

    def clear_header(self, name: str) -> str:
        """A Set-Cookie that removes the cookie: same attributes, empty value, expired."""
        expires, self._expires = self._expires, _EPOCH
        try:
            return self.header(name, "")
        finally:
            self._expires = expires
