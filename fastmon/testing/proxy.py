"""A real reverse proxy in front of a site's ASGI server, forwarding as swf-monitor's Apache
does: nginx on a free port, its config in a test's directory, passing a path prefix whole
(websocket upgrade included) to users it logged in itself, and naming the user to the site in
an SSO header it sets, so the one a client sends never gets through."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from fastmon.testing.network import free_port
from fastmon.testing.processes import ServiceProcess
from fastmon.testing.waiting import wait_until


@contextlib.contextmanager
def sso_proxy(
    directory: Path,
    upstream: int,
    prefix: str,
    users: dict[str, str],
    header: str = "X-Remote-User",
) -> Iterator[int]:
    """nginx proxying ``prefix``/ to ``127.0.0.1:upstream`` for ``users`` (name: password, by
    HTTP basic auth: the stand-in for the site's SSO); yields its port. As Apache's
    ``ProxyPass ... upgrade=websocket`` with ``ProxyPreserveHost On`` and ``RequestHeader set
    X-Remote-User "expr=%{REMOTE_USER}"`` (docs/host-site.md): the client's ``Host`` kept,
    ``X-Forwarded-For`` (appended to), ``-Host`` and ``-Server`` added, the user in ``header``
    in place of any the client sent."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    passwords = directory / "users"
    passwords.write_text("".join(f"{name}:{{PLAIN}}{word}\n" for name, word in users.items()))
    config = directory / "nginx.conf"
    config.write_text(_config(directory, port, upstream, prefix, passwords, header))
    # One process in the foreground (master_process off): nothing to switch users or daemonize.
    nginx = ServiceProcess(
        [_nginx(), "-p", str(directory), "-c", str(config), "-e", "stderr"],
        directory / "nginx.log",
    )
    try:
        wait_until(lambda: _listening(port) or nginx.process.poll() is not None, 20,
                   f"nginx on 127.0.0.1:{port}", nginx.output)  # fmt: skip
        assert nginx.process.poll() is None, f"nginx exited:\n{nginx.output()}"
        yield port
    finally:
        nginx.kill_all()


def _nginx() -> str:
    """nginx from PATH or /usr/sbin (scripts/services.sh installs it; sbin may be off PATH)."""
    found = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin")
    assert found, "nginx is not installed: start the services with `scripts/services.sh up`"
    return found


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _config(
    directory: Path, port: int, upstream: int, prefix: str, passwords: Path, header: str
) -> str:
    temp = "\n".join(
        f"  {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
daemon off;
master_process off;
pid {directory / "nginx.pid"};
error_log stderr;
events {{}}
http {{
  access_log {directory / "access.log"};
{temp}
  map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
  server {{
    listen 127.0.0.1:{port};
    location {prefix}/ {{
      auth_basic "SSO";
      auth_basic_user_file {passwords};
      proxy_pass http://127.0.0.1:{upstream};
      proxy_http_version 1.1;
      proxy_read_timeout 1h;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Server $host;
      proxy_set_header {header} $remote_user;
    }}
  }}
}}
"""
