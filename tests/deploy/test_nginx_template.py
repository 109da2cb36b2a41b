"""The one nginx template: complete, valid for the system nginx, and filled the same way twice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from deploy.cluster import ROOT
from deploy.nginx import TEMPLATE, Nginx, local_values, render

PLACEHOLDERS = set(re.findall(r"\$\{(NGINX_[A-Z0-9_]+)\}", TEMPLATE.read_text()))


def compose_nginx_environment() -> dict[str, str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {k: str(v) for k, v in compose["services"]["nginx"]["environment"].items()}


def directives(text: str) -> str:
    """The template without its comments."""
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def location(text: str, name: str) -> str:
    """The body of one ``location`` block (no nested blocks in ours but ``if``)."""
    start = text.index(f"location {name} {{")
    return text[start : text.index("\n        }", start)]


def seconds(block: str, directive: str) -> float:
    match = re.search(rf"^\s*{directive} (\d+)s;", block, re.MULTILINE)
    assert match, f"no {directive} in {block}"
    return float(match.group(1))


def test_the_template_forwards_client_scheme_and_host_and_retries_only_safe_requests() -> None:
    text = directives(TEMPLATE.read_text())
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in text
    assert "proxy_set_header Host $host;" in text
    assert "proxy_next_upstream error timeout http_502;" in text  # a 503 is the shared store
    assert "non_idempotent" not in text


def test_the_retry_budget_covers_a_read_timeout_and_writes_wait_for_argon2() -> None:
    text = directives(TEMPLATE.read_text())
    connect = seconds(text, "proxy_connect_timeout")
    reads, writes = location(text, "/"), location(text, "@write")
    assert "return 418;" in reads and "error_page 418 = @write;" in reads
    assert "GET|HEAD|OPTIONS" in reads
    # A hung worker's read timeout, then a whole second attempt, fit in the retry budget.
    read = seconds(reads, "proxy_read_timeout")
    assert read <= 3, "a hung worker costs one request at most a few seconds"
    assert seconds(reads, "proxy_next_upstream_timeout") >= 2 * (connect + read)
    # The app's own store timeout (2 s, then a 503) ends before nginx gives up on a read.
    assert read > 2
    assert seconds(writes, "proxy_read_timeout") >= 10


def test_a_placeholder_without_a_value_is_an_error_not_a_blank() -> None:
    with pytest.raises(KeyError, match="NGINX_LISTEN"):
        render("listen ${NGINX_LISTEN};", {})
    assert render("listen ${NGINX_LISTEN}; $host", {"NGINX_LISTEN": "80"}) == "listen 80; $host"


def test_the_local_rendering_is_accepted_by_the_system_nginx(tmp_path: Path) -> None:
    nginx = Nginx(tmp_path / "nginx", 8080, [8001, 8002, 8003])
    config = nginx.write_config().read_text()
    directives = "\n".join(
        line for line in config.splitlines() if not line.lstrip().startswith("#")
    )
    nginx.check()  # nginx -t, with every path inside tmp_path
    assert "${" not in config
    assert config.count("server 127.0.0.1:800") == 3
    assert str(tmp_path) in directives
    assert (
        "/var/log" not in directives and "/var/lib" not in directives and "/etc" not in directives
    )


def test_unlimited_addresses_are_rendered_for_nginx_and_typos_are_refused(tmp_path: Path) -> None:
    nginx = Nginx(tmp_path / "nginx", 8080, [8001], unlimited_addresses=["127.0.0.1", "10.0.0.0/8"])
    config = nginx.write_config().read_text()
    assert "127.0.0.1/32 1;" in config and "10.0.0.0/8 1;" in config
    nginx.check()
    with pytest.raises(ValueError, match="10.0.0.300"):
        local_values(tmp_path, 8080, [8001], unlimited_addresses=["10.0.0.300"])


def test_compose_and_the_local_command_fill_in_the_same_placeholders(tmp_path: Path) -> None:
    assert set(local_values(tmp_path, 8080, [8001])) == PLACEHOLDERS
    compose = compose_nginx_environment()
    assert set(compose) >= PLACEHOLDERS
    rendered = render(TEMPLATE.read_text(), compose)
    assert "server app:8000" in rendered and re.search(r"listen 8080[ ;]", rendered)
