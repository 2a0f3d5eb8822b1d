"""fastmon managed by the testbed's own CLI, as far as it reaches fastmon: a testbed-shaped
directory (``workflows/testbed.toml`` with a namespace, ``agents.supervisord.conf`` with the
entry of ``deploy/supervisord/testbed-agent.conf``) under the real supervisord, the program
started by the name the agent manager uses; messages of the config's namespace are stored and
others not; ``supervisorctl stop`` (SIGQUIT) stops it cleanly mid-stream with nothing lost;
its heartbeats reach a swf-monitor stand-in with that namespace, ``testbed status`` (its filter)
lists it while it runs and not after, and the last heartbeat says EXITED."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from django.db import connection

from fastmon.models import StfFile
from fastmon.testing.messages import stf_body
from fastmon.testing.swf_monitor import SwfMonitorStandIn
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "deploy" / "supervisord" / "testbed-agent.conf"
PROGRAM = "example-fastmon-agent"  # what the testbed's agent manager starts for [agents.fastmon]
NAMESPACE = "epic-fastmon-ci"
RUN = 100980
Publish = Callable[[str, Iterable[str]], None]

# swf-testbed's agents.supervisord.conf before its programs (a socket of the test's own).
HEADER = """
[unix_http_server]
file={home}/agents-supervisor.sock
[supervisord]
logfile=%(here)s/logs/agents-supervisord.log
pidfile=%(here)s/agents-supervisord.pid
childlogdir=%(here)s/logs
nodaemon=true
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{home}/agents-supervisor.sock
"""
# swf-monitor's manage.py, standing in: the test site is the Django site run_fastmon runs in.
MANAGE = f"""import os, sys
sys.path.insert(0, {str(ROOT)!r})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""


def make_testbed(home: Path) -> Path:
    """$SWF_HOME with swf-testbed (its config and supervisord file) and swf-monitor (a venv's
    python, src/manage.py) beside each other, as the testbed lays them out."""
    testbed = home / "swf-testbed"
    (testbed / "workflows").mkdir(parents=True)
    (testbed / "logs").mkdir()
    (testbed / "workflows" / "testbed.toml").write_text(
        f'[testbed]\nnamespace = "{NAMESPACE}"\n\n[agents.fastmon]\nenabled = true\n'
    )
    (testbed / "agents.supervisord.conf").write_text(HEADER.format(home=home) + ENTRY.read_text())
    venv, src = home / "swf-monitor" / ".venv" / "bin", home / "swf-monitor" / "src"
    venv.mkdir(parents=True)
    src.mkdir()
    (venv / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv / "python").chmod(0o755)
    (src / "manage.py").write_text(MANAGE)
    return testbed


def test_started_and_stopped_by_the_testbeds_supervisord_in_its_namespace(
    tmp_path: Path, stomp_address, unique_topic: str, publish: Publish,
    monitor: SwfMonitorStandIn,
) -> None:  # fmt: skip
    testbed = make_testbed(tmp_path)
    config = testbed / "agents.supervisord.conf"
    agent = f"fastmon-agent-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ, "SWF_HOME": str(tmp_path), "USER": "ci",
        "SWF_TESTBED_CONFIG": "workflows/testbed.toml",  # the testbed's own default
        "ACTIVEMQ_HOST": stomp_address[0], "ACTIVEMQ_PORT": str(stomp_address[1]),
        "FASTMON_DB_NAME": connection.settings_dict["NAME"],
        "FASTMON_TEST_SETTINGS": json.dumps({
            "SUBSCRIBE_DESTINATIONS": [unique_topic], "AGENT_NAME": agent,
            "SWF_MONITOR_URL": monitor.url, "SWF_API_TOKEN": "t", "HEARTBEAT_INTERVAL_S": 0.5,
        }),
    }  # fmt: skip
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py's own default, as swf-monitor's
    supervisord = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(config)], cwd=testbed,
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log_file = testbed / "logs" / f"{PROGRAM}.log"

    def ctl(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c",
                               str(config), *args], cwd=testbed, env=env, capture_output=True,
                              text=True, timeout=90).stdout  # fmt: skip

    def log() -> str:
        return log_file.read_text() if log_file.exists() else ""

    def active() -> list[str]:
        """``testbed status``'s active agents: swf-monitor's, but those EXITED."""
        return [a["instance_name"] for a in monitor.system_agents.values()
                if a.get("operational_state") != "EXITED"]  # fmt: skip

    try:
        # autostart=false: `testbed run` starts it
        wait_until(lambda: "STOPPED" in ctl("status", PROGRAM), 30, "supervisord up",
                   context=lambda: ctl("status"))  # fmt: skip
        ctl("start", PROGRAM)
        wait_until(lambda: f"subscribed to {unique_topic}" in log(), 60,
                   "run_fastmon subscribed under supervisord", context=log)  # fmt: skip
        expected = testbed / "workflows" / "testbed.toml"
        assert f"namespace {NAMESPACE!r}, from testbed config {expected}" in log()

        ours = [stf_body("stf_gen", RUN, n, namespace=NAMESPACE) for n in range(1, 20_001)]
        theirs = [stf_body("stf_gen", RUN + 1, n, namespace="someone-else") for n in (1, 2, 3)]
        sending = threading.Thread(target=publish, args=(unique_topic, theirs + ours))
        sending.start()
        wait_until(lambda: StfFile.objects.exists(), 30, "ingest under way", context=log)
        ctl("stop", PROGRAM)  # SIGQUIT, mid-stream
        sending.join()
        assert "STOPPED" in ctl("status", PROGRAM)
        assert "run_fastmon: stopped" in log() and "Traceback" not in log(), log()
        stored_at_stop = StfFile.objects.count()
        assert stored_at_stop < len(ours), "stopped too late to prove anything"
        last = monitor.posts("/api/systemagents/heartbeat/")[-1]
        assert (last["instance_name"], last["operational_state"], last["status"]) == (
            agent, "EXITED", "EXITED")  # fmt: skip
        assert agent not in active()

        ctl("start", PROGRAM)  # what was sent and not acked comes again (durable)
        wait_until(lambda: StfFile.objects.count() == len(ours), 60, "every STF of ours",
                   context=log)  # fmt: skip
        wait_until(lambda: agent in active(), 10, "listed by testbed status again")
        beat = monitor.system_agents[agent]
        assert (beat["namespace"], beat["agent_type"], beat["status"]) == (NAMESPACE, "fastmon",
                                                                           "OK")  # fmt: skip
        assert set(StfFile.objects.values_list("run__namespace", flat=True)) == {NAMESPACE}
        assert not StfFile.objects.filter(run__run_number=RUN + 1).exists()
    finally:
        ctl("shutdown")
        supervisord.wait(timeout=60)
