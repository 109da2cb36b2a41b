"""Unit tests of sessions/cookie.py: express's Cookie (JSON form, max_age/expires, Set-Cookie)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sessions.cookie import Cookie, normalize_cookie_options

EXPRESS_JSON = {
    "originalMaxAge": 60000,
    "partitioned": True,
    "priority": "high",
    "expires": "2030-01-01T12:00:00.123Z",
    "secure": True,
    "httpOnly": False,
    "domain": "example.com",
    "path": "/app",
    "sameSite": "strict",
}


def full_cookie() -> Cookie:
    cookie = Cookie.from_options(
        {
            "same_site": "strict",
            "path": "/app",
            "domain": "example.com",
            "http_only": False,
            "secure": True,
            "priority": "high",
            "partitioned": True,
            "max_age": 60,
        },
        secure_request=True,
    )
    return cookie


def close_to(actual: float | None, expected: float, within: float = 0.5) -> bool:
    return actual is not None and expected - within <= actual <= expected


# ---------------------------------------------------------------- JSON form


def test_default_cookie_json_is_express_default() -> None:
    """A default cookie serializes as express's {originalMaxAge, expires, httpOnly, path}."""
    assert Cookie().to_json() == {
        "originalMaxAge": None,
        "expires": None,
        "httpOnly": True,
        "path": "/",
    }
    assert list(Cookie().to_json()) == ["originalMaxAge", "expires", "httpOnly", "path"]


def test_json_keys_come_in_express_order() -> None:
    """Every attribute set: keys in express's order, unset ones left out."""
    assert list(full_cookie().to_json()) == list(EXPRESS_JSON)


def test_express_json_round_trips_exactly() -> None:
    """A record written by express loads and serializes back unchanged (originalMaxAge not re-derived)."""
    cookie = Cookie.from_json(EXPRESS_JSON)
    assert cookie.to_json() == EXPRESS_JSON
    assert list(cookie.to_json()) == list(EXPRESS_JSON)
    assert cookie.expires == datetime(2030, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert cookie.original_max_age == 60
    assert cookie.original_max_age_ms == 60000


def test_our_json_round_trips_through_from_json() -> None:
    """to_json then from_json gives the same cookie back."""
    cookie = full_cookie()
    again = Cookie.from_json(cookie.to_json())
    assert again.to_json() == cookie.to_json()
    assert again.header("n", "v") == cookie.header("n", "v")


def test_expires_is_iso_with_milliseconds_and_z() -> None:
    """expires is written as JSON.stringify writes a Date: UTC, milliseconds, trailing Z."""
    cookie = Cookie()
    cookie.expires = datetime(2031, 5, 6, 9, 8, 7, 654321, tzinfo=timezone(timedelta(hours=2)))
    assert cookie.to_json()["expires"] == "2031-05-06T07:08:07.654Z"


def test_original_max_age_is_kept_verbatim_even_when_it_disagrees_with_expires() -> None:
    """A loaded originalMaxAge is restored as stored, not recomputed from expires."""
    expires = (datetime.now(UTC) + timedelta(seconds=10)).isoformat()
    cookie = Cookie.from_json({"originalMaxAge": 2000, "expires": expires})
    assert cookie.original_max_age_ms == 2000
    assert close_to(cookie.max_age, 10)


def test_from_json_fills_missing_fields_with_defaults() -> None:
    """A minimal stored cookie gets path '/', HttpOnly and no expiry."""
    cookie = Cookie.from_json({})
    assert (cookie.path, cookie.http_only, cookie.expires, cookie.max_age) == (
        "/",
        True,
        None,
        None,
    )
    assert cookie.header("sid", "v") == "sid=v; Path=/; HttpOnly"


def test_from_json_reads_same_site_case_insensitively() -> None:
    """A stored sameSite 'Lax' is the same as 'lax'."""
    assert Cookie.from_json({"sameSite": "Lax"}).header("sid", "v").endswith("; SameSite=Lax")


# ---------------------------------------------------------------- max_age, expires, original_max_age


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (60, 60000),
        (1.5, 1500),
        (timedelta(minutes=2), 120000),
        (timedelta(milliseconds=1005), 1005),
        (timedelta(days=30), 2_592_000_000),
    ],
)
def test_max_age_in_seconds_or_timedelta_sets_original_max_age_in_ms(value: Any, ms: int) -> None:
    """max_age takes seconds or a timedelta; originalMaxAge is the exact number of milliseconds."""
    cookie = Cookie()
    before = datetime.now(UTC)
    cookie.max_age = value
    after = datetime.now(UTC)
    assert cookie.original_max_age_ms == ms
    assert cookie.to_json()["originalMaxAge"] == ms
    assert cookie.original_max_age == ms / 1000
    assert cookie.expires is not None
    assert (
        before + timedelta(milliseconds=ms) <= cookie.expires <= after + timedelta(milliseconds=ms)
    )


