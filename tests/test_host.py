"""fastmon inside a host shaped like swf-monitor (``tests/host_settings.py``): served under
``/swf-monitor`` with full-path requests (Apache's ProxyPass) or with the prefix stripped and
``--root-path``, SSO by ``X-Remote-User``, models of the host's own named as fastmon's, its base
template, and no Celery: run_fastmon samples."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable

import pytest
from django.conf import settings
from django.test import override_settings
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from fastmon.content.merging import merge_cycle
from fastmon.models import StfFile, TfSample
from fastmon.sampling.service import sample_stfs
from fastmon.testing.announcing import announce
from fastmon.testing.content import write_etf1_stf
from fastmon.testing.messages import example, stf_name
from fastmon.testing.network import free_port
from fastmon.testing.processes import ServiceProcess
from fastmon.testing.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

HOST = "tests.host_settings"
PREFIX = "/swf-monitor"
StartProcess = Callable[..., ServiceProcess]


def serve(start_process: StartProcess, *options: str, **settings_changes: object) -> str:
    """The host site under uvicorn; its base URL (no prefix)."""
    port = free_port()
    argv = ["-m", "uvicorn", "tests.host.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), *options]  # fmt: skip
    server = start_process(settings_changes, command="uvicorn", argv=argv, settings_module=HOST)
    server.wait_for_log("Uvicorn running")
    return f"127.0.0.1:{port}"


SSO = {"X-Remote-User": "alice"}  # what swf-monitor's proxy adds to every request


def page(address: str, path: str) -> str:
    """A page as the proxy asks for it, SSO header included (no session: swf-monitor trusts
    the header on each request from localhost)."""
    request = urllib.request.Request(f"http://{address}{path}", headers=SSO)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def closed_with(url: str, headers: dict[str, str]) -> int:
    """The close code of a websocket the server refuses."""
    with (
        connect(url, additional_headers=headers, open_timeout=10) as websocket,
        pytest.raises(ConnectionClosed) as closed,
    ):
        websocket.recv(timeout=10)
    return closed.value.rcvd.code


def first_frame(url: str, headers: dict[str, str]) -> dict:
    with connect(url, additional_headers=headers, open_timeout=10) as websocket:
        return json.loads(websocket.recv(timeout=10))


def test_full_path_requests_reach_the_pages_and_the_websocket(start_process) -> None:
    address = serve(start_process)
    dashboard = page(address, f"{PREFIX}/fastmon/")
    assert 'id="host-user">alice<' in dashboard  # inside the host's base template, signed in
    assert f'data-websocket-path="{PREFIX}/fastmon/ws/live/"' in dashboard
    assert f'href="{PREFIX}/static/fastmon/vendor/uPlot.min.css"' in dashboard
    with urllib.request.urlopen(f"http://{address}{PREFIX}/static/fastmon/vendor/uPlot.iife.min.js",
                                timeout=10) as script:  # fmt: skip
        assert b"uPlot" in script.read()

    assert first_frame(f"ws://{address}{PREFIX}/fastmon/ws/live/", SSO)["type"] == "live"
    # Behind SSO: without the header, the websocket is closed with "login needed", and a bad
    # query with "bad request": codes a browser sees (a refused handshake is only a 1006).
    assert closed_with(f"ws://{address}{PREFIX}/fastmon/ws/live/", {}) == 4403
    assert closed_with(f"ws://{address}{PREFIX}/fastmon/ws/live/?since=-1", SSO) == 4400


def test_the_sso_header_counts_only_from_a_trusted_proxy(start_process) -> None:
    address = serve(start_process, WEBSOCKET_TRUSTED_PROXIES=["10.0.0.1"])
    assert closed_with(f"ws://{address}{PREFIX}/fastmon/ws/live/", SSO) == 4403


def test_a_stripped_prefix_with_root_path_reaches_the_websocket(start_process) -> None:
    address = serve(start_process, "--root-path", PREFIX)
    assert f'data-websocket-path="{PREFIX}/fastmon/ws/live/"' in page(address, "/fastmon/")
    assert first_frame(f"ws://{address}/fastmon/ws/live/", SSO)["type"] == "live"


def test_run_fastmon_without_celery_samples_every_stf_of_a_run(
    start_process, publish, unique_topic
) -> None:
    changes = {"SUBSCRIBE_DESTINATIONS": [unique_topic],
               "AGENT_NAME": f"fastmon-agent-test-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    consumer = start_process(changes, settings_module=HOST)
    consumer.wait_for_log("subscribed to")
    assert "sampling in this process (no Celery)" in consumer.output()

    run = 100700
    names = [stf_name(run, n) for n in range(1, 41)]
    bodies = [json.dumps(example("stf_ready", run_id=run, filename=name)) for name in names]
    publish(unique_topic, bodies)
    wait_until(lambda: StfFile.objects.filter(run__run_number=run, status="sampled").count() == 40,
               60, "every STF of the run sampled", context=consumer.output)  # fmt: skip
    assert TfSample.objects.filter(run__run_number=run).count() == 40 * 7
    assert "could not enqueue" not in consumer.output()


def test_a_runs_content_and_its_root_file_under_the_hosts_prefix(start_process, tmp_path) -> None:
    """Full-path requests reach the content API, and every URL it gives honours the prefix."""
    with override_settings(FASTMON={**settings.FASTMON, "DATA_ROOTS": [str(tmp_path)]}):
        written = write_etf1_stf(tmp_path / stf_name(100940, 1), 50)
        names = announce("stf_ready", 100940, 1, data_dir=tmp_path, tf_count=50,
                         tf_offsets=written.offsets)  # fmt: skip
        sample_stfs(names)
    merge_cycle()
    address = serve(start_process)
    found = json.loads(page(address, f"{PREFIX}/fastmon/api/runs/100940/content/"))
    assert found["tfs_decoded"] > 0
    assert found["root_url"] == f"http://{address}{PREFIX}/fastmon/api/runs/100940/histograms.root"
    occupancy = next(h["url"] for h in found["histograms"] if h["name"] == "BEMC/occupancy")
    assert occupancy.startswith(f"http://{address}{PREFIX}/fastmon/api/runs/100940/histograms/")
    request = urllib.request.Request(f"{occupancy}?format=root", headers=SSO)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read(4) == b"root"  # a ROOT file's magic
