"""The floor probe is a real session, however minimal: signed ids, writes only on change."""

from __future__ import annotations

from bench.apps.floor import COOKIE, app


async def test_a_new_visitor_gets_an_express_style_signed_cookie_and_counts_up() -> None:
    client = app.test_client()
    first = await client.get("/count")
    assert await first.get_data(as_text=True) == "views=1"
    cookie = first.headers["Set-Cookie"].split(";", 1)[0]
    assert cookie.startswith(f"{COOKIE}=s%3A")  # s:<id>.<sig>, percent-encoded like express
    again = await client.get("/count", headers={"Cookie": cookie})
    assert await again.get_data(as_text=True) == "views=2"
    assert "Set-Cookie" not in again.headers  # a returning visitor keeps the cookie it has


async def test_a_read_only_page_writes_nothing() -> None:
    client = app.test_client()
    cookie = (await client.get("/count")).headers["Set-Cookie"].split(";", 1)[0]
    interface = app.session_interface
    before = dict(interface.records)  # type: ignore[attr-defined]
    answer = await client.get("/read", headers={"Cookie": f"other=1; {cookie}"})
    assert await answer.get_data(as_text=True) == "views=1"
    assert interface.records == before  # type: ignore[attr-defined]
    assert "Set-Cookie" not in answer.headers


async def test_a_forged_or_hostile_cookie_gets_a_fresh_session() -> None:
    client = app.test_client()
    cookie = (await client.get("/count")).headers["Set-Cookie"].split(";", 1)[0]
    name, value = cookie.split("=", 1)
    sid = value.removeprefix("s%3A").rsplit(".", 1)[0]
    for hostile in (
        f"s%3A{sid}.{'A' * 43}",  # a signature that is not the id's
        f"s%3A{sid}.%AA%FF",  # percent-escapes that are not UTF-8
        f"s%3A{sid}.\u00e9t\u00e9",  # not ASCII at all
        sid,  # unsigned
        "%",
    ):
        answer = await client.get("/read", headers={"Cookie": f"{name}={hostile}"})
        assert answer.status_code == 200, hostile
        assert await answer.get_data(as_text=True) == "views=0", hostile
