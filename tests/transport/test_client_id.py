"""AGENT_NAME, run_fastmon's client-id on the broker: the default differs from host to host and
stays the same across restarts; a second run_fastmon under a name in use says so in one line
and exits with the refusal's code, against the real ActiveMQ."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from fastmon.conf import default_agent_name
from fastmon.runtime.startup import ExitCode
from fastmon.testing.processes import ServiceProcess, consumer_settings


def test_the_default_name_differs_by_host_and_is_stable_and_short() -> None:
    assert default_agent_name("epicdaq", "daq01.sdcc.bnl.gov") == "fastmon-agent-epicdaq-daq01"
    assert default_agent_name("epicdaq", "daq02.sdcc.bnl.gov") == "fastmon-agent-epicdaq-daq02"
    assert default_agent_name("epicdaq", "daq01") == default_agent_name("epicdaq", "daq01.local")
    # swf-monitor's instance_name holds 100 characters: the host's part survives a long user.
    long = default_agent_name("u" * 300, "h" * 300)
    assert len(long) <= 100 and long.endswith("-" + "h" * 45)
    assert default_agent_name("a b/c", "") == "fastmon-agent-a_b_c-localhost"


@pytest.mark.django_db(transaction=True)
def test_a_second_run_fastmon_under_the_same_agent_name_exits_saying_so(
    start_process: Callable[..., ServiceProcess], unique_topic: str
) -> None:
    settings = consumer_settings(unique_topic)
    first = start_process(settings)
    first.wait_for_log(f"subscribed to {unique_topic}")

    second = start_process(settings)
    assert second.wait(timeout=30) == ExitCode.REFUSED
    errors = [line for line in second.output().splitlines() if "ERROR" in line]
    assert len(errors) == 1, second.output()
    assert f"AGENT_NAME '{settings['AGENT_NAME']}' is in use" in errors[0]
    assert "(from tcp://127.0.0.1:" in errors[0] and "Give each its own" in errors[0]

    assert first.process.poll() is None  # the first one carries on
    first.signal(signal.SIGTERM)
    assert first.wait(timeout=15) == 0
