"""The resolved options and the questions a request asks of them: in scope? secure? which id?"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from quart import Quart

from sessions.extension import default_genid
from sessions.policy import Policy
from sessions.signing import encode_cookie_value

SECRETS = (b"new", b"old")


def policy(**changes: Any) -> Policy:
    options: dict[str, Any] = {
        "name": "connect.sid", "secrets": SECRETS, "cookie": {"path": "/"}, "resave": False,
        "rolling": False, "save_uninitialized": False, "unset": "keep", "proxy": None,
        "genid": default_genid, "max_size": 65536, "permanent_lifetime": timedelta(days=31),
        "retry_after": 5,
    }  # fmt: skip
    return Policy(**{**options, **changes})


async def ask(question: Any, path: str = "/", root_path: str = "", **request: Any) -> Any:
    app = Quart(__name__)
    async with app.test_request_context(path, root_path=root_path, **request) as context:
        return question(context.request)


@pytest.mark.parametrize(
    ("cookie_path", "path", "root_path", "inside"),
    [
        ("/", "/anything", "", True),
        ("/app", "/app", "", True),
        ("/app", "/app/x", "", True),
        ("/app", "/application", "", False),  # ours: segments, not express's plain prefix
        ("/foo/bar", "/foo/bar", "/foo", True),  # a mounted app: the full path counts
        ("/foo/bar", "/foo/foo/bar", "/foo", False),
    ],
)
async def test_the_cookie_path_is_matched_on_the_full_path_by_segments(
    cookie_path: str, path: str, root_path: str, inside: bool
) -> None:
    assert await ask(lambda r: Policy.in_scope(r, {"path": cookie_path}), path, root_path) is inside


@pytest.mark.parametrize(
    ("proxy", "scheme", "headers", "secure"),
    [
        (True, "http", {"X-Forwarded-Proto": "https"}, True),
        (True, "http", {"X-Forwarded-Proto": " HTTPS , http"}, True),
        (True, "http", {"X-Forwarded-Proto": "http,https"}, False),
        (True, "https", {}, False),  # express: with proxy true, only the header decides
        (None, "https", {}, True),
        (None, "http", {"X-Forwarded-Proto": "https"}, False),
        (False, "https", {}, True),
        (False, "https", {"X-Forwarded-Proto": "https"}, False),  # derived by a middleware
    ],
)
async def test_who_decides_that_a_request_is_secure(
    proxy: bool | None, scheme: str, headers: dict[str, str], secure: bool
) -> None:
    assert await ask(policy(proxy=proxy).is_secure, scheme=scheme, headers=headers) is secure


async def test_the_cookie_id_is_verified_and_the_secret_that_verified_it_is_known() -> None:
    current = encode_cookie_value("abc", b"new")
    rotated = encode_cookie_value("abc", b"old")
    stranger = encode_cookie_value("abc", b"other")
    read = policy().read_cookie
    assert await ask(read, headers={"Cookie": f"connect.sid={current}"}) == ("abc", 0)
    assert await ask(read, headers={"Cookie": f"connect.sid={rotated}"}) == ("abc", 1)
    assert await ask(read, headers={"Cookie": f"connect.sid={stranger}"}) is None
    assert await ask(read) is None


async def test_cookies_split_over_several_headers_are_one_list() -> None:
    """HTTP/2 clients may send one Cookie header per cookie."""
    value = encode_cookie_value("abc", b"new")
    app = Quart(__name__)
    async with app.test_request_context("/") as context:
        context.request.headers.add("Cookie", "theme=dark")
        context.request.headers.add("Cookie", f"connect.sid={value}")
        assert policy().read_cookie(context.request) == ("abc", 0)


def test_the_rules_follow_the_options() -> None:
    rules = policy(resave=True, rolling=True, save_uninitialized=True, unset="destroy").rules
    assert (rules.resave, rules.rolling, rules.save_uninitialized, rules.unset_destroys) == (
        True,
    ) * 4
