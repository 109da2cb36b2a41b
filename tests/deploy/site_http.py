"""A tiny cookie-keeping HTTP/1.1 client for driving the demo site through nginx in tests."""

from __future__ import annotations

import http.client
import re
import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie

_VISITS = re.compile(r'id="visits"[^>]*>\s*(\d+)\s*<')


@dataclass
class Reply:
    """One HTTP response: status, lower-case headers, every Set-Cookie, decoded body."""

    status: int
    headers: dict[str, str]
    set_cookies: list[str]
    body: str

    @property
    def visits(self) -> int:
        """The visit counter the page shows in id="visits"."""
        match = _VISITS.search(self.body)
        if match is None:
            raise AssertionError(f"no visit counter in a {self.status} page:\n{self.body[:500]}")
        return int(match.group(1))

    @property
    def served_by(self) -> str:
        """The worker that answered (X-Served-By: host:pid)."""
        return self.headers["x-served-by"]

    @property
    def served_by_pid(self) -> int:
        """The PID part of X-Served-By."""
        return int(self.served_by.rsplit(":", 1)[1])


class _FormParser(HTMLParser):
    """Collects each form's action and its named inputs' values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((found.get("action", ""), {}))
        elif tag in ("input", "button", "textarea") and self.forms and found.get("name"):
            self.forms[-1][1][found["name"]] = found.get("value", "")


def form_fields(html: str, action: str) -> dict[str, str]:
    """The named fields (with their pre-filled values, e.g. csrf_token) of the form posting to
    action."""
    parser = _FormParser()
    parser.feed(html)
    for form_action, fields in parser.forms:
        if urllib.parse.urlsplit(form_action).path.rstrip("/") == action.rstrip("/"):
            return fields
    raise AssertionError(f"no form posting to {action} in:\n{html[:800]}")


@dataclass
class Browser:
    """Keeps cookies like a browser would (by name, for one host) across requests.

    `source` is the loopback address it connects from (127.0.0.0/8 is all this machine's), so
    one test can play visitors with different addresses.
    """

    base_url: str
    cookies: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    source: str | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send one request on a fresh connection and absorb its Set-Cookie headers."""
        url = urllib.parse.urlsplit(self.base_url)
        connection = http.client.HTTPConnection(
            url.hostname or "127.0.0.1", url.port, timeout=self.timeout,
            source_address=(self.source, 0) if self.source else None,
        )  # fmt: skip
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            raw = response.read()
            reply = Reply(
                status=response.status,
                headers={name.lower(): value for name, value in response.getheaders()},
                set_cookies=response.headers.get_all("Set-Cookie") or [],
                body=raw.decode("utf-8", errors="replace"),
            )
        finally:
            connection.close()
        for header in reply.set_cookies:
            self._absorb(header)
        return reply

    def _absorb(self, header: str) -> None:
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            expired = morsel["max-age"] in ("0", "-1") or "1970" in morsel["expires"]
            if expired or morsel.value == "":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value

    def get(self, path: str = "/", headers: dict[str, str] | None = None) -> Reply:
        """GET path."""
        return self.request("GET", path, headers=headers)

    def post_form(self, path: str, fields: dict[str, str]) -> Reply:
        """POST an urlencoded form."""
        body = urllib.parse.urlencode(fields).encode()
        return self.request(
            "POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"}
        )

    def submit(self, page: str, action: str, values: dict[str, str]) -> Reply:
        """Load page, fill the form that posts to action with values, and submit it."""
        shown = self.get(page)
        assert shown.status == 200, f"GET {page} gave {shown.status}"
        fields = form_fields(shown.body, action)
        fields.update(values)
        return self.post_form(action, fields)


def sign_up_and_in(browser: Browser, username: str, password: str) -> Reply:
    """Register an account and sign in with it through the site's own forms."""
    registered = browser.submit(
        "/register", "/register", {"username": username, "password": password, "confirm": password}
    )
    assert registered.status in (302, 303), f"register gave {registered.status}:\n{registered.body}"
    signed_in = browser.submit("/login", "/login", {"username": username, "password": password})
    assert signed_in.status in (302, 303), f"login gave {signed_in.status}:\n{signed_in.body}"
    return signed_in


def cookie_attributes(set_cookie: str) -> set[str]:
    """The lower-case attribute names of one Set-Cookie header, e.g. {"path", "httponly"}."""
    return {part.split("=", 1)[0].strip().lower() for part in set_cookie.split(";")[1:]}