def test_max_age_reads_as_the_remaining_seconds() -> None:
    """Reading max_age gives the time left, which shrinks; original_max_age does not."""
    cookie = Cookie.from_json(
        {
            "originalMaxAge": 60000,
            "expires": (datetime.now(UTC) + timedelta(seconds=30)).isoformat(),
        }
    )
    assert close_to(cookie.max_age, 30)
    assert cookie.original_max_age == 60


def test_max_age_none_makes_a_browser_session_cookie() -> None:
    """max_age None clears expires and originalMaxAge."""
    cookie = Cookie()
    cookie.max_age = 60
    cookie.max_age = None
    assert (cookie.expires, cookie.max_age, cookie.original_max_age) == (None, None, None)
    assert "Expires" not in cookie.header("sid", "v")


@pytest.mark.parametrize("value", ["60", True, [60], object()])
def test_max_age_of_another_type_is_a_type_error(value: Any) -> None:
    """Only numbers (not bools) and timedeltas are max ages."""
    cookie = Cookie()
    with pytest.raises(TypeError):
        cookie.max_age = value


def test_setting_expires_sets_original_max_age_to_the_time_left() -> None:
    """expires = now + 30 s makes originalMaxAge about 30000 ms."""
    cookie = Cookie()
    moment = datetime.now(UTC) + timedelta(seconds=30)
    cookie.expires = moment
    assert cookie.expires == moment
    assert cookie.original_max_age_ms is not None
    assert 29_500 <= cookie.original_max_age_ms <= 30_000
    cookie.expires = None
    assert (cookie.original_max_age, cookie.max_age) == (None, None)


def test_expires_in_the_past_gives_a_negative_max_age() -> None:
    """An expiry that has passed reads as negative time left (the store then deletes the record)."""
    cookie = Cookie()
    cookie.expires = datetime(1970, 1, 1, tzinfo=UTC)
    assert cookie.max_age is not None and cookie.max_age < 0
    assert "; Expires=Thu, 01 Jan 1970 00:00:00 GMT" in cookie.header("sid", "v")


def test_reset_max_age_slides_expires_back_to_the_original_max_age() -> None:
    """reset_max_age (express's touch) sets expires to now + originalMaxAge."""
    cookie = Cookie.from_json(
        {
            "originalMaxAge": 60000,
            "expires": (datetime.now(UTC) + timedelta(seconds=5)).isoformat(),
        }
    )
    cookie.reset_max_age()
    assert close_to(cookie.max_age, 60)
    assert cookie.original_max_age_ms == 60000


def test_reset_max_age_leaves_a_browser_session_cookie_alone() -> None:
    """Without originalMaxAge there is nothing to slide."""
    cookie = Cookie()
    cookie.reset_max_age()
    assert cookie.expires is None


