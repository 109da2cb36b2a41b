"""docker-compose.yml: Redis with persistence, 3+ app replicas, nginx on 8080, all health-checked."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import yaml

from deploy.cluster import ROOT
from deploy.nginx import TEMPLATE

COMPOSE = ROOT / "docker-compose.yml"


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def app_services(all_services: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in all_services.items() if "build" in s}


def test_redis_keeps_sessions_on_disk_in_append_only_mode() -> None:
    redis = services()["redis"]
    command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert "--appendonly yes" in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_at_least_three_app_replicas_built_from_the_repository_share_redis_and_a_secret() -> None:
    apps = app_services(services())
    replicas = sum(int(s.get("deploy", {}).get("replicas", 1)) for s in apps.values())
    assert replicas >= 3
    for app in apps.values():
        build = app["build"] if isinstance(app["build"], str) else app["build"]["context"]
        assert (ROOT / build / "Dockerfile").is_file()
        environment = app["environment"]
        assert "redis" in environment["REDIS_URL"]
        # The secret comes from the environment / .env, never from the repository.
        assert environment["SECRET_KEY"].startswith("${SECRET_KEY")
        assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "SECRET_KEY=\n" in (ROOT / ".env.example").read_text()


def test_the_image_serves_the_proxy_aware_entry_with_several_workers() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "deploy.asgi:app" in dockerfile
    assert "--workers" in dockerfile
    assert "USER " in dockerfile, "the server does not run as root"


def test_nginx_listens_on_8080_with_the_shared_template() -> None:
    nginx = services()["nginx"]
    published_target = [str(port).rsplit(":", 1) for port in nginx["ports"]]
    # Host port 8080 unless NGINX_PORT says otherwise (${NGINX_PORT:-8080}).
    assert any(target == "8080" and published.rstrip("}").endswith("8080")
               for published, target in published_target), nginx["ports"]  # fmt: skip
    mounts = [volume.split(":") for volume in nginx["volumes"]]
    assert [(ROOT / source).resolve() for source, *_ in mounts] == [TEMPLATE.resolve()]
    assert mounts[0][1] == "/etc/nginx/templates/nginx.conf.template"
    assert nginx["environment"]["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"
    assert all(s["condition"] == "service_healthy" for s in nginx["depends_on"].values())


def test_every_service_has_a_health_check() -> None:
    for name, service in services().items():
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"
        assert not check.get("disable", False)


def test_docker_compose_accepts_the_file_where_the_tool_is_installed() -> None:
    # Docker itself does not run on our machines; the compose CLI validates offline. Where
    # neither `docker compose` nor `docker-compose` exists, the checks above are the validation.
    commands = []
    if shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    ).returncode == 0:  # fmt: skip
        commands.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        commands.append(["docker-compose"])
    env = dict(os.environ, SECRET_KEY="not-a-real-secret-only-for-config-validation")
    for command in commands:
        done = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
