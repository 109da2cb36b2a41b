"""Render the shared nginx template and run the system nginx as a child in its own directory."""

from __future__ import annotations

import getpass
import ipaddress
import re
import resource
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from deploy.processes import find_binary, terminate, wait_for_port

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
_PLACEHOLDER = re.compile(r"\$\{(NGINX_[A-Z0-9_]+)\}")


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill every ``${NGINX_*}`` placeholder; a missing value is an error, never left blank.

    Example: ``render("listen ${NGINX_LISTEN};", {"NGINX_LISTEN": "8080"})`` -> ``"listen 8080;"``
    """
    missing = sorted({name for name in _PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise KeyError(f"no value for nginx template placeholder(s): {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


#: The parameters of every app server line, in compose as locally: one error or timeout (a
#: refused connection, a hung worker's 3 s read timeout) sidelines that server for 5 s, then
#: nginx tries it with one request again. A worker that stays hung costs one request a read
#: timeout every 8-9 s (5 s alone, the probe's 3 s), instead of every request routed to it; a
#: restarted worker is back in rotation at most 5 s after it answers (Cluster.start_worker
#: waits for that).
UPSTREAM_PARAMETERS = "max_fails=1 fail_timeout=5s"

#: The host names the site answers to, whatever else is configured: health checks and a local
#: browser use them. Any other Host header is refused by nginx (421) and by the app (400).
LOOPBACK_NAMES = ("localhost", "127.0.0.1")

#: Descriptors each nginx worker may hold: twice worker_connections (a proxied request holds
#: the client's and the app's). The container's nginx (root) can always raise its limit to this.
OPEN_FILES = 32768


def open_files_limit() -> int:
    """OPEN_FILES, or this process's hard limit if lower (an unprivileged nginx cannot exceed it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return OPEN_FILES if hard == resource.RLIM_INFINITY else min(OPEN_FILES, hard)


def upstream_servers(addresses: Iterable[str], parameters: str = UPSTREAM_PARAMETERS) -> str:
    """The ``server`` lines of the upstream block for host:port addresses.

    Example: ``upstream_servers(["127.0.0.1:8001"])`` ->
    ``"server 127.0.0.1:8001 max_fails=1 fail_timeout=5s;"``
    """
    return "\n        ".join(f"server {address} {parameters};" for address in addresses)


def unlimited_entries(addresses: Iterable[str]) -> str:
    """The ``geo`` lines that exempt addresses (or CIDR blocks) from the per-address limits.

    Example: ``unlimited_entries(["127.0.0.1"])`` -> ``"127.0.0.1/32 1;"``
    """
    # ip_network raises ValueError naming a mistyped address before nginx ever sees it.
    networks = [ipaddress.ip_network(address, strict=False) for address in addresses]
    return "\n        ".join(f"{network} 1;" for network in networks)


def local_values(
    run_dir: Path,
    port: int,
    app_ports: Iterable[int],
    server_names: Iterable[str] = LOOPBACK_NAMES,
    unlimited_addresses: Iterable[str] = (),
) -> dict[str, str]:
    """Template values for a local, unprivileged run: everything under run_dir, loopback only."""
    return {
        "NGINX_USER": getpass.getuser(),
        "NGINX_WORKER_PROCESSES": "auto",
        "NGINX_WORKER_RLIMIT_NOFILE": str(open_files_limit()),
        "NGINX_RUN_DIR": str(run_dir),
        "NGINX_ERROR_LOG": str(run_dir / "error.log"),
        "NGINX_ACCESS_LOG": str(run_dir / "access.log"),
        "NGINX_LISTEN": f"127.0.0.1:{port}",
        "NGINX_SERVER_NAMES": " ".join(server_names),
        "NGINX_UNLIMITED_ADDRESSES": unlimited_entries(unlimited_addresses),
        "NGINX_UPSTREAM_SERVERS": upstream_servers(f"127.0.0.1:{p}" for p in app_ports),
    }


class Nginx:
    """The system nginx, not daemonized, with a config rendered from the template into run_dir."""

    def __init__(
        self,
        run_dir: Path,
        port: int,
        app_ports: Iterable[int],
        *,
        server_names: Iterable[str] = LOOPBACK_NAMES,
        unlimited_addresses: Iterable[str] = (),
    ) -> None:
        self.binary = find_binary("nginx", "/usr/sbin/nginx")
        self.run_dir = run_dir
        self.port = port
        self.app_ports = list(app_ports)
        self.server_names = tuple(server_names)
        self.unlimited_addresses = tuple(unlimited_addresses)
        self.config_path = run_dir / "nginx.conf"
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        """Render the template for this run and write it to run_dir/nginx.conf."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        values = local_values(self.run_dir, self.port, self.app_ports, self.server_names,
                              self.unlimited_addresses)  # fmt: skip
        text = render(TEMPLATE.read_text(), values)
        self.config_path.write_text(text)
        return self.config_path

    def _command(self, *extra: str) -> list[str]:
        # -e sends the errors nginx logs before it has read the config to our file too,
        # so nothing is ever written under /var/log/nginx.
        return [
            self.binary, "-p", str(self.run_dir), "-c", str(self.config_path),
            "-e", str(self.run_dir / "error.log"), "-g", "daemon off;", *extra,
        ]  # fmt: skip

    def check(self) -> None:
        """Run ``nginx -t`` on the rendered config; raise with nginx's own message if invalid."""
        result = subprocess.run(self._command("-t"), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"nginx rejected {self.config_path}:\n{result.stderr.strip()}")

    def start(self) -> None:
        """Write and check the config, start nginx and wait until it listens."""
        self.write_config()
        self.check()
        log = (self.run_dir / "nginx.stderr").open("ab")
        self.process = subprocess.Popen(
            self._command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        log.close()
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        """Stop nginx by its PID: SIGTERM is nginx's fast shutdown."""
        terminate(self.process)
        self.process = None

    @property
    def pid(self) -> int | None:
        """The master's PID while running."""
        return self.process.pid if self.process is not None else None

    def error_log(self) -> str:
        """What nginx logged so far (for test failure messages)."""
        path = self.run_dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""
