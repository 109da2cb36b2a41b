"""docker-compose.yml: two Redis roles, 3+ app replicas, nginx on 8080, all health-checked,
and the same rules as the local cluster (python -m deploy.cluster). docker-compose.postgres.yml:
the same nginx and app replicas on one PostgreSQL instead."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.cluster import ROOT, SESSION_EVICTION
from deploy.nginx import TEMPLATE, UPSTREAM_PARAMETERS

COMPOSE = ROOT / "docker-compose.yml"
POSTGRES_COMPOSE = ROOT / "docker-compose.postgres.yml"
#: Both files: the checks of the topology (nginx, replicas, networks, secrets) hold for each.
COMPOSE_FILES = pytest.mark.parametrize(
    "compose", [COMPOSE, POSTGRES_COMPOSE], ids=["redis", "postgres"]
)
#: What each file sets to say where sessions and accounts live; nothing else may differ.
STORE_SETTINGS = {
    COMPOSE: {"REDIS_URL", "AUTH_REDIS_URL"},
    POSTGRES_COMPOSE: {"DATABASE_URL", "PGPASSWORD"},
}


def services(compose: Path = COMPOSE) -> dict[str, Any]:
    return dict(yaml.safe_load(compose.read_text())["services"])


def stores(all_services: dict[str, Any]) -> dict[str, Any]:
    """The services that hold data: neither built from the repository nor nginx."""
    return {name: s for name, s in all_services.items() if "build" not in s and name != "nginx"}


def app_services(all_services: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in all_services.items() if "build" in s}


def command_line(service: dict[str, Any]) -> str:
    command = service["command"]
    return " ".join(command) if isinstance(command, list) else str(command)


def default_of(value: str) -> str:
    """The default of a compose interpolation: "${X:-d}" -> "d"; a plain value as it is."""
    if value.startswith("${") and ":-" in value:
        return value.split(":-", 1)[1].rstrip("}")
    return value


def test_sessions_and_accounts_live_on_separate_redis_servers_on_disk() -> None:
    all_services = services()
    sessions, accounts = all_services["session-redis"], all_services["auth-redis"]
    for redis in (sessions, accounts):
        assert "--appendonly yes" in command_line(redis)
        assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert sessions["volumes"] != accounts["volumes"]
    # Sessions: bounded, evicting only keys with a TTL (every session has one).
    assert "--maxmemory ${SESSION_REDIS_MAXMEMORY:-256mb}" in command_line(sessions)
    assert f"--maxmemory-policy {SESSION_EVICTION}" in command_line(sessions)
    assert SESSION_EVICTION.startswith("volatile-")
    # Accounts: never evicted, every write fsynced.
    assert "--maxmemory-policy noeviction" in command_line(accounts)
    assert "--appendfsync always" in command_line(accounts)
    for app in app_services(all_services).values():
        environment = app["environment"]
        assert default_of(environment["REDIS_URL"]) == "redis://session-redis:6379/0"
        assert default_of(environment["AUTH_REDIS_URL"]) == "redis://auth-redis:6379/0"
        for redis in ("session-redis", "auth-redis"):
            assert app["depends_on"][redis]["condition"] == "service_healthy"


@COMPOSE_FILES
def test_at_least_three_app_replicas_built_from_the_repository_share_a_secret(
    compose: Path,
) -> None:
    apps = app_services(services(compose))
    replicas = sum(int(s.get("deploy", {}).get("replicas", 1)) for s in apps.values())
    assert replicas >= 3
    for app in apps.values():
        build = app["build"] if isinstance(app["build"], str) else app["build"]["context"]
        assert (ROOT / build / "Dockerfile").is_file()
        # The secret comes from the environment / .env, never from the repository.
        assert app["environment"]["SECRET_KEY"].startswith("${SECRET_KEY")
    assert "SECRET_KEY=\n" in (ROOT / ".env.example").read_text()


@COMPOSE_FILES
def test_the_apps_trust_forwarded_headers_from_nginxs_fixed_address_only(compose: Path) -> None:
    all_services = services(compose)
    nginx = all_services["nginx"]
    [(network, settings)] = nginx["networks"].items()
    address = settings["ipv4_address"]
    subnet = yaml.safe_load(compose.read_text())["networks"][network]["ipam"]["config"][0]
    assert default_of(address) == "172.30.89.10"
    assert default_of(subnet["subnet"]) == "172.30.89.0/24"
    for app in app_services(all_services).values():
        assert app["environment"]["TRUSTED_PROXIES"] == address
        assert network in app["networks"]
        assert "ports" not in app, "an app replica is reachable only through nginx"
    # nginx never reaches a store (Redis, PostgreSQL); the apps do.
    assert stores(all_services)
    for name, store in stores(all_services).items():
        assert not set(store["networks"]) & set(nginx["networks"]), name
        for app in app_services(all_services).values():
            assert set(store["networks"]) & set(app["networks"]), name
    example = (ROOT / ".env.example").read_text()
    assert f"NGINX_PROXY_ADDRESS={default_of(address)}\n" in example
    assert f"PROXY_SUBNET={default_of(subnet['subnet'])}\n" in example


@COMPOSE_FILES
def test_nginx_and_the_apps_answer_to_the_same_host_names(compose: Path) -> None:
    all_services = services(compose)
    names = all_services["nginx"]["environment"]["NGINX_SERVER_NAMES"]
    assert names.split()[:2] == ["localhost", "127.0.0.1"] and "${SITE_HOSTS:-}" in names
    for app in app_services(all_services).values():
        assert app["environment"]["TRUSTED_HOSTS"] == names


@COMPOSE_FILES
def test_nginx_sidelines_a_failed_replica_as_the_local_cluster_does(compose: Path) -> None:
    upstream = services(compose)["nginx"]["environment"]["NGINX_UPSTREAM_SERVERS"]
    assert upstream == f"server app:8000 {UPSTREAM_PARAMETERS};"


def test_the_image_serves_the_proxy_aware_entry_with_several_workers() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "deploy.asgi:app" in dockerfile
    assert "--workers" in dockerfile
    assert "USER " in dockerfile, "the server does not run as root"


@COMPOSE_FILES
def test_nginx_listens_on_8080_with_the_shared_template(compose: Path) -> None:
    nginx = services(compose)["nginx"]
    published_target = [str(port).rsplit(":", 1) for port in nginx["ports"]]
    # Host port 8080 unless NGINX_PORT says otherwise (${NGINX_PORT:-8080}).
    assert any(target == "8080" and published.rstrip("}").endswith("8080")
               for published, target in published_target), nginx["ports"]  # fmt: skip
    mounts = [volume.split(":") for volume in nginx["volumes"]]
    assert [(ROOT / source).resolve() for source, *_ in mounts] == [TEMPLATE.resolve()]
    assert mounts[0][1] == "/etc/nginx/templates/nginx.conf.template"
    assert nginx["environment"]["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"
    assert all(s["condition"] == "service_healthy" for s in nginx["depends_on"].values())


@COMPOSE_FILES
def test_every_service_has_a_health_check(compose: Path) -> None:
    for name, service in services(compose).items():
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"
        assert not check.get("disable", False)


def compose_commands() -> list[list[str]]:
    """Every compose CLI on this machine: the Docker plugin and/or the standalone one."""
    commands = []
    if shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    ).returncode == 0:  # fmt: skip
        commands.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        commands.append(["docker-compose"])
    return commands


#: The secrets every file needs from .env, and placeholders to validate it with.
SECRETS = {
    COMPOSE: {"SECRET_KEY": "not-a-real-secret-only-for-config-validation"},
    POSTGRES_COMPOSE: {
        "SECRET_KEY": "not-a-real-secret-only-for-config-validation",
        "POSTGRES_PASSWORD": "not-a-real-password-only-for-config-validation",
    },
}


def compose_config(command: list[str], compose: Path, env: dict[str, str],
                   env_file: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`<compose> [--env-file F] -f <compose> config`: the file as compose resolves it."""
    options = ["--env-file", str(env_file)] if env_file else []
    return subprocess.run([*command, *options, "-f", str(compose), "config"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


@COMPOSE_FILES
def test_docker_compose_accepts_the_file(compose: Path) -> None:
    # Docker itself does not run on our machines; the compose CLI validates offline.
    commands = compose_commands()
    assert commands, "no compose CLI: scripts/setup --test installs docker-compose"
    env = {**os.environ, **SECRETS[compose]}
    for command in commands:
        done = compose_config(command, compose, env)
        assert done.returncode == 0, done.stderr
        # The example settings are valid too.
        done = compose_config(command, compose, env, ROOT / ".env.example")
        assert done.returncode == 0, done.stderr


@COMPOSE_FILES
def test_docker_compose_refuses_to_start_without_each_secret(compose: Path, tmp_path: Path) -> None:
    # The check above would pass a tool that accepts anything; this one needs the real rule.
    no_settings = tmp_path / "empty.env"  # not a developer's own .env in the checkout
    no_settings.write_text("")
    commands = compose_commands()
    assert commands, "no compose CLI: scripts/setup --test installs docker-compose"
    for missing in SECRETS[compose]:
        env = {k: v for k, v in os.environ.items() if k not in SECRETS[compose]}
        env.update({k: v for k, v in SECRETS[compose].items() if k != missing})
        for command in commands:
            done = compose_config(command, compose, env, no_settings)
            assert done.returncode != 0, f"{compose.name} started without {missing}"
            assert f"set {missing} in .env" in done.stderr, done.stderr


def test_the_postgres_variant_keeps_everything_in_one_database_on_disk() -> None:
    all_services = services(POSTGRES_COMPOSE)
    assert set(stores(all_services)) == {"postgres"}, "no Redis in the PostgreSQL variant"
    postgres = all_services["postgres"]
    assert str(postgres["image"]).startswith("postgres:")
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    user, database = (
        postgres["environment"]["POSTGRES_USER"],
        postgres["environment"]["POSTGRES_DB"],
    )
    for app in app_services(all_services).values():
        environment = app["environment"]
        url = default_of(environment["DATABASE_URL"])
        # The password travels as PGPASSWORD (asyncpg reads it), never in the URL.
        assert url == f"postgresql://{user}@postgres:5432/{database}"
        assert environment["PGPASSWORD"] == postgres["environment"]["POSTGRES_PASSWORD"]
        assert not {"REDIS_URL", "AUTH_REDIS_URL"} & set(environment)
        assert app["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    example = (ROOT / ".env.example").read_text()
    assert "POSTGRES_PASSWORD=\n" in example
    assert f"DATABASE_URL={url}\n" in example


def test_the_postgres_variant_has_the_same_nginx_and_app_replicas() -> None:
    """Everything but where the data lives is docker-compose.yml's, to the letter."""

    def topology(compose: Path) -> dict[str, Any]:
        document = yaml.safe_load(compose.read_text())
        found = {name: dict(s) for name, s in document["services"].items() if name not in
                 stores(document["services"])}  # fmt: skip
        for app in app_services(found).values():
            app["environment"] = {k: v for k, v in app["environment"].items()
                                  if k not in STORE_SETTINGS[compose]}  # fmt: skip
            del app["depends_on"]
        return {"services": found, "networks": document["networks"]}

    assert topology(POSTGRES_COMPOSE) == topology(COMPOSE)