@pytest.mark.parametrize(
    ("options", "winner"),
    [
        ({"max_age": 60, "expires": "fixed"}, "expires"),
        ({"expires": "fixed", "max_age": 60}, "max_age"),
    ],
)
def test_later_of_max_age_and_expires_wins(options: dict[str, Any], winner: str) -> None:
    """Options are applied in order, so whichever of max_age and expires comes last decides."""
    fixed = datetime.now(UTC) + timedelta(hours=5)
    given = {key: fixed if value == "fixed" else value for key, value in options.items()}
    cookie = Cookie.from_options(given, secure_request=False)
    if winner == "expires":
        assert cookie.expires == fixed
        assert close_to(cookie.max_age, 5 * 3600)
    else:
        assert close_to(cookie.max_age, 60)
        assert cookie.original_max_age_ms == 60000


# ---------------------------------------------------------------- from_options: 'auto'


@pytest.mark.parametrize(
    ("secure_request", "secure", "same_site"), [(True, True, "none"), (False, False, "lax")]
)
def test_auto_values_resolve_against_the_request(
    secure_request: bool, secure: bool, same_site: str
) -> None:
    """secure 'auto' is whether the request is secure; same_site 'auto' is None on HTTPS, Lax otherwise."""
    cookie = Cookie.from_options(
        {"secure": "auto", "same_site": "auto"}, secure_request=secure_request
    )
    assert (cookie.secure, cookie.same_site) == (secure, same_site)
    assert cookie.to_json()["secure"] is secure
    assert cookie.to_json()["sameSite"] == same_site


def test_explicit_secure_is_not_changed_by_the_request() -> None:
    """secure True stays True on an HTTP request (the engine then withholds the cookie)."""
    cookie = Cookie.from_options({"secure": True, "same_site": "lax"}, secure_request=False)
    assert cookie.secure is True
    assert cookie.same_site == "lax"


# ---------------------------------------------------------------- Set-Cookie header


def test_header_puts_attributes_in_express_order() -> None:
    """name=value; Domain; Path; Expires; HttpOnly; Secure; Partitioned; Priority; SameSite."""
    cookie = Cookie.from_json({**EXPRESS_JSON, "httpOnly": True})
    assert cookie.header("connect.sid", "VALUE") == (
        "connect.sid=VALUE; Domain=example.com; Path=/app; Expires=Tue, 01 Jan 2030 12:00:00 GMT; "
        "HttpOnly; Secure; Partitioned; Priority=High; SameSite=Strict"
    )


def test_default_header_is_path_and_http_only() -> None:
    """A default cookie's header is express's default: Path=/; HttpOnly."""
    assert Cookie().header("connect.sid", "v") == "connect.sid=v; Path=/; HttpOnly"


def test_header_never_has_max_age() -> None:
    """Even with max_age set, the header carries only Expires."""
    cookie = Cookie()
    cookie.max_age = 3600
    header = cookie.header("connect.sid", "v")
    assert "Max-Age" not in header
    assert header.count("Expires=") == 1


def test_header_expires_is_an_imf_fixdate_in_gmt() -> None:
    """Expires is written in GMT even when set from another time zone."""
    cookie = Cookie()
    cookie.expires = datetime(2030, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-5)))
    assert "; Expires=Mon, 04 Mar 2030 10:06:07 GMT;" in cookie.header("sid", "v")


@pytest.mark.parametrize(
    ("same_site", "attribute"),
    [
        (True, "; SameSite=Strict"),
        ("strict", "; SameSite=Strict"),
        ("lax", "; SameSite=Lax"),
        ("none", "; SameSite=None"),
        (False, None),
        (None, None),
    ],
)
def test_same_site_values(same_site: Any, attribute: str | None) -> None:
    """same_site True is Strict; strings map to their case; False and None leave it out."""
    cookie = Cookie.from_options({"same_site": same_site}, secure_request=False)
    header = cookie.header("sid", "v")
    if attribute is None:
        assert "SameSite" not in header
    else:
        assert header.endswith(attribute)


@pytest.mark.parametrize(
    ("priority", "written"), [("low", "Low"), ("Medium", "Medium"), ("HIGH", "High")]
)
def test_priority_is_written_capitalized(priority: str, written: str) -> None:
    """priority low/medium/high, in any case, is written Priority=Low|Medium|High."""
    cookie = Cookie.from_options(
        normalize_cookie_options({"priority": priority}), secure_request=False
    )
    assert cookie.header("sid", "v").endswith(f"; Priority={written}")


