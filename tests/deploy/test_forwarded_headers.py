"""Forwarded headers and Host: only the proxy may speak for the client, only our names are served."""

from __future__ import annotations

import http.client
import urllib.parse

from site_http import Browser, cookie_attributes, form_fields

from deploy.cluster import Cluster

OUTSIDER = "127.0.0.3"  # reaches a worker's port directly; not nginx's address (127.0.0.1)
PER_USER_LIMIT = 5  # AUTH_LOGIN_LIMIT: failed sign-ins per user and address in the window


def failed_sign_ins(browser: Browser, username: str, attempts: int) -> list[int]:
    """Wrong-password sign-ins, each claiming another address in X-Forwarded-For: statuses."""
    statuses = []
    page = browser.get("/login")
    for attempt in range(attempts):
        fields = form_fields(page.body, "/login")
        fields.update(username=username, password=f"wrong-password-{attempt}")
        page = browser.request(
            "POST", "/login", urllib.parse.urlencode(fields).encode(),
            {"Content-Type": "application/x-www-form-urlencoded",
             "X-Forwarded-For": f"203.0.113.{attempt + 1}"},
        )  # fmt: skip
        statuses.append(page.status)
    return statuses


def test_a_spoofed_x_forwarded_for_on_a_worker_port_buys_no_fresh_throttle_counter(
    cluster: Cluster, credentials: dict[str, str]
) -> None:
    direct = Browser(f"http://127.0.0.1:{cluster.workers[0].port}", source=OUTSIDER)
    statuses = failed_sign_ins(direct, credentials["username"], PER_USER_LIMIT + 1)
    # Every attempt counted against 127.0.0.3, whatever it claimed: the sixth is refused.
    assert statuses == [401] * PER_USER_LIMIT + [429], statuses


def test_a_spoofed_x_forwarded_for_through_nginx_buys_no_fresh_throttle_counter(
    cluster: Cluster, credentials: dict[str, str]
) -> None:
    # nginx appends the real address; the app takes that right-most value.
    through_nginx = Browser(cluster.url, source="127.0.0.4")
    statuses = failed_sign_ins(through_nginx, credentials["username"], PER_USER_LIMIT + 1)
    assert statuses == [401] * PER_USER_LIMIT + [429], statuses


def test_only_nginx_can_tell_a_worker_that_the_visitor_came_over_https(cluster: Cluster) -> None:
    claims = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    worker = f"http://127.0.0.1:{cluster.workers[0].port}"
    # From nginx's address (127.0.0.1) the claim holds: the cookie is Secure (secure="auto").
    from_proxy = Browser(worker).get("/", headers=claims)
    assert from_proxy.set_cookies
    assert all("secure" in cookie_attributes(c) for c in from_proxy.set_cookies)
    assert "strict-transport-security" in from_proxy.headers
    # From anyone else it is ignored.
    from_outsider = Browser(worker, source=OUTSIDER).get("/", headers=claims)
    assert from_outsider.status == 200 and from_outsider.set_cookies
    assert not any("secure" in cookie_attributes(c) for c in from_outsider.set_cookies)
    assert "strict-transport-security" not in from_outsider.headers


def raw_get(
    port: int, path: str, host: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    """GET path with exactly this Host header: (status, lower-case headers)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status, {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()


def test_a_host_the_site_does_not_answer_to_never_reaches_a_redirect(cluster: Cluster) -> None:
    # Werkzeug merges the slashes with a redirect to an absolute URL built from Host.
    status, headers = raw_get(cluster.port, "/static//style.css", "127.0.0.1")
    assert status == 308 and headers["location"] == "http://127.0.0.1/static/style.css"

    status, headers = raw_get(cluster.port, "/static//style.css", "evil.example")
    assert status == 421 and "location" not in headers, (status, headers)  # nginx
    # A worker refuses it too, whether the Host comes straight or through a trusted proxy.
    worker = cluster.workers[0].port
    status, headers = raw_get(worker, "/static//style.css", "evil.example")
    assert status == 400 and "location" not in headers, (status, headers)
    status, headers = raw_get(worker, "/static//style.css", "127.0.0.1",
                              {"X-Forwarded-Host": "evil.example"})  # fmt: skip
    assert status == 400 and "location" not in headers, (status, headers)


def test_a_name_given_to_the_cluster_is_served_by_nginx_and_the_app() -> None:
    with Cluster(workers=1, port=0, server_names=["shop.example"]) as cluster:
        status, headers = raw_get(cluster.port, "/static//style.css", "shop.example")
        assert status == 308 and headers["location"] == "http://shop.example/static/style.css"
        assert raw_get(cluster.port, "/healthz", "localhost")[0] == 200
        assert raw_get(cluster.port, "/healthz", "other.example")[0] == 421
