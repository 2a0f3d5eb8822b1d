"""fastmon managed like the testbed's agents: the supervisord entries shipped in
``deploy/supervisord/`` parse, and supervisord starts run_fastmon and the ASGI server from
them, with the environment the testbed sets, and stops them cleanly."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.db import connection

from fastmon.testing.network import free_port
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "supervisord"


def sections(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    assert parser.read(DEPLOY / name) == [str(DEPLOY / name)]
    return parser


def test_the_entries_parse_and_name_every_program() -> None:
    main, celery = sections("fastmon.conf"), sections("fastmon-celery.conf")
    assert main.get("group:fastmon", "programs") == "fastmon-consumer,fastmon-web"
    consumer = main["program:fastmon-consumer"]
    assert consumer["command"].endswith("manage.py run_fastmon")
    assert consumer["stopsignal"] == "TERM"
    assert int(consumer["stopwaitsecs"]) > 10  # run_fastmon's STOP_TIMEOUT_S
    assert "uvicorn" in main["program:fastmon-web"]["command"]
    assert {"program:fastmon-celery-worker", "program:fastmon-celery-beat"} <= set(celery)


def test_supervisord_starts_and_stops_run_fastmon_from_the_entry(
    tmp_path: Path, stomp_address, unique_topic: str
) -> None:
    port = free_port()
    config = tmp_path / "supervisord.conf"
    config.write_text(f"""
[unix_http_server]
file={tmp_path}/supervisor.sock
[supervisord]
logfile={tmp_path}/supervisord.log
pidfile={tmp_path}/supervisord.pid
nodaemon=true
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{tmp_path}/supervisor.sock
[include]
files={DEPLOY}/fastmon.conf
""")
    db = connection.settings_dict
    env = {
        **os.environ,
        "FASTMON_PYTHON": sys.executable, "FASTMON_SITE_DIR": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings", "FASTMON_ASGI_APP": "tests.asgi:application",
        "FASTMON_ASGI_PORT": str(port), "FASTMON_LOG_DIR": str(tmp_path),
        "ACTIVEMQ_HOST": stomp_address[0], "ACTIVEMQ_PORT": str(stomp_address[1]),
        "FASTMON_DB_NAME": db["NAME"],
        "FASTMON_TEST_SETTINGS": json.dumps({
            "SUBSCRIBE_DESTINATIONS": [unique_topic],
            "AGENT_NAME": f"fastmon-agent-test-{uuid.uuid4().hex[:8]}"}),
    }  # fmt: skip
    supervisord = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(config)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # its log: supervisord.log
    )  # fmt: skip
    consumer_log = tmp_path / "fastmon-consumer.log"

    def ctl(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c",
                               str(config), *args], env=env, capture_output=True, text=True,
                              timeout=60).stdout  # fmt: skip

    def log() -> str:
        return consumer_log.read_text() if consumer_log.exists() else ""

    try:
        wait_until(lambda: f"subscribed to {unique_topic}" in log(), 60,
                   "run_fastmon subscribed under supervisord", context=log)  # fmt: skip
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/fastmon/health/live/"), 30,
                   "the ASGI server answering")  # fmt: skip
        wait_until(lambda: ctl("status").count("RUNNING") == 2, 30,
                   "both programs RUNNING", context=lambda: ctl("status"))  # fmt: skip
        ctl("stop", "fastmon:*")
        assert "run_fastmon: stopped" in log()  # a clean stop on SIGTERM
        assert "STOPPED" in ctl("status", "fastmon:fastmon-consumer")
    finally:
        ctl("shutdown")
        supervisord.wait(timeout=60)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
