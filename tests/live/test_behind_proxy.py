"""The SSO header behind a real reverse proxy, with the ASGI server run exactly as
``deploy/supervisord/fastmon.conf`` ships it: the host-shaped site under uvicorn, nginx in
front forwarding as swf-monitor's Apache does (the user in ``X-Remote-User``, the browser in
``X-Forwarded-For``). The browser connects from 127.0.0.2: an address that is not the
proxy's, as a browser elsewhere has."""

from __future__ import annotations

import base64
import configparser
import http.client
import json
import shlex
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from fastmon.testing.announcing import announce
from fastmon.testing.network import free_port
from fastmon.testing.processes import ServiceProcess
from fastmon.testing.proxy import sso_proxy

pytestmark = pytest.mark.django_db(transaction=True)

SUPERVISORD = Path(__file__).resolve().parents[2] / "deploy" / "supervisord" / "fastmon.conf"
PREFIX = "/swf-monitor"
SOCKET = f"{PREFIX}/fastmon/ws/live/"
BROWSER = "127.0.0.2"
LOGIN = {"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()}
RUN = 100810


def shipped_server(port: int) -> list[str]:
    """fastmon-web's command line from the supervisord file, serving the host-shaped site on
    ``port``: the flags as shipped, read here so they cannot drift."""
    parser = configparser.RawConfigParser()
    assert parser.read(SUPERVISORD) == [str(SUPERVISORD)]
    command = parser["program:fastmon-web"]["command"] % {
        "ENV_FASTMON_PYTHON": sys.executable,
        "ENV_FASTMON_ASGI_APP": "tests.host.asgi:application",
        "ENV_FASTMON_ASGI_PORT": str(port),
    }
    _python, *argv = shlex.split(command)
    return argv


@pytest.fixture
def ports(start_process: Callable[..., ServiceProcess], tmp_path: Path) -> Iterator[dict]:
    """The server's port and the proxy's in front of it (alice's password: ``secret``)."""
    server_port = free_port()
    server = start_process({}, command="uvicorn", argv=shipped_server(server_port),
                           settings_module="tests.host_settings")  # fmt: skip
    server.wait_for_log("Uvicorn running")
    with sso_proxy(tmp_path / "nginx", server_port, PREFIX, {"alice": "secret"}) as proxy_port:
        yield {"server": server_port, "proxy": proxy_port}


def from_browser(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(BROWSER, 0))


def page(port: int, headers: dict[str, str]) -> tuple[int, str]:
    """The dashboard's status and HTML, asked for from the browser's address."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.sock = from_browser(port)
    connection.request("GET", f"{PREFIX}/fastmon/", headers=headers)
    response = connection.getresponse()
    return response.status, response.read().decode()


def live_socket(port: int, headers: dict[str, str]) -> ClientConnection:
    """A handshake from the browser's address, with its ``Origin`` (the page's own)."""
    return connect(f"ws://127.0.0.1:{port}{SOCKET}", sock=from_browser(port),
                   origin=f"http://127.0.0.1:{port}", additional_headers=headers)  # fmt: skip


def close_code(websocket: ClientConnection) -> int:
    with websocket, pytest.raises(ConnectionClosed) as closed:
        websocket.recv(timeout=10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def test_the_sso_user_reaches_the_pages_and_the_live_socket_through_the_proxy(ports) -> None:
    status, html = page(ports["proxy"], LOGIN)
    assert status == 200
    assert 'id="host-user">alice<' in html
    with live_socket(ports["proxy"], LOGIN) as websocket:
        assert json.loads(websocket.recv(timeout=10))["type"] == "live"
        with override_settings(FASTMON={**settings.FASTMON, "CHECKS": []}):  # the live path alone
            announce("stf_gen", RUN, 1)
        seen: set[tuple[str, int]] = set()
        while ("stf", RUN) not in seen:  # the run's and the STF's events, in one frame or more
            frame = json.loads(websocket.recv(timeout=15))
            assert frame["type"] == "events"
            seen |= {(e["kind"], e["run_number"]) for e in frame["events"]}


@pytest.mark.parametrize("forged", [
    {"X-Remote-User": "alice"},
    {"X-Remote-User": "alice", "X-Forwarded-For": "127.0.0.1"},
])  # fmt: skip
def test_a_client_straight_to_the_server_is_nobody(ports, forged: dict[str, str]) -> None:
    status, _ = page(ports["server"], forged)
    assert status == 302  # to the site's login
    assert close_code(live_socket(ports["server"], forged)) == 4403


def test_a_user_header_sent_through_the_proxy_is_replaced_by_the_login(ports) -> None:
    spoofing = {**LOGIN, "X-Remote-User": "mallory"}
    status, html = page(ports["proxy"], spoofing)
    assert status == 200
    assert 'id="host-user">alice<' in html
    with live_socket(ports["proxy"], spoofing) as websocket:
        assert json.loads(websocket.recv(timeout=10))["type"] == "live"
    assert page(ports["proxy"], {"X-Remote-User": "alice"})[0] == 401  # no login, no user
    assert not User.objects.filter(username="mallory").exists()  # never taken for anyone