@pytest.mark.parametrize(
    ("flag", "attribute"), [("partitioned", "Partitioned"), ("secure", "Secure")]
)
def test_false_flags_are_left_out(flag: str, attribute: str) -> None:
    """partitioned and secure appear only when true."""
    off = Cookie.from_options({flag: False}, secure_request=True)
    on = Cookie.from_options({flag: True}, secure_request=True)
    assert attribute not in off.header("sid", "v").split("; ")
    assert attribute in on.header("sid", "v").split("; ")


def test_http_only_false_is_left_out() -> None:
    """http_only False drops the HttpOnly attribute."""
    cookie = Cookie.from_options({"http_only": False}, secure_request=False)
    assert cookie.header("sid", "v") == "sid=v; Path=/"


def test_clear_header_expires_the_cookie_with_the_same_attributes() -> None:
    """clear_header: empty value, Expires at the epoch, every other attribute as the cookie has it."""
    cookie = full_cookie()
    expires = cookie.expires
    assert cookie.clear_header("connect.sid") == (
        "connect.sid=; Domain=example.com; Path=/app; Expires=Thu, 01 Jan 1970 00:00:00 GMT; "
        "Secure; Partitioned; Priority=High; SameSite=Strict"
    )
    assert cookie.expires == expires


def test_clear_header_of_a_browser_session_cookie_still_expires_it() -> None:
    """A cookie without expiry is cleared with an epoch Expires too, and keeps no expiry itself."""
    cookie = Cookie()
    assert (
        cookie.clear_header("sid")
        == "sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly"
    )
    assert cookie.expires is None


# ---------------------------------------------------------------- option validation


def test_valid_options_are_normalized_copies() -> None:
    """Valid options come back as a new dict, same_site lower-cased."""
    options = {"same_site": "LAX", "secure": "auto", "max_age": timedelta(hours=1), "path": "/"}
    normalized = normalize_cookie_options(options)
    assert normalized == {**options, "same_site": "lax"}
    assert normalized is not options
    assert options["same_site"] == "LAX"


def test_unknown_option_is_a_type_error() -> None:
    """A misspelt option fails at start-up, naming it."""
    with pytest.raises(TypeError, match="maxAge"):
        normalize_cookie_options({"maxAge": 60})


@pytest.mark.parametrize(
    "options",
    [
        {"same_site": "sometimes"},
        {"same_site": 2},
        {"secure": "yes"},
        {"secure": 1.5},
        {"priority": "urgent"},
        {"expires": datetime(2030, 1, 1)},
        {"expires": "2030-01-01T00:00:00Z"},
    ],
)
def test_invalid_option_values_are_value_errors(options: dict[str, Any]) -> None:
    """Invalid same_site, secure, priority or expires (naive, or not a datetime) are rejected."""
    with pytest.raises(ValueError):
        normalize_cookie_options(options)


@pytest.mark.parametrize("max_age", ["60", True, [1]])
def test_invalid_max_age_option_is_a_type_error(max_age: Any) -> None:
    """A max_age that is not seconds or a timedelta is rejected at start-up."""
    with pytest.raises(TypeError):
        normalize_cookie_options({"max_age": max_age})


@pytest.mark.parametrize(
    "options",
    [{"same_site": value} for value in (True, False, None, "lax", "Strict", "NONE", "auto")]
    + [{"secure": value} for value in (True, False, None, "auto")]
    + [{"max_age": None}, {"max_age": 0.5}, {"expires": datetime(2030, 1, 1, tzinfo=UTC)}],
)
def test_valid_option_values_are_accepted(options: dict[str, Any]) -> None:
    """Every documented value of same_site, secure, max_age and expires passes validation."""
    assert normalize_cookie_options(options).keys() == options.keys()
